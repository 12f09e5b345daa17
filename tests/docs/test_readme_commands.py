"""Every command README.md shows is exercised: run here, run by a named test, or — only where this
machine cannot run it at all — listed with the reason and given its closest real check.

README.md's ```sh blocks are the only source of commands (the fence convention is in
readme_blocks.py: ```sh for commands, ```text/```yaml for output and config). REGISTRY names,
for each command, how it is exercised; a README command missing from REGISTRY, or an entry the
README no longer shows, fails `test_every_readme_command_is_registered`. The guide tests below run
their commands verbatim through readme_shell.Shell (which lists the only changes made: `sudo`
dropped, machine folders moved into a sandbox, ports and file names swapped where named) against
real servers: the simulated plant started by the README's own `edge-agent simulate`, a private
Mosquitto, PostgreSQL. Each guide test ends by checking that it ran exactly the commands
REGISTRY assigns to it.
"""

from __future__ import annotations

import ast
import grp
import json
import os
import pwd
import re
import signal
import sqlite3
import stat
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from readme_blocks import blocks, read, sh_commands, unmatched_inline
from readme_shell import VENV, Shell, stop, wait_until

from tests.harness import REPO, Mosquitto, Postgres, free_port

README = REPO / "README.md"
THIS = "tests/docs/test_readme_commands.py"


@dataclass(frozen=True)
class Here:
    """Run verbatim (see readme_shell) by the test of this file named `test`."""

    test: str


@dataclass(frozen=True)
class ByTest:
    """Run by existing tests (node ids `path::function`), which must exist."""

    tests: tuple[str, ...]
    how: str


@dataclass(frozen=True)
class ByCI:
    """Run by the CI build itself (.ci/run); `how` says where, a check below asserts it."""

    how: str


@dataclass(frozen=True)
class CannotRun:
    """Cannot run on a test machine; `closest` are the tests giving the nearest real check."""

    reason: str
    closest: tuple[str, ...]


Exercise = Here | ByTest | ByCI | CannotRun

TECH = "test_technician_guide"
OPS = "test_operator_guide"
DEV = "test_development_commands"
BUNDLE = "tests/packaging/test_offline_bundle.py"
COMPOSE = "tests/packaging/test_compose.py"
NO_DOCKER = "needs a Docker engine, which test machines do not have (CI has the CLI at most)"

