"""The compose stack's broker for real: make-certs.sh, compose-init.sh, the compose config, the ACL.

Runs the very files docker-compose.yml mounts, outside a container: certificates from
make-certs.sh, the init script with the .env passwords, then Mosquitto on the generated secrets
with only the ports and paths of the config moved. Agents must get in over TLS and only under
their site; the hub must get their telemetry through its shared subscription.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.harness._server import free_port
from tests.harness.hubproc import HUB, hub_cli, hub_env

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
    data: Path
    cert_port: int


DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"  # Debian's package


def _init(certs: Path, secrets: Path, data: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INIT_CERTS": str(certs),
        "INIT_SECRETS": str(secrets),
        "INIT_DATA": str(data),
        "INIT_SEED": str(MOSQ / "dynsec-seed.txt"),
        "INIT_PLUGIN": DYNSEC_PLUGIN,
        "INIT_PORT": str(free_port()),
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


def _users(data: Path) -> dict[str, dict[str, Any]]:
    """The dynamic security plugin's clients, by user name."""
    doc = json.loads((data / "dynamic-security.json").read_text())
    return {c["username"]: c for c in doc["clients"]}


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
        init = _init(certs, secrets, data)
        assert init.returncode == 0, init.stderr
        tls_port, plain_port, cert_port = free_port(), free_port(), free_port()
        conf = (MOSQ / "mosquitto.compose.conf").read_text()
        conf = conf.replace("/mosquitto/secrets", str(secrets))
        conf = conf.replace("/mosquitto/data/", f"{data}/")
        conf = conf.replace("/usr/lib/mosquitto_dynamic_security.so", DYNSEC_PLUGIN)
        conf = conf.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
        conf = conf.replace("listener 1883", f"listener {plain_port} 127.0.0.1")
        conf = conf.replace("listener 8884", f"listener {cert_port} 127.0.0.1")
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
        yield Broker(tls_port, plain_port, certs / "ca.crt", secrets, data, cert_port)
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

    def connect(
        self, port: int, ca: Path | None = None, cert: tuple[Path, Path] | None = None
    ) -> ReasonCode:
        if ca is not None:
            certfile, keyfile = (str(cert[0]), str(cert[1])) if cert else (None, None)
            self.mqtt.tls_set(
                ca_certs=str(ca),
                certfile=certfile,
                keyfile=keyfile,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
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
    users = _users(broker.data)
    assert set(users) == {"hub", "sim-line-pc", "healthcheck"}
    assert {r["rolename"] for r in users["hub"]["roles"]} == {"admin", "millstream-hub"}
    assert [r["rolename"] for r in users["sim-line-pc"]["roles"]] == ["ms-agent-sim-line-pc"]
    for secret in ("server.key", "healthcheck.pw"):
        assert (broker.secrets / secret).stat().st_mode & 0o077 == 0, secret
    assert (broker.data / "dynamic-security.json").stat().st_mode & 0o077 == 0


def test_init_keeps_users_added_later(broker: Broker) -> None:
    certs = broker.ca.parent
    # Not pytest's tmp_path: the seeding broker drops root for user mosquitto, who must reach it.
    work = Path(tempfile.mkdtemp(prefix="millstream-compose-init-"))
    work.chmod(0o755)
    try:
        secrets, data = work / "secrets", work / "data"
        first = _init(certs, secrets, data)
        assert first.returncode == 0, first.stderr
        # An identity `millstream-hub agents add` made since (the plugin keeps it in this file).
        path = data / "dynamic-security.json"
        doc = json.loads(path.read_text())
        added = {**_users(data)["sim-line-pc"], "username": "line3-pc", "roles": []}
        doc["clients"].append(added)
        path.write_text(json.dumps(doc))
        again = _init(certs, secrets, data)
        assert again.returncode == 0, again.stderr
        users = _users(data)
        assert set(users) == {"hub", "sim-line-pc", "healthcheck", "line3-pc"}
        assert users["line3-pc"]["password"] == added["password"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


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


def test_only_the_hub_may_command_an_agent(broker: Broker, clients: list[Client]) -> None:
    agent = _client(clients, "sim-line-pc", "sim-line-pc", AGENT_PW)
    assert agent.connect(broker.tls_port, ca=broker.ca) == 0
    agent.mqtt.subscribe("ms/v1/agents/sim-line-pc/cmd", qos=1)
    assert [rc.value for rc in agent.subacks.get(timeout=30)] == [1]
    # A client that is not the hub (here the agent itself) cannot command anyone.
    forged = [
        agent.mqtt.publish("ms/v1/agents/sim-line-pc/cmd", b"forged", qos=1),
        agent.mqtt.publish("ms/v1/agents/line3-pc/cmd", b"forged", qos=1),
    ]
    answer = agent.mqtt.publish("ms/v1/agents/sim-line-pc/cmd/res", b"result", qos=1)
    acks = dict(agent.pubacks.get(timeout=30) for _ in range(3))
    assert all(acks[f.mid].is_failure for f in forged)
    assert not acks[answer.mid].is_failure
    hub = _client(clients, "millstream-hub-1", "hub", HUB_PW)
    assert hub.connect(broker.plain_port) == 0
    hub.mqtt.publish("ms/v1/agents/sim-line-pc/cmd", b"from the hub", qos=1)
    # The first command the agent gets is the hub's: the forged ones never arrived.
    msg = agent.messages.get(timeout=30)
    assert (msg.topic, msg.payload) == ("ms/v1/agents/sim-line-pc/cmd", b"from the hub")


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


def _issue(certs: Path, name: str) -> tuple[Path, Path]:
    subprocess.run(
        ["bash", str(MOSQ / "make-certs.sh"), "--out", str(certs), "--client", name],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return certs / f"{name}.crt", certs / f"{name}.key"


def test_a_device_logs_in_with_a_client_certificate_scoped_and_cut_off(
    broker: Broker, clients: list[Client], tmp_path: Path
) -> None:
    (tmp_path / "hub.pw").write_text(HUB_PW)
    config = tmp_path / "hub.yaml"
    config.write_text(
        f"mqtt: {{url: 'mqtt://127.0.0.1:{broker.plain_port}', username: hub,"
        f" password_file: {tmp_path / 'hub.pw'}}}\nstorage: 'sqlite:///{tmp_path / 'hub.db'}'\n"
    )
    hub_cli(config, "migrate")
    made = json.loads(
        hub_cli(config, "devices", "add", "oven-gw", "--site", "sim-plant", "--line", "line-2",
                "--machine", "oven-09", "--certificate", "--json")
    )  # fmt: skip
    assert made["auth"] == "certificate"
    assert "password" not in made
    cert = _issue(broker.ca.parent, "oven-gw")
    own = "ms/v1/sim-plant/line-2/oven-09/telemetry"

    def publish(device: Client, topic: str) -> ReasonCode:
        sent = device.mqtt.publish(topic, b"{}", qos=1)
        mid, code = device.pubacks.get(timeout=30)
        assert mid == sent.mid
        return code

    device = _client(clients, "oven-gw-1", None, None)  # no user name: the certificate's CN
    assert device.connect(broker.cert_port, ca=broker.ca, cert=cert) == 0
    assert not publish(device, own).is_failure
    assert publish(device, "ms/v1/sim-plant/line-2/oven-10/telemetry").is_failure

    # Without a certificate, or with one from another CA, the listener refuses the connection.
    other_ca = _issue_from_other_ca(tmp_path / "other", "oven-gw")
    for who, pair in (("no-cert", None), ("other-ca", other_ca)):
        stranger = _client(clients, who, None, None)
        assert _refused(stranger, broker.cert_port, broker.ca, pair), who

    # Disabled: cut off at once, and connecting again gets it nowhere.
    hub_cli(config, "devices", "disable", "oven-gw")
    again = _client(clients, "oven-gw-2", None, None)
    assert again.connect(broker.cert_port, ca=broker.ca, cert=cert) == 0
    assert publish(again, own).is_failure
    hub_cli(config, "devices", "enable", "oven-gw")
    back = _client(clients, "oven-gw-3", None, None)
    assert back.connect(broker.cert_port, ca=broker.ca, cert=cert) == 0
    assert not publish(back, own).is_failure
    rotated = hub_cli_result(config, "devices", "rotate", "oven-gw")
    assert rotated.returncode == 1
    assert "make-certs.sh --client oven-gw" in rotated.stderr


def _refused(client: Client, port: int, ca: Path, cert: tuple[Path, Path] | None) -> bool:
    """The TLS handshake fails, or the broker answers the CONNECT with a failure."""
    try:
        return bool(client.connect(port, ca=ca, cert=cert).is_failure)
    except (OSError, queue.Empty):  # ssl.SSLError is an OSError; no CONNACK: dropped
        return True


def _issue_from_other_ca(folder: Path, name: str) -> tuple[Path, Path]:
    subprocess.run(
        ["bash", str(MOSQ / "make-certs.sh"), "--out", str(folder)],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    return _issue(folder, name)


def hub_cli_result(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HUB, *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False, env=hub_env(),
    )  # fmt: skip


def test_init_refuses_to_run_without_certificates(tmp_path: Path) -> None:
    result = _init(tmp_path / "nothing", tmp_path / "secrets", tmp_path / "data")
    assert result.returncode != 0
    assert "make-certs.sh" in result.stderr


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM everything at once, as `docker compose down` does; each must stop by itself."""
    for proc in reversed(procs):
        proc.terminate()
    stuck = []
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stuck.append(proc)
    for proc in stuck:
        proc.kill()
        proc.wait()
    assert not stuck, f"ignored SIGTERM for 30 s: {[proc.args for proc in stuck]}"


def _wait(what: str, check: Callable[[], bool], logs: list[Path], tries: int = 1500) -> None:
    """Poll until check() holds; on giving up, fail with the processes' logs."""
    for _ in range(tries):
        if check():
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"{what} did not happen\n{tails}", pytrace=False)


def _machines_with_readings(dsn: str) -> set[str]:
    async def query() -> set[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT DISTINCT s.machine FROM series s JOIN readings r ON r.series_id = s.id"
            )
            return {row["machine"] for row in rows}
        finally:
            await conn.close()

    return asyncio.run(query())


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_stack_configs_carry_data_end_to_end(broker: Broker, pg_dsn: str, tmp_path: Path) -> None:
    """simulator → agent (agent.compose.yaml, TLS) → broker → hub (hub.compose.yaml) → PostgreSQL,
    and the hub's receipts back to the agent: only hosts, ports and paths differ from compose."""
    bindir = Path(sys.executable).parent
    modbus, opcua, control, http = free_port(), free_port(), free_port(), free_port()
    agent_yaml = (ROOT / "packaging/agent/agent.compose.yaml").read_text()
    for k in range(4):
        agent_yaml = agent_yaml.replace(f"port: {5020 + k}", f"port: {modbus + k}")
    agent_yaml = agent_yaml.replace("host: simulator", "host: 127.0.0.1")
    agent_yaml = agent_yaml.replace("simulator:4840", f"127.0.0.1:{opcua}")
    agent_yaml = agent_yaml.replace("mosquitto:8883", f"localhost:{broker.tls_port}")
    agent_yaml = agent_yaml.replace("/etc/millstream/certs/ca.crt", str(broker.ca))
    agent_yaml = agent_yaml.replace("/var/lib/millstream", str(tmp_path / "agent-data"))
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml)

    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLSTREAM_")}
    hub_env = {
        **env,
        "MILLSTREAM_CONFIG": str(ROOT / "packaging/hub/hub.compose.yaml"),
        "MQTT_PASSWORD": HUB_PW,
        "MILLSTREAM_MQTT__CLIENT_ID": "millstream-hub-1",
        "MILLSTREAM_MQTT__URL": f"mqtt://127.0.0.1:{broker.plain_port}",
        "MILLSTREAM_STORAGE": pg_dsn,
        "MILLSTREAM_HTTP__HOST": "127.0.0.1",
        "MILLSTREAM_HTTP__PORT": str(http),
        "MILLSTREAM_JWT_SECRET": "compose-test-secret-0123456789abcdef",
        # Only the MQTT → PostgreSQL path and the receipts here; the Kafka bridge and Redis
        # fan-out have tests of their own against real servers.
        "MILLSTREAM_KAFKA": "null",
        "MILLSTREAM_REDIS": "null",
    }
    logs = [tmp_path / "simulator.log", tmp_path / "hub.log", tmp_path / "agent.log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            _start(
                [
                    # As in docker-compose.yml: every interface, five machines.
                    *(
                        str(bindir / "edge-agent"),
                        "simulate",
                        "--host",
                        "0.0.0.0",
                        "--machines",
                        "5",
                    ),
                    *("--modbus-port", str(modbus), "--opcua-port", str(opcua)),
                    *("--control-port", str(control)),
                ],
                env,
                logs[0],
            )
        )
        migrate = subprocess.run(
            [str(bindir / "millstream-hub"), "migrate"],
            env=hub_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr
        procs.append(_start([str(bindir / "millstream-hub"), "serve"], hub_env, logs[1]))
        _wait("hub ready", lambda: _http_ok(f"http://127.0.0.1:{http}/health/ready"), logs)
        procs.append(
            _start(
                [str(bindir / "edge-agent"), "run", str(config)],
                {**env, "MQTT_PASSWORD": AGENT_PW},
                logs[2],
            )
        )
        # The simulator's healthcheck command in docker-compose.yml.
        _wait(
            "simulator answers `simulate status`",
            lambda: (
                subprocess.run(
                    [
                        str(bindir / "edge-agent"),
                        "simulate",
                        "status",
                        "--control-port",
                        str(control),
                    ],
                    capture_output=True,
                    check=False,
                ).returncode
                == 0
            ),
            logs,
        )
        machines = {"press-01", "conveyor-01", "oven-01", "compressor-01", "cnc-01"}
        _wait(
            "readings of all five machines in PostgreSQL",
            lambda: _machines_with_readings(pg_dsn) == machines,
            logs,
        )

        def receipted() -> bool:
            status = subprocess.run(
                [str(bindir / "edge-agent"), "status", str(config), "--json"],
                capture_output=True,
                text=True,
                check=False,
            )
            if status.returncode != 0:
                return False
            doc = json.loads(status.stdout)
            return bool(doc["running"] and doc["status"]["publish"]["receipts"] > 0)

        # The compose healthcheck's condition, and receipts the agent's role lets it read.
        _wait("receipts at the agent", receipted, logs)
    finally:
        _stop_all(procs)
