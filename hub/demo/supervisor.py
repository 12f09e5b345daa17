"""Start the demo's components in order, watch them, stop them in reverse order.

Start: broker → (hub database, then `millstream-hub serve`) alongside the simulated plant (in
this process) → agent → wait for the hub to be ready and the first readings to be stored.
Stop (SIGINT/SIGTERM or a component dying): agent first, so it commits and flushes while the
broker and hub still listen, then the plant, the hub and the broker last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from edge_agent.simulators import Simulator, SimulatorOptions
from hub.auth import AuthStore, Role, hash_password
from hub.demo.children import Child, python_argv, typed_command
from hub.demo.layout import DemoLayout, agent_config, ensure_secret, hub_config
from hub.errors import MillstreamHubError
from hub.sql import open_database
from hub.storage import open_storage

__all__ = ["ADMIN_USER", "DemoError", "DemoOptions", "run_demo"]

ADMIN_USER = "admin"
STARTUP_TIMEOUT_S = 60.0
FIRST_DATA_TIMEOUT_S = 60.0


class DemoError(MillstreamHubError):
    """The demo could not start or a component died: the message says what to do."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What `millstream demo` was asked for."""

    data_dir: Path = Path("millstream-demo")
    port: int = 8000
    machines: int = 5
    seed: int = 0


@dataclass(slots=True)
class _Running:
    children: list[Child] = field(default_factory=list)
    failure: str | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _check_port_free(port: int) -> None:
    with socket.socket() as s:
        # As uvicorn binds: connections of a previous run in TIME_WAIT do not count as in use.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DemoError(
                f"127.0.0.1:{port} is in use (another demo or hub?); pass --port with a free port"
            ) from exc


def _child_env(jwt_secret: str) -> dict[str, str]:
    # Stray MILLSTREAM_… variables would override the generated configs; the demo owns them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLSTREAM_")}
    env["MILLSTREAM_JWT_SECRET"] = jwt_secret
    return env


def _count_readings(db: Path) -> tuple[int, int]:
    """(readings stored, machines with readings) from the hub's SQLite file, read-only."""
    if not db.exists():
        return 0, 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            rows = c.execute("SELECT count(*) FROM readings").fetchone()[0]
            machines = c.execute(
                "SELECT count(DISTINCT s.machine) FROM series s"
                " WHERE EXISTS (SELECT 1 FROM readings r WHERE r.series_id = s.id)"
            ).fetchone()[0]
    except sqlite3.Error:
        return 0, 0  # schema not there yet, or the writer holds a lock
    return int(rows), int(machines)


async def _wait_ready(url: str, hub: Child) -> None:
    async with httpx.AsyncClient(timeout=2.0) as client:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if hub.process.returncode is not None:
                raise DemoError(
                    f"the hub exited (code {hub.process.returncode}); see {hub.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/health/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.25)
    raise DemoError(
        f"the hub did not become ready in {STARTUP_TIMEOUT_S:.0f} s; see {hub.log_path}"
    )


# MQTT 3.1.1 CONNECT (clean session, keep-alive 0, client id "demo-ready"), CONNACK and DISCONNECT
# (§3.1, §3.2, §3.14): the readiness probe speaks MQTT, because a bare TCP connect that hangs up
# before CONNECT makes amqtt log an alarming "Failed to initialize client session".
_PROBE_ID = b"demo-ready"
_CONNECT = (
    bytes([0x10, 12 + len(_PROBE_ID)])
    + b"\x00\x04MQTT\x04\x02\x00\x00"
    + len(_PROBE_ID).to_bytes(2, "big")
    + _PROBE_ID
)
_CONNACK_OK = b"\x20\x02\x00\x00"
_DISCONNECT = b"\xe0\x00"


async def _mqtt_ready(port: int) -> bool:
    """True once the broker on `port` accepts an MQTT connection (then leaves it cleanly)."""
    try:
        async with asyncio.timeout(2.0):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TimeoutError):
        return False
    try:
        async with asyncio.timeout(2.0):
            writer.write(_CONNECT)
            await writer.drain()
            ok = await reader.readexactly(len(_CONNACK_OK)) == _CONNACK_OK
            if ok:
                writer.write(_DISCONNECT)
                await writer.drain()
            return ok
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _wait_broker(port: int, child: Child) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.process.returncode is not None:
            raise DemoError(f"the {child.name} exited; see {child.log_path}")
        if await _mqtt_ready(port):
            return
        await asyncio.sleep(0.1)
    raise DemoError(f"the {child.name} did not listen in time; see {child.log_path}")