REGISTRY: dict[str, Exercise] = {
    # -- Quickstart
    "python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements/demo.txt"
    " && .venv/bin/pip install --no-deps -e .": ByTest(
        (
            "tests/packaging/test_quickstart_install.py::test_quickstart_install_gives_a_working_demo",
        ),
        "runs the line as typed in a copy of the checkout, then the installed `millstream --help`",
    ),
    ".venv/bin/millstream demo": ByTest(
        ("tests/hub/demo/test_demo.py::test_demo_shows_live_data_stops_cleanly_and_continues",),
        "runs the command as a subprocess, data within 30 s, dashboard in a browser, Ctrl-C",
    ),
    "scripts/test": ByCI(".ci/run ends with `scripts/test`, the README's test command"),
    # -- Technician guide
    "packaging/offline-bundle.sh": ByTest(
        (f"{BUNDLE}::test_bundle_holds_the_agent_and_nothing_of_the_hub",),
        "builds the bundle with the script and checks its contents",
    ),
    "tar -xzf millstream-agent-*.tar.gz": ByTest(
        (f"{BUNDLE}::test_installs_and_runs_with_no_network",),
        "unpacks the built tarball (Python's tarfile, same archive) and installs from it",
    ),
    "sudo millstream-agent-*/install.sh": ByTest(
        (f"{BUNDLE}::test_installs_and_runs_with_no_network",),
        "runs install.sh into a temporary prefix instead of /opt/millstream, no network",
    ),
    "sudo ln -sf /opt/millstream/bin/edge-agent /usr/local/bin/edge-agent": Here(TECH),
    "edge-agent simulate": Here(TECH),
    "edge-agent probe examples/plant.yaml --device press-01": Here(TECH),
    "sudo edge-agent init /etc/millstream/agent.yaml --agent-id line3-pc --site plant-a "
    "--line line-3 --broker mqtts://broker.plant-a.example:8883": Here(TECH),
    "edge-agent validate /etc/millstream/agent.yaml": Here(TECH),
    "edge-agent probe /etc/millstream/agent.yaml --device machine-1": Here(TECH),
    "edge-agent browse /etc/millstream/agent.yaml --device cnc-01 --profile-out my-cnc.yaml": Here(
        TECH
    ),
    "edge-agent opcua cert /etc/millstream/agent.yaml": Here(TECH),
    "sudo install -d -o millstream -g millstream -m 0750 /var/lib/millstream": Here(TECH),
    "sudo -u millstream edge-agent run /etc/millstream/agent.yaml": Here(TECH),
    "sudo useradd --system --home-dir /var/lib/millstream --shell /usr/sbin/nologin millstream": (
        CannotRun(
            "would add a system account to the machine running the tests; checked instead: "
            "`service install` names exactly this command when the account is missing",
            (f"{THIS}::{TECH}",),
        )
    ),
    "sudo edge-agent service install /etc/millstream/agent.yaml --user millstream": CannotRun(
        "needs systemd as PID 1 and writes /etc/systemd/system; run here with --unit-dir in the "
        "sandbox and --no-systemctl, and the unit it writes is checked",
        (
            f"{THIS}::{TECH}",
            "tests/packaging/test_systemd.py::test_shipped_agent_unit_is_what_the_cli_renders",
        ),
    ),
    "edge-agent status /etc/millstream/agent.yaml": Here(TECH),
    "edge-agent buffer stats /etc/millstream/agent.yaml": Here(TECH),
    "edge-agent buffer export /etc/millstream/agent.yaml --since 2026-11-23T03:00 night.jsonl": (
        Here(TECH)
    ),
    "sudo -u millstream edge-agent buffer purge /etc/millstream/agent.yaml": Here(TECH),
    # -- Operator guide
    "cp .env.example .env": Here(OPS),
    "packaging/mosquitto/make-certs.sh": ByTest(
        (
            "tests/packaging/test_compose_broker.py::test_agent_publishes_over_tls_only_under_its_site",
        ),
        "its broker fixture runs make-certs.sh (with --out) and Mosquitto serves TLS on the result",
    ),
    "docker compose up -d --build": CannotRun(
        NO_DOCKER,
        (
            f"{COMPOSE}::test_compose_config_is_valid",
            "tests/packaging/test_compose_broker.py::test_stack_configs_carry_data_end_to_end",
        ),
    ),
    "docker compose exec hub millstream-hub users add admin --role admin": CannotRun(
        NO_DOCKER + "; the command inside runs here with the config from MILLSTREAM_CONFIG, as "
        "the compose file gives it",
        (f"{THIS}::{OPS}",),
    ),
    'export MILLSTREAM_JWT_SECRET="$(openssl rand -hex 24)"': Here(OPS),
    "millstream-hub migrate --config /etc/millstream/hub.yaml": Here(OPS),
    "millstream-hub users add admin --role admin --config /etc/millstream/hub.yaml": Here(OPS),
    "millstream-hub serve --config /etc/millstream/hub.yaml": Here(OPS),
    "docker compose --profile scale up -d": CannotRun(
        NO_DOCKER,
        (f"{COMPOSE}::test_hub_instances_have_distinct_session_ids",),
    ),
    "millstream-hub kafka init --config /etc/millstream/hub.yaml": ByTest(
        (
            "tests/hub/bridge/test_bridge_cli.py::"
            "test_kafka_init_creates_topics_once_and_relay_refuses_without_them",
        ),
        "runs `kafka init --config` against a real Kafka, twice (idempotent), and without Kafka",
    ),
    "docker compose exec -T postgres pg_dump -U millstream -Fc millstream > "
    "millstream-$(date +%F).dump": CannotRun(
        NO_DOCKER + "; pg_dump runs here as written, against the test PostgreSQL",
        (f"{THIS}::{OPS}",),
    ),
    "docker compose exec -T postgres pg_restore -U millstream -d millstream --clean --if-exists "
    "< millstream-2026-11-23.dump": CannotRun(
        NO_DOCKER + "; pg_restore runs here on the dump above into an empty database",
        (f"{THIS}::{OPS}",),
    ),
    'sudo sqlite3 /var/lib/millstream/buffer.db ".backup /root/buffer-backup.db"': Here(TECH),
    "curl -s http://127.0.0.1:8000/health/ready": Here(OPS),
    "curl -s http://127.0.0.1:8000/metrics": Here(OPS),
    "sudo -u millstream edge-agent run /etc/millstream/agent.yaml --metrics-port 9108": Here(TECH),
    "curl -s http://127.0.0.1:9108/metrics": Here(TECH),
    # -- Troubleshooting
    "edge-agent opcua trust /etc/millstream/agent.yaml --device cnc-01": ByTest(
        (
            "tests/edge_agent/drivers/opcua/test_opcua_cli.py::"
            "test_trust_accepts_a_changed_server_certificate",
        ),
        "trust against a secured asyncua server whose certificate changed (the simulator's "
        "OPC-UA server offers security None only, which has no certificate to trust)",
    ),
    # -- Development
    "scripts/test tests/wire/test_wire_topics.py -q": Here(DEV),
    "scripts/check": ByCI(".ci/run runs `scripts/check` before the tests"),
    "scripts/test-newest": ByCI(".ci/run runs `scripts/test-newest` before the locked suite"),
    "scripts/lock": ByTest(
        ("tests/packaging/test_locks.py::test_refresh_keeps_every_pin",),
        "runs it in a copy of the checkout: with pyproject.toml unchanged, every pin stays",
    ),
}


