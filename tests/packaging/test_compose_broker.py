"""The compose stack's broker for real: make-certs.sh, compose-init.sh, the compose config, the ACL.

Runs the very files docker-compose.yml mounts, outside a container: certificates from
make-certs.sh, the init script with the .env passwords, then Mosquitto on the generated secrets
with only the ports and paths of the config moved. Agents must get in over TLS and only under
their site; the hub must get their telemetry through its shared subscription.
"""

from __future__ import annotations

import os
import pwd
import queue
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.harness._server import free_port

ROOT = Path(__file__).resolve().parents[2]
MOSQ = ROOT / "packaging" / "mosquitto"
HUB_PW = "hub-secret-0123"
AGENT_PW = "agent-secret-4567"


@dataclass
class Broker:
    tls_port: int
    plain_port: int
    ca: Path
    secrets: Path


def _init(certs: Path, secrets: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INIT_CERTS": str(certs),
        "INIT_SECRETS": str(secrets),
        "INIT_ACL": str(MOSQ / "millstream.acl"),
        "MQTT_HUB_PASSWORD": HUB_PW,
        "MQTT_AGENT_PASSWORD": AGENT_PW,
    }
    return subprocess.run(
        ["sh", str(MOSQ / "compose-init.sh")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """Mosquitto on the compose config, secrets made by the compose init script."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    # Not pytest's tmp_path: the broker drops root for user mosquitto, who must reach the files.
    work = Path(tempfile.mkdtemp(prefix="millstream-compose-broker-"))
    work.chmod(0o755)
    proc = None
    log = (work / "mosquitto.log").open("w")
    try:
        certs, secrets, data = work / "certs", work / "secrets", work / "data"
        subprocess.run(
            ["bash", str(MOSQ / "make-certs.sh"), "--out", str(certs)],
            capture_output=True,
            check=True,
            timeout=120,
        )
        init = _init(certs, secrets)
        assert init.returncode == 0, init.stderr
        data.mkdir()
        if os.geteuid() == 0:
            account = pwd.getpwnam("mosquitto")
            os.chown(data, account.pw_uid, account.pw_gid)
        tls_port, plain_port = free_port(), free_port()
        conf = (MOSQ / "mosquitto.compose.conf").read_text()
        conf = conf.replace("/mosquitto/secrets", str(secrets))
        conf = conf.replace("/mosquitto/data/", f"{data}/")
        conf = conf.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
        conf = conf.replace("listener 1883", f"listener {plain_port} 127.0.0.1")
        (work / "mosquitto.conf").write_text(conf)
        proc = subprocess.Popen(
            [binary, "-c", str(work / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT
        )
        # Listening on both ports = started (anonymous probes are refused by design).
        for _ in range(300):
            if proc.poll() is not None or all(_listening(p) for p in (tls_port, plain_port)):
                break
            time.sleep(0.1)
        assert proc.poll() is None, (work / "mosquitto.log").read_text()
        assert _listening(tls_port), (work / "mosquitto.log").read_text()
        yield Broker(tls_port, plain_port, certs / "ca.crt", secrets)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


class Client:
    """A paho MQTT v5 client whose events land in queues, so tests wait on events, not time."""

    def __init__(self, client_id: str, username: str | None, password: str | None) -> None:
        self.connacks: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.pubacks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self.mqtt.username_pw_set(username, password)
        self.mqtt.on_connect = lambda _c, _u, _f, rc, _p: self.connacks.put(rc)
        self.mqtt.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put(list(rcs))
        self.mqtt.on_publish = lambda _c, _u, mid, rc, _p: self.pubacks.put((mid, rc))
        self.mqtt.on_message = lambda _c, _u, msg: self.messages.put(msg)

    def connect(self, port: int, ca: Path | None = None) -> ReasonCode:
        if ca is not None:
            self.mqtt.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.mqtt.connect("localhost" if ca is not None else "127.0.0.1", port)
        self.mqtt.loop_start()
        return self.connacks.get(timeout=30)

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def _client(made: list[Client], cid: str, user: str | None, pw: str | None) -> Client:
    c = Client(cid, user, pw)
    made.append(c)
    return c


def test_init_writes_private_secrets(broker: Broker) -> None:
    passwd = broker.secrets / "passwd"
    users = {line.split(":")[0] for line in passwd.read_text().splitlines()}
    assert users == {"hub", "sim-line-pc", "healthcheck"}
    for secret in ("server.key", "passwd", "acl", "healthcheck.pw"):
        assert (broker.secrets / secret).stat().st_mode & 0o077 == 0, secret


def test_init_keeps_users_added_later(broker: Broker, tmp_path: Path) -> None:
    certs = broker.ca.parent
    secrets = tmp_path / "secrets"
    assert _init(certs, secrets).returncode == 0
    subprocess.run(
        ["mosquitto_passwd", "-b", str(secrets / "passwd"), "line3-pc", "pw"], check=True
    )
    again = _init(certs, secrets)
    assert again.returncode == 0, again.stderr
    users = {line.split(":")[0] for line in (secrets / "passwd").read_text().splitlines()}
    assert users == {"hub", "sim-line-pc", "healthcheck", "line3-pc"}


def test_agent_publishes_over_tls_only_under_its_site(
    broker: Broker, clients: list[Client]
) -> None:
    hub = _client(clients, "millstream-hub-1", "hub", HUB_PW)
    assert hub.connect(broker.plain_port) == 0
    hub.mqtt.subscribe("$share/hub/ms/v1/+/+/+/telemetry", qos=1)
    assert [rc.value for rc in hub.subacks.get(timeout=30)] == [1]

    agent = _client(clients, "sim-line-pc", "sim-line-pc", AGENT_PW)
    assert agent.connect(broker.tls_port, ca=broker.ca) == 0
    denied = agent.mqtt.publish("ms/v1/other-plant/line-1/press-01/telemetry", b"x", qos=1)
    allowed = agent.mqtt.publish("ms/v1/sim-plant/line-1/press-01/telemetry", b"ok", qos=1)
    acks = dict(agent.pubacks.get(timeout=30) for _ in range(2))
    assert acks[denied.mid].is_failure  # MQTT v5: PUBACK "not authorized"
    assert not acks[allowed.mid].is_failure

    # One publisher's messages arrive in order: the first to reach the hub is the allowed one.
    msg = hub.messages.get(timeout=30)
    assert (msg.topic, msg.payload) == ("ms/v1/sim-plant/line-1/press-01/telemetry", b"ok")


def test_wrong_password_and_anonymous_are_refused(broker: Broker, clients: list[Client]) -> None:
    wrong = _client(clients, "intruder", "sim-line-pc", "guess")
    assert wrong.connect(broker.tls_port, ca=broker.ca).is_failure
    anonymous = _client(clients, "anon", None, None)
    assert anonymous.connect(broker.plain_port).is_failure


def test_healthcheck_user_can_do_what_the_healthcheck_does(
    broker: Broker, clients: list[Client]
) -> None:
    password = (broker.secrets / "healthcheck.pw").read_text().strip()
    check = _client(clients, "healthcheck", "healthcheck", password)
    assert check.connect(broker.plain_port) == 0
    check.mqtt.subscribe("$SYS/broker/uptime", qos=0)
    assert [rc.value for rc in check.subacks.get(timeout=30)] == [0]


def test_init_refuses_to_run_without_certificates(tmp_path: Path) -> None:
    result = _init(tmp_path / "nothing", tmp_path / "secrets")
    assert result.returncode != 0
    assert "make-certs.sh" in result.stderr
