"""docker-compose.yml: valid against the compose spec, and built the way docs/deploy.md says.

There is no Docker engine in CI. Debian's docker-compose (1.29, installed by `scripts/services
install`) validates and resolves a file without one; the checks below read its resolved output,
so YAML anchors, `.env` interpolation and defaults are applied exactly as `up` would apply them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from edge_agent.cli import app as agent_app
from edge_agent.config import load_agent_config
from hub.cli import app as hub_app
from hub.config import load_config
from hub.devices.seed import SIM_AGENT

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# Service -> the container path whose data must outlive the container.
STATEFUL = {
    "mosquitto": "/mosquitto/data",
    "postgres": "/var/lib/postgresql/data",
    "kafka": "/var/lib/kafka/data",
    "redis": "/data",
    "agent": "/var/lib/millstream",
}
SECRETS = (
    "POSTGRES_PASSWORD",
    "MQTT_HUB_PASSWORD",
    "MQTT_AGENT_PASSWORD",
    "REDIS_PASSWORD",
    "HUB_JWT_SECRET",
)


def _compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose not found: run scripts/services install", pytrace=False)
    return exe


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def _run_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_compose(), "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def filled_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """.env.example with the required secrets filled in, as an operator's .env would be."""
    env = _env_example()
    for name in SECRETS:
        env[name] = f"test-{name.lower()}-0123456789abcdef0123456789"
    path = tmp_path_factory.mktemp("env") / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


@pytest.fixture(scope="module")
def resolved(filled_env: Path) -> dict[str, Any]:
    """The stack as docker-compose resolves it (validated against the compose schema)."""
    result = _run_config(filled_env)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = yaml.safe_load(result.stdout)
    return doc