def _readme() -> str:
    return read(README)


def _commands() -> list[str]:
    return sh_commands(_readme())


def _assigned(test: str) -> set[str]:
    return {c for c, how in REGISTRY.items() if how == Here(test) or _closest_here(how, test)}


def _closest_here(how: Exercise, test: str) -> bool:
    return isinstance(how, CannotRun) and f"{THIS}::{test}" in how.closest


# -- the README and the registry agree ----------------------------------------------------------


def test_every_readme_command_is_registered() -> None:
    commands = _commands()
    assert commands, "no ```sh block in README.md"
    unregistered = [c for c in commands if c not in REGISTRY]
    stale = [c for c in REGISTRY if c not in commands]
    assert not unregistered, f"README commands nothing exercises (add to REGISTRY): {unregistered}"
    assert not stale, f"REGISTRY entries README.md no longer shows: {stale}"


def test_fences_say_what_they_hold() -> None:
    """Commands only in ```sh; output and config in ```text/```yaml/```json; no bare fences."""
    pages = (README, REPO / "docs/troubleshooting.md")
    for page, block in ((p, b) for p in pages for b in blocks(read(p))):
        where = f"{page.name} line {block.first_line}"
        assert block.language in {"sh", "text", "yaml", "json"}, (
            f"{where}: fence ```{block.language}"
        )
        if block.language == "sh":
            for line in block.lines:
                assert not line.lstrip().startswith("$ "), f"{where}: a prompt in a sh block"


def test_prose_mentions_only_commands_the_blocks_show() -> None:
    assert unmatched_inline(_readme()) == []


def test_cannot_run_list_stays_minimal() -> None:
    """Only what needs Docker, systemd or a system account is excused from running."""
    excused = [c for c, how in REGISTRY.items() if isinstance(how, CannotRun)]
    for command in excused:
        assert command.startswith(("docker compose", "sudo useradd", "sudo edge-agent service")), (
            command
        )


def _defined(node_id: str) -> bool:
    path, _, name = node_id.partition("::")
    source = REPO / path
    if not source.is_file():
        return False
    tree = ast.parse(source.read_text())
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name
        for n in ast.walk(tree)
    )


def test_named_tests_exist() -> None:
    named = [
        node
        for how in REGISTRY.values()
        if isinstance(how, ByTest | CannotRun)
        for node in (how.tests if isinstance(how, ByTest) else how.closest)
    ]
    missing = [n for n in named if not _defined(n)]
    assert not missing, f"REGISTRY names tests that do not exist: {missing}"