async def _prepare_database(layout: DemoLayout, password: str, new_password: bool) -> None:
    """Migrate hub.db and make sure the admin login exists with the stored password."""
    url = f"sqlite:///{layout.hub_db}"
    now_ms = time.time_ns() // 1_000_000
    # In this process rather than via `millstream-hub migrate` / `users add`: two fewer
    # interpreter start-ups on the way to the 30 s promise.
    async with open_storage(url) as storage:
        await storage.migrate()
        await storage.check_schema()
    hashed = await asyncio.to_thread(hash_password, password)
    async with open_database(url, max_connections=1) as db:
        store = AuthStore(db)
        if await store.add_user(ADMIN_USER, Role.ADMIN, hashed, now_ms):
            return
        if new_password:
            # The password file was removed but the user kept: the new password becomes theirs.
            await store.set_password(ADMIN_USER, hashed, now_ms)


async def _start_hub(
    *,
    layout: DemoLayout,
    password: str,
    new_password: bool,
    broker: Child,
    broker_port: int,
    env: dict[str, str],
    stack: AsyncExitStack,
    run: _Running,
    say: Callable[[str], None],
) -> Child:
    await _prepare_database(layout, password, new_password)
    await _wait_broker(broker_port, broker)
    say("starting the hub")
    hub_argv = python_argv("millstream-hub", "serve", "--config", str(layout.hub_config))
    hub = Child("hub", hub_argv, layout.logs / "hub.log", env)
    run.children.append(await stack.enter_async_context(hub))
    return hub