def test_compose_config_is_valid(filled_env: Path) -> None:
    result = subprocess.run(
        [_compose(), "--env-file", str(filled_env), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_secrets_are_required() -> None:
    # .env.example as committed has empty secrets: compose must refuse, naming what to set.
    result = _run_config(ENV_EXAMPLE)
    assert result.returncode != 0
    assert "in .env (see .env.example)" in result.stderr


def test_env_example_lists_every_variable_and_no_more() -> None:
    text = COMPOSE.read_text()
    # `$$` is compose's escape for a literal `$` (expanded by the container's shell instead).
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    used |= set(re.findall(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)", text))
    listed = set(_env_example())
    assert used - listed == set(), "add these to .env.example"
    assert listed - used == set(), "not used by docker-compose.yml"
    for name in SECRETS:
        assert _env_example()[name] == "", f"{name} must not have a value in .env.example"


def test_stateful_services_keep_data_in_named_volumes(resolved: dict[str, Any]) -> None:
    declared = set(resolved.get("volumes", {}))
    for service, target in STATEFUL.items():
        mounts = _mounts(resolved, service)
        named = [m for m in mounts if m["type"] == "volume" and m["target"] == target]
        assert named, f"{service}: no named volume at {target}"
        assert named[0]["source"] in declared


def test_every_service_is_health_checked_or_awaited(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    awaited = set()
    for name, svc in services.items():
        for dep, how in svc.get("depends_on", {}).items():
            assert "condition" in how, f"{name} -> {dep}: depends_on without a condition"
            if how["condition"] in {"service_healthy", "service_completed_successfully"}:
                awaited.add(dep)
    for name, svc in services.items():
        if "healthcheck" in svc and not svc["healthcheck"].get("disable", False):
            continue
        # Without a healthcheck only a one-shot is allowed: it runs, exits, and is not restarted.
        assert svc.get("restart", "no") == "no", f"{name}: long-running without a healthcheck"
        if name in awaited:
            continue
        # A one-shot nobody waits for (kafka-init: Kafka must never hold up ingest) must itself
        # start only once what it works on is healthy.
        conditions = {how["condition"] for how in svc.get("depends_on", {}).values()}
        assert conditions == {"service_healthy"}, f"{name}: no healthcheck, nobody waits for it"


def test_published_ports_bind_loopback(resolved: dict[str, Any]) -> None:
    published = 0
    for name, svc in resolved["services"].items():
        for port in svc.get("ports", []):
            published += 1
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            else:
                parts = str(port).split(":")
                host_ip = parts[0] if len(parts) == 3 else None
            assert host_ip == "127.0.0.1", f"{name}: {port} is published beyond this host"
    assert published >= 5


def test_broker_port_can_face_the_plant(filled_env: Path) -> None:
    # The one documented exception: MQTT_TLS_BIND opens the TLS listeners to the line PCs.
    env = filled_env.read_text().replace("MQTT_TLS_BIND=127.0.0.1", "MQTT_TLS_BIND=10.20.0.5")
    other = filled_env.with_name("plant.env")
    other.write_text(env)
    result = _run_config(other)
    assert result.returncode == 0, result.stderr
    ports = yaml.safe_load(result.stdout)["services"]["mosquitto"]["ports"]
    # The password and the client-certificate TLS listeners, both on the plant-facing address.
    assert [str(p).split(":")[0] for p in ports] == ["10.20.0.5", "10.20.0.5"]


def test_bind_mounted_files_exist(resolved: dict[str, Any]) -> None:
    for name in resolved["services"]:
        for mount in _mounts(resolved, name):
            if mount["type"] != "bind":
                continue
            source = Path(mount["source"])
            if "mosquitto/certs" in str(source):
                continue  # made by make-certs.sh at deploy time, never committed
            assert source.exists(), f"{name}: {source} does not exist"


def test_kafka_image_is_the_tested_version(resolved: dict[str, Any]) -> None:
    pom = (ROOT / "packaging/kafka/pom.xml").read_text()
    version = re.search(r"<kafka\.version>(.+?)</kafka\.version>", pom)
    assert version is not None
    assert resolved["services"]["kafka"]["image"] == f"apache/kafka:{version.group(1)}"
    env = resolved["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert str(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == "1"


def test_hub_instances_have_distinct_session_ids(resolved: dict[str, Any]) -> None:
    hubs = {n: s for n, s in resolved["services"].items() if n in {"hub", "hub-2"}}
    assert len(hubs) >= 2
    ids = [s["environment"]["MILLSTREAM_MQTT__CLIENT_ID"] for s in hubs.values()]
    assert len(set(ids)) == len(ids)
    for svc in hubs.values():
        assert "millstream-hub migrate" in " ".join(svc["command"])


def test_hub_config_loads_with_the_compose_environment(resolved: dict[str, Any]) -> None:
    svc = resolved["services"]["hub"]
    env = {k: str(v) for k, v in svc["environment"].items()}
    config_file = next(
        m["source"] for m in _mounts(resolved, "hub") if m["target"] == env["MILLSTREAM_CONFIG"]
    )
    cfg = load_config(config_file, env)
    assert cfg.mqtt.host == "mosquitto"
    assert cfg.mqtt.client_id == "millstream-hub-1"
    assert cfg.storage.startswith("postgresql://")
    assert "@postgres:" in cfg.storage
    assert cfg.mqtt.password_env is not None
    assert cfg.mqtt.password_env in env
    assert env["PGPASSWORD"].startswith("test-postgres_password")
    assert cfg.jwt_secret is not None
    assert cfg.kafka is not None
    assert cfg.kafka.bootstrap == "kafka:9092"
    assert cfg.redis is not None
    assert cfg.redis.url.startswith("redis://:test-redis_password")
    assert cfg.redis.url.endswith("@redis:6379/0")


def test_agent_config_loads_and_points_at_the_stack(resolved: dict[str, Any]) -> None:
    svc = resolved["services"]["agent"]
    env = {k: str(v) for k, v in svc["environment"].items()}
    mounts = _mounts(resolved, "agent")
    config_file = next(m["source"] for m in mounts if m["target"].endswith("agent.yaml"))
    loaded = load_agent_config(config_file, env)
    cfg = loaded.config
    assert cfg.mqtt.url.startswith("mqtts://mosquitto:")
    assert cfg.mqtt.password_env in env
    ca_mount = next(m for m in mounts if m["target"] == cfg.mqtt.ca_file)
    assert ca_mount["read_only"] is True
    data = STATEFUL["agent"]
    assert cfg.buffer.path.startswith(data + "/")
    assert cfg.state_dir.startswith(data + "/")
    hosts = {d.device.modbus.host for d in loaded.devices if d.device.modbus is not None}
    assert hosts == {"simulator"}
    # The broker's seed gives this agent an agent's role, confined to its site and line.
    assert cfg.mqtt.username == cfg.agent.id == SIM_AGENT.name
    assert (cfg.agent.site, cfg.agent.line) == (SIM_AGENT.site, SIM_AGENT.line)


def test_the_broker_seed_is_what_the_hub_code_makes() -> None:
    # Regenerate with: .venv/bin/python -m hub.devices.seed > packaging/mosquitto/dynsec-seed.txt
    made = subprocess.run(
        [sys.executable, "-m", "hub.devices.seed"], capture_output=True, text=True, check=True
    ).stdout
    assert (ROOT / "packaging/mosquitto/dynsec-seed.txt").read_text() == made


def _mounts(doc: dict[str, Any], service: str) -> list[dict[str, Any]]:
    """A service's volumes in long form (docker-compose 1.29 prints the short `src:dst:ro`)."""
    declared = set(doc.get("volumes") or {})
    out = []
    for mount in doc["services"][service].get("volumes", []):
        if isinstance(mount, dict):
            out.append({**mount, "read_only": bool(mount.get("read_only"))})
            continue
        source, target, *mode = str(mount).split(":")
        kind = "volume" if source in declared else "bind"
        out.append({"type": kind, "source": source, "target": target, "read_only": mode == ["ro"]})
    return out


def _directives(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, value)
    return out


def test_broker_configs_share_persistence_and_queue_limits() -> None:
    production = _directives(ROOT / "packaging/mosquitto/mosquitto.conf")
    compose = _directives(ROOT / "packaging/mosquitto/mosquitto.compose.conf")
    shared = (
        "persistence",
        "autosave_interval",
        "max_queued_messages",
        "max_queued_bytes",
        "queue_qos0_messages",
        "upgrade_outgoing_qos",
        "max_inflight_messages",
        "max_packet_size",
        "allow_anonymous",
        "per_listener_settings",
        "tls_version",
    )
    for key in shared:
        assert compose.get(key) == production.get(key), key
    assert compose["persistence"] == "true"
    assert compose["allow_anonymous"] == "false"


def test_commands_in_the_stack_exist(resolved: dict[str, Any]) -> None:
    # Every millstream command a service or healthcheck runs, asked for --help in this checkout.
    apps = {"millstream-hub": hub_app, "edge-agent": agent_app}
    texts = []
    for svc in resolved["services"].values():
        texts.append(" ".join(map(str, svc.get("command") or [])))
        texts.append(" ".join(map(str, svc.get("healthcheck", {}).get("test") or [])))
    found = set()
    for text in texts:
        for exe, words in re.findall(r"\b(millstream-hub|edge-agent)((?: [a-z][a-z-]*)*)", text):
            found.add((exe, *words.split()))
    assert ("millstream-hub", "kafka", "init") in found
    assert ("edge-agent", "run") in found
    for exe, *words in sorted(found):
        result = CliRunner().invoke(apps[exe], [*words, "--help"])
        assert result.exit_code == 0, f"{exe} {' '.join(words)}: {result.output}"