def test_ci_runs_what_the_registry_says() -> None:
    ci = (REPO / ".ci/run").read_text().split("\n")
    steps = [
        line.strip() for line in ci if line.strip() and not line.lstrip().startswith(("#", "echo"))
    ]
    assert steps[-1] == "scripts/test", "CI must end with the README's test command"
    assert "scripts/check" in steps
    assert "scripts/test-newest" in steps
    assert "scripts/venv" in steps
    venv = (REPO / "scripts/venv").read_text()
    assert "python3 -m venv .venv" in venv
    # Only from the lock, every file hash-checked; the project itself without resolving anything.
    assert "--require-hashes --no-deps" in venv
    assert "-r requirements/dev.txt" in venv
    assert "--no-deps --no-build-isolation -e ." in venv
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any("demo" in spec for spec in extras["all"]), "the `all` extra must include `demo`"
    assert 'pytest "$@"' in (REPO / "scripts/test").read_text()


# -- the technician guide, run -----------------------------------------------------------------


def _simulated_plant(log: Path) -> dict[str, str]:
    """Machine → address printed by `edge-agent simulate` (host:port or the opc.tcp URL)."""
    found = re.findall(r"^\s+(\S+)\s+\S+\s+(?:modbus\s+(\S+)|opcua\s+(\S+))", log.read_text(), re.M)
    return {name: modbus or opcua for name, modbus, opcua in found}