async def _start(
    opts: DemoOptions,
    layout: DemoLayout,
    stack: AsyncExitStack,
    run: _Running,
    say: Callable[[str], None],
) -> str:
    password, new_password = ensure_secret(layout.admin_password, 12)
    jwt_secret, _ = ensure_secret(layout.jwt_secret, 48)
    env = _child_env(jwt_secret)
    url = f"http://127.0.0.1:{opts.port}"

    broker_port = _free_port()
    say(f"starting the MQTT broker (amqtt) on 127.0.0.1:{broker_port}")
    broker = Child(
        "broker",
        python_argv("hub.demo.broker", str(broker_port)),
        layout.logs / "broker.log",
        env,
    )
    run.children.append(await stack.enter_async_context(broker))

    layout.hub_config.write_text(hub_config(layout, broker_port, opts.port), encoding="utf-8")
    say(f"preparing the hub database {layout.hub_db}")
    say(f"starting the simulated plant ({opts.machines} machines, Modbus TCP and OPC-UA)")
    sim_options = SimulatorOptions(
        machines=opts.machines, seed=opts.seed, modbus_port=0, opcua_port=0, control_port=0
    )
    # The plant builds (here: its servers belong to this task) while the database is prepared
    # and the hub child boots.
    async with asyncio.TaskGroup() as tg:
        hub_task = tg.create_task(
            _start_hub(
                layout=layout,
                password=password,
                new_password=new_password,
                broker=broker,
                broker_port=broker_port,
                env=env,
                stack=stack,
                run=run,
                say=say,
            ),
            name="hub-start",
        )
        sim = await stack.enter_async_context(Simulator(sim_options))
    hub = hub_task.result()
    control = sim.control.port if sim.control is not None else None

    text, profiles = agent_config(sim.endpoints(), broker_port, opts.machines)
    for name, body in profiles.items():
        (layout.agent_dir / name).write_text(body, encoding="utf-8")
    layout.agent_config.write_text(text, encoding="utf-8")
    before, _ = await asyncio.to_thread(_count_readings, layout.hub_db)
    # The agent starts while the hub may still be starting: it buffers, and republishes what
    # the hub missed before subscribing after its (short, demo) receipt timeout.
    say("starting the edge agent")
    agent_argv = python_argv("edge-agent", "run", str(layout.agent_config))
    agent = Child("agent", agent_argv, layout.logs / "agent.log", env)
    run.children.append(await stack.enter_async_context(agent))
    await _wait_ready(url, hub)

    say("waiting for the first readings to reach the hub")
    deadline = time.monotonic() + FIRST_DATA_TIMEOUT_S
    while time.monotonic() < deadline:
        rows, machines = await asyncio.to_thread(_count_readings, layout.hub_db)
        if rows > before and machines >= min(opts.machines, 5):
            # A restarted demo keeps its database: count what arrived since this start.
            stored = f" ({rows} stored in all)" if before else ""
            say(f"data is flowing: {rows - before} new readings from {machines} machines{stored}")
            break
        if agent.process.returncode is not None:
            code = agent.process.returncode
            raise DemoError(f"the agent exited (code {code}); see {agent.log_path}")
        await asyncio.sleep(0.5)
    else:
        say(f"no readings from every machine yet; see {layout.logs}/agent.log")

    say("")
    say("Millstream demo is running.")
    say(f"  dashboard:  {url}")
    say(f"  login:      {ADMIN_USER} / {password}")
    say(f"  data:       {layout.root} (logs in {layout.logs})")
    if control is not None:
        agent_cli = typed_command("edge-agent")
        say(f"  simulator:  {agent_cli} simulate status --control-port {control}")
        say(f"  agent:      {agent_cli} status {_shown(layout.agent_config)}")
    say("Press Ctrl-C to stop.")
    return url


def _shown(path: Path) -> str:
    """`path` relative to the working folder when inside it: shorter to type."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


async def _watch(child: Child, run: _Running, stop: asyncio.Event) -> None:
    code = await child.process.wait()
    if not stop.is_set():
        run.failure = f"the {child.name} exited unexpectedly (code {code}); see {child.log_path}"
        stop.set()


async def run_demo(opts: DemoOptions, say: Callable[[str], None]) -> None:
    """Run the demo until SIGINT/SIGTERM; raises DemoError when it cannot run or a part died."""
    layout = DemoLayout(opts.data_dir.resolve())
    layout.prepare()
    _check_port_free(opts.port)
    # The in-process simulator logs (pymodbus, asyncua) go to a file, not the console.
    handler = logging.FileHandler(layout.logs / "simulator.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)

    stop = asyncio.Event()
    main = asyncio.current_task()
    starting = True

    def on_signal() -> None:
        stop.set()
        # While starting, interrupt whatever start-up step is waiting (in this task, so the
        # plant's servers are entered and left by the same task).
        if starting and main is not None:
            main.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal)
    run = _Running()
    try:
        async with AsyncExitStack() as stack:
            try:
                await _start(opts, layout, stack, run, say)
            except asyncio.CancelledError:
                if not stop.is_set() or main is None:
                    raise
                main.uncancel()  # our own interruption: go on to stop what has started
            starting = False
            if not stop.is_set():
                async with asyncio.TaskGroup() as tg:
                    watchers = [
                        tg.create_task(_watch(c, run, stop), name=f"watch-{c.name}")
                        for c in run.children
                    ]
                    await stop.wait()
                    for task in watchers:
                        task.cancel()
            say("stopping: agent, plant, hub, broker")
        # Leaving the stack stopped them in reverse start order.
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        root.removeHandler(handler)
        handler.close()
    if run.failure is not None:
        raise DemoError(run.failure)
    say("stopped")