def _edit_agent_config(path: Path, plant: dict[str, str], broker: Mosquitto, root: Path) -> None:
    """What the technician does by hand after `init`: devices, broker, folders for the service."""
    config = yaml.safe_load(path.read_text())
    host, port = plant["press-01"].rsplit(":", 1)
    config["devices"] = [
        {
            "machine": "machine-1",
            "profile": "sim-hydraulic-press",
            "modbus": {"host": host, "port": int(port), "unit": 1},
        },
        {"machine": "cnc-01", "profile": "sim-cnc-mill", "opcua": {"url": plant["cnc-01"]}},
    ]
    config["mqtt"]["url"] = broker.url
    config["buffer"]["path"] = f"{root}/var/lib/millstream/buffer.db"
    config["state_dir"] = f"{root}/var/lib/millstream/state"
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _plant_config(plant: dict[str, str], out: Path) -> Path:
    """examples/plant.yaml with only the ports changed to where the simulator listens."""
    config = yaml.safe_load((REPO / "examples/plant.yaml").read_text())
    for device in config["devices"]:
        address = plant[device["machine"]]
        if "modbus" in device:
            device["modbus"]["port"] = int(address.rsplit(":", 1)[1])
        else:
            device["opcua"]["url"] = address
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def _tables(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def test_technician_guide(tmp_path: Path, mosquitto_factory: Any) -> None:
    """Install link, simulator, init → validate → probe → browse → cert → run → status → buffer
    commands → backup → purge → service unit, against the simulated plant and a real broker."""
    broker: Mosquitto = mosquitto_factory(persistence=False)
    sh = Shell(_commands(), tmp_path)
    cfg = "/etc/millstream/agent.yaml"
    config = tmp_path / "etc/millstream/agent.yaml"
    (tmp_path / "usr/local/bin").mkdir(parents=True)
    (tmp_path / "root").mkdir()
    with sh.session():
        # The bundle installs into /opt/millstream; the project's .venv is the same install.
        sh.ok("sudo ln -sf /opt/millstream/bin/edge-agent /usr/local/bin/edge-agent")
        linked = tmp_path / "usr/local/bin/edge-agent"
        assert linked.resolve() == (VENV / "bin/edge-agent").resolve()

        # The service's folder, owned by the sandbox's owner instead of the missing account.
        me = f"-o {pwd.getpwuid(os.getuid()).pw_name} -g {grp.getgrgid(os.getgid()).gr_name}"
        sh.ok(
            "sudo install -d -o millstream -g millstream -m 0750 /var/lib/millstream",
            replace={"-o millstream -g millstream": me},
        )
        assert stat.S_IMODE((tmp_path / "var/lib/millstream").stat().st_mode) == 0o750

        # Rehearsal: the README's simulator, on free ports (the defaults may be taken here).
        sim_log = tmp_path / "simulate.log"
        sim = sh.start(
            "edge-agent simulate",
            sim_log,
            extra="--modbus-port 0 --opcua-port 0 --control-port 0",
        )
        wait_until("the simulator's banner", lambda: "control:" in sim_log.read_text())
        plant = _simulated_plant(sim_log)
        assert set(plant) == {"press-01", "conveyor-01", "oven-01", "compressor-01", "cnc-01"}
        plant_yaml = _plant_config(plant, sh.cwd / "plant.yaml")
        out = sh.ok(
            "edge-agent probe examples/plant.yaml --device press-01",
            replace={"examples/plant.yaml": str(plant_yaml)},
        )
        assert re.search(r"pressure .* good", out), out

        # Commissioning, in the README's order.
        sh.ok(
            "sudo edge-agent init /etc/millstream/agent.yaml --agent-id line3-pc --site plant-a "
            "--line line-3 --broker mqtts://broker.plant-a.example:8883"
        )
        assert "broker.plant-a.example:8883" in config.read_text()
        _edit_agent_config(config, plant, broker, tmp_path)
        out = sh.ok(f"edge-agent validate {cfg}")
        assert out.startswith("ok: agent line3-pc (plant-a/line-3), 2 devices"), out
        out = sh.ok(f"edge-agent probe {cfg} --device machine-1")
        # Every 32-bit value is shown in all four word orders, the configured one starred.
        assert re.search(r"orders: .*\*?ABCD=.*CDAB=.*BADC=.*DCBA=", out), out
        assert "10 good, 0 bad" in out, out
        out = sh.ok(f"edge-agent browse {cfg} --device cnc-01 --profile-out my-cnc.yaml")
        skeleton = yaml.safe_load((sh.cwd / "my-cnc.yaml").read_text())
        assert skeleton["protocol"] == "opcua"
        assert skeleton["tags"], skeleton
        out = sh.ok(f"edge-agent opcua cert {cfg}")
        assert "SHA-256" in out
        assert (tmp_path / "var/lib/millstream/state/opcua/own/cert.der").is_file()

        # run: data is read, committed and published; status shows it, stats count it.
        run_log = tmp_path / "run.log"
        agent = sh.start(f"sudo -u millstream edge-agent run {cfg}", run_log)

        def running() -> str | None:
            text = sh.ok(f"edge-agent status {cfg}")
            buffered = re.search(r"buffer: (\d+) readings", text)
            live = ": connected" in text and buffered and int(buffered.group(1)) > 0
            return text if live else None

        text = wait_until("status: connected and readings buffered", running)
        assert "line3-pc" in text
        stats = sh.ok(f"edge-agent buffer stats {cfg}")
        assert "machine-1" in stats, stats
        assert stop(agent, signal.SIGINT) == 0, run_log.read_text()[-3000:]

        # Metrics while running with --metrics-port (the README's port may be taken here).
        port = str(free_port())
        metrics_log = tmp_path / "run-metrics.log"
        agent = sh.start(
            f"sudo -u millstream edge-agent run {cfg} --metrics-port 9108",
            metrics_log,
            replace={"9108": port},
        )
        body = wait_until(
            "the agent's metrics",
            lambda: (
                out
                if "millstream_agent_connected 1.0"
                in (
                    out := sh.run(
                        "curl -s http://127.0.0.1:9108/metrics", replace={"9108": port}
                    ).stdout
                )
                else None
            ),
        )
        assert "millstream_agent_buffer_readings" in body
        assert stop(agent, signal.SIGTERM) == 0, metrics_log.read_text()[-3000:]
        stop(sim, signal.SIGINT)

        # No hub ran, so nothing was receipted: everything is still in the buffer. The agent
        # is known stopped at once (its buffer lock is free), not a status interval later.
        text = sh.ok(f"edge-agent status {cfg}")
        assert "not running" in text, text
        assert re.search(r"buffer: [1-9]\d* readings", text), text
        sh.ok(f"edge-agent buffer export {cfg} --since 2026-11-23T03:00 night.jsonl")
        exported = [json.loads(line) for line in (sh.cwd / "night.jsonl").read_text().splitlines()]
        assert exported
        assert {r["machine"] for r in exported} >= {"machine-1"}

        sh.ok('sudo sqlite3 /var/lib/millstream/buffer.db ".backup /root/buffer-backup.db"')
        buffer = tmp_path / "var/lib/millstream/buffer.db"
        assert _tables(tmp_path / "root/buffer-backup.db") == _tables(buffer)

        sh.ok(f"sudo -u millstream edge-agent buffer purge {cfg}", stdin="y\n")
        after = json.loads(sh.ok(f"edge-agent buffer stats {cfg}", extra="--json"))
        assert after["readings"] == 0, after

        # Service: the unit is written into the sandbox (no systemd here), for an account that
        # does not exist, so the hint for creating it shows.
        units = tmp_path / "units"
        account = f"ms{uuid.uuid4().hex[:8]}"
        done = sh.run(
            f"sudo edge-agent service install {cfg} --user millstream",
            replace={"--user millstream": f"--user {account}"},
            extra=f"--unit-dir {units} --no-systemctl",
        )
        assert done.returncode == 0, done.stderr
        (unit,) = units.glob("*.service")
        text = unit.read_text()
        assert f"User={account}" in text
        assert re.search(rf"^ExecStart=.*edge-agent run {re.escape(str(config))}", text, re.M), text
        useradd = "sudo useradd --system --home-dir /var/lib/millstream --shell /usr/sbin/nologin"
        sh.command(f"{useradd} millstream")  # registered as checked here, never executed
        assert f"{useradd} {account}" in done.stderr, done.stderr

    assert sh.ran == _assigned(TECH)


# -- the operator guide, run -------------------------------------------------------------------


def test_operator_guide(
    tmp_path: Path, mosquitto_factory: Any, postgres: Postgres, pg_dsn: str
) -> None:
    """.env, secret, migrate, users add (both forms), serve until ready, health and metrics,
    logins with the users made, pg_dump and pg_restore round trip, against real servers."""
    broker: Mosquitto = mosquitto_factory(persistence=False)
    sh = Shell(_commands(), tmp_path)
    cfg = "/etc/millstream/hub.yaml"
    hub_yaml = tmp_path / "etc/millstream/hub.yaml"
    hub_yaml.parent.mkdir(parents=True)
    http_port = free_port()
    group = f"docs{uuid.uuid4().hex[:8]}"
    hub_yaml.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"url": broker.url, "client_id": f"{group}-1", "share_group": group},
                "storage": pg_dsn,
                "http": {"host": "127.0.0.1", "port": http_port},
            }
        )
    )
    hub_port = {"127.0.0.1:8000": f"127.0.0.1:{http_port}"}
    restore_db = f"t_{uuid.uuid4().hex[:16]}"
    restore_dsn = postgres.create_database(restore_db)
    with sh.session():
        (sh.cwd / ".env.example").write_bytes((REPO / ".env.example").read_bytes())
        sh.ok("cp .env.example .env")
        assert (sh.cwd / ".env").read_bytes() == (REPO / ".env.example").read_bytes()

        done = sh.ok(
            'export MILLSTREAM_JWT_SECRET="$(openssl rand -hex 24)"',
            extra='; printf %s "$MILLSTREAM_JWT_SECRET"',
        )
        assert re.fullmatch(r"[0-9a-f]{48}", done), done
        sh.env["MILLSTREAM_JWT_SECRET"] = done

        sh.ok(f"millstream-hub migrate --config {cfg}")
        password = f"pw-{uuid.uuid4().hex[:12]}"
        sh.ok(
            f"millstream-hub users add admin --role admin --config {cfg}",
            stdin=f"{password}\n{password}\n",
        )
        # The compose form: the same command inside the hub container, config from the
        # environment. Another name, since admin exists now.
        other = f"{password}-2"
        inner = sh.command("docker compose exec hub millstream-hub users add admin --role admin")
        inner = inner.removeprefix("docker compose exec hub ").replace("add admin", "add ops")
        done_inner = sh.run_text(
            inner, stdin=f"{other}\n{other}\n", env={"MILLSTREAM_CONFIG": str(hub_yaml)}
        )
        assert done_inner.returncode == 0, done_inner.stderr

        hub_log = tmp_path / "serve.log"
        hub = sh.start(f"millstream-hub serve --config {cfg}", hub_log)

        def ready() -> dict[str, Any] | None:
            out = sh.run("curl -s http://127.0.0.1:8000/health/ready", replace=hub_port).stdout
            try:
                doc = json.loads(out)
            except ValueError:
                return None
            return doc if doc.get("status") == "ok" else None

        doc = wait_until("the hub's /health/ready", ready)
        assert doc["storage"] == "ok", doc
        metrics = sh.ok("curl -s http://127.0.0.1:8000/metrics", replace=hub_port)
        assert "millstream_mqtt_connected 1.0" in metrics, metrics[-2000:]
        for user, secret in (("admin", password), ("ops", other)):
            login = httpx.post(
                f"http://127.0.0.1:{http_port}/api/v1/auth/login",
                json={"username": user, "password": secret},
                timeout=30,
            )
            assert login.status_code == 200, login.text
        assert stop(hub, signal.SIGTERM) == 0, hub_log.read_text()[-3000:]

        # Backups: pg_dump and pg_restore as the README has them inside the container, pointed
        # at the test PostgreSQL (its superuser and database names).
        dsn = urlsplit(pg_dsn)
        conn = f"-h {dsn.hostname} -p {dsn.port} -U {dsn.username}"
        dump = sh.command(
            "docker compose exec -T postgres pg_dump -U millstream -Fc millstream > "
            "millstream-$(date +%F).dump"
        )
        dump = dump.removeprefix("docker compose exec -T postgres ")
        dump = dump.replace("-U millstream -Fc millstream", f"{conn} -Fc {dsn.path[1:]}")
        assert sh.run_text(dump).returncode == 0
        (dumped,) = sh.cwd.glob("millstream-*.dump")
        restore = sh.command(
            "docker compose exec -T postgres pg_restore -U millstream -d millstream --clean "
            "--if-exists < millstream-2026-11-23.dump"
        )
        restore = restore.removeprefix("docker compose exec -T postgres ")
        restore = restore.replace("-U millstream -d millstream", f"{conn} -d {restore_db}")
        restore = restore.replace("millstream-2026-11-23.dump", dumped.name)
        restored = sh.run_text(restore)
        assert restored.returncode == 0, restored.stderr
        users = sh.run_text(
            "millstream-hub users list",
            env={"MILLSTREAM_CONFIG": str(hub_yaml), "MILLSTREAM_STORAGE": restore_dsn},
        )
        assert users.returncode == 0, users.stderr
        assert "admin" in users.stdout, users.stdout
        assert "ops" in users.stdout, users.stdout
    postgres.drop_database(restore_db)

    assert sh.ran == _assigned(OPS)


# -- development -------------------------------------------------------------------------------


def test_development_commands(tmp_path: Path) -> None:
    """`scripts/test` with pytest arguments, as the Development section shows it."""
    sh = Shell(_commands(), tmp_path)
    sh.cwd = REPO
    done = sh.run("scripts/test tests/wire/test_wire_topics.py -q", env={"PYTEST_ADDOPTS": ""})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\d+ passed", done.stdout), done.stdout[-2000:]
    assert sh.ran == _assigned(DEV)


# -- links ---------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def test_readme_and_troubleshooting_links_resolve() -> None:
    """Every relative link in README.md and docs/troubleshooting.md names a file and heading."""
    broken: list[str] = []
    for page in (README, REPO / "docs/troubleshooting.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", page.read_text()):
            link = target[0] or target[1]
            if link.startswith(("http://", "https://")):
                continue
            file, _, anchor = link.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists() or (anchor and anchor not in _anchors(path)):
                broken.append(f"{page.name}: {link}")
    assert not broken, broken


def test_troubleshooting_page_shows_only_readme_commands() -> None:
    """docs/troubleshooting.md repeats README commands only, so the guide tests cover it too."""
    page = sh_commands(read(REPO / "docs/troubleshooting.md"))
    assert page
    assert [c for c in page if c not in _commands()] == []
