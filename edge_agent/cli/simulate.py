"""`edge-agent simulate`: run the simulated plant, and steer it (inject, fault, clear, status)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from edge_agent.simulators import Plant, Simulator, SimulatorOptions, load_schedule, request_sync
from edge_agent.simulators.anomalies import ANOMALY_KINDS
from edge_agent.simulators.faults import FAULT_KINDS
from edge_agent.simulators.profiles import agent_config, profile_name

__all__ = ["register", "simulate_app"]

_HELP = """Run a simulated plant on 127.0.0.1: Modbus TCP machines and an OPC-UA CNC server,
and on request a Siemens S7 and an Allen-Bradley Logix (EtherNet/IP) machine.

--machines N spreads N machines over five types, in this order: press-01 (hydraulic press),
conveyor-01, oven-01, compressor-01 (Modbus TCP, one port per machine from --modbus-port up,
unit id 1) and cnc-01 (OPC-UA, one server on --opcua-port for every CNC). --s7-port P adds
s7-press-01 (a press with an S7-1200: DB1, rack 0, slot 1); --enip-port P adds
logix-conveyor-01 (a conveyor with a CompactLogix: tags by name, slot 0; needs cpppo, a
development dependency). Values are deterministic in --seed and simulated time; --speed 10 runs
the physics ten times faster.

Rehearse a commissioning against it:

\b
    $ edge-agent simulate                       # one machine of each type, Ctrl-C stops
    $ edge-agent probe examples/plant.yaml --device press-01
    $ edge-agent simulate inject --machine press-01 --tag oil_temp --kind drift
    $ edge-agent simulate fault --machine conveyor-01 --kind exception --tag item_count
    $ edge-agent simulate status

With the PLC machines (ports above 1024 need no root; 0 picks any free port):

\b
    $ edge-agent simulate --s7-port 1102 --enip-port 44818
    $ edge-agent simulate config --s7-port 1102 --enip-port 44818 --out sim
    $ edge-agent probe sim/plant.yaml --device s7-press-01

Profiles: device_profiles/sim-*.yaml; agent config for the default plant: examples/plant.yaml
(`edge-agent simulate config --machines N` writes one for any N). See docs/simulator.md.
"""

simulate_app = typer.Typer(
    name="simulate",
    help=_HELP,
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
)

_CONTROL_HELP = "Control port of the running simulator."
ControlPort = Annotated[int, typer.Option("--control-port", help=_CONTROL_HELP)]
Host = Annotated[str, typer.Option("--host", help="Address the simulator listens on.")]


def register(app: typer.Typer) -> None:
    """Add the `simulate` command group to the root CLI."""
    app.add_typer(simulate_app, name="simulate")


@simulate_app.callback()
def simulate(  # noqa: PLR0917 - typer maps options to parameters
    ctx: typer.Context,
    machines: Annotated[int, typer.Option(min=1, max=1000, help="Number of machines.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same series.")] = 0,
    host: Host = "127.0.0.1",
    modbus_port: Annotated[
        int, typer.Option(help="First Modbus TCP port; machine k gets this + k (0: any free).")
    ] = 5020,
    opcua_port: Annotated[int, typer.Option(help="OPC-UA server port (0: any free).")] = 4840,
    s7_port: Annotated[
        int | None,
        typer.Option(help="Also serve s7-press-01, an S7 PLC, on this port (0: any free)."),
    ] = None,
    enip_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve logix-conveyor-01, a Logix controller over EtherNet/IP, on this "
            "port (0: any free; needs cpppo)."
        ),
    ] = None,
    control_port: Annotated[
        int, typer.Option(help="Line-JSON control port for inject/fault (0: any free).")
    ] = 7020,
    speed: Annotated[float, typer.Option(min=0.001, help="Simulated seconds per second.")] = 1.0,
    anomalies: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Anomaly schedule (YAML).")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write every served value (JSON lines).")
    ] = None,
    opcua_cert_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Also serve Sign and SignAndEncrypt (Basic256Sha256) OPC-UA with a server "
            "certificate kept in this folder (made on first use). Delete its files and restart "
            "to rehearse a replaced PLC and `edge-agent opcua trust`.",
        ),
    ] = None,
) -> None:
    """Run the simulated plant until Ctrl-C (or use a subcommand to steer a running one)."""
    if ctx.invoked_subcommand is not None:
        return
    plc_ports = SimulatorOptions(s7_port=s7_port, enip_port=enip_port)
    try:
        schedule = tuple(load_schedule(anomalies)) if anomalies else ()
        # Every entry names a machine and tag of this plant.
        Plant(machines, seed, schedule, extra=plc_ports.plc_types())
    except ValueError as exc:
        raise typer.BadParameter(f"{anomalies}: {exc}", param_hint="--anomalies") from exc
    options = SimulatorOptions(
        machines=machines,
        seed=seed,
        host=host,
        modbus_port=modbus_port,
        opcua_port=opcua_port,
        control_port=control_port,
        speed=speed,
        anomalies=schedule,
        truth=truth,
        opcua_cert_dir=opcua_cert_dir,
        s7_port=s7_port,
        enip_port=enip_port,
    )
    try:
        asyncio.run(_serve(options))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        typer.echo(
            f"error: cannot listen: {exc}\n    hint: another simulator may be running; "
            "pick other ports with --modbus-port/--opcua-port/--control-port (--s7-port, "
            "--enip-port), or 0 for any",
            err=True,
        )
        raise typer.Exit(1) from exc
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("simulator stopped")


async def _serve(options: SimulatorOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl-C is handled here, as the agent and the hub do, not left to Python's default: a
    # process started in the background of a script (`edge-agent simulate &`) inherits SIGINT
    # as ignored, Python then installs no handler for it, and Ctrl-C or `kill -INT` would never
    # stop the simulator. Installed first, so a Ctrl-C during start-up stops it once it is up.
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C stays KeyboardInterrupt
            loop.add_signal_handler(sig, stop.set)
    async with Simulator(options) as sim:
        if not stop.is_set():
            _print_endpoints(sim)
        await stop.wait()


def _print_endpoints(sim: Simulator) -> None:
    opts = sim.options
    typer.echo(
        f"simulating {len(sim.plant.machines)} machines (seed {opts.seed}, "
        f"speed {opts.speed:g}x); Ctrl-C stops"
    )
    for ep in sim.endpoints():
        cls = type(sim.plant.machines[ep["machine"]])
        if ep["protocol"] == "modbus":
            where = f"{ep['host']}:{ep['port']} unit {ep['unit']}"
        elif ep["protocol"] == "s7":
            where = f"{ep['host']}:{ep['port']} rack {ep['rack']} slot {ep['slot']}"
        elif ep["protocol"] == "enip":
            where = f"{ep['host']}:{ep['port']} slot {ep['slot']}"
        else:
            where = f"{ep['url']} {ep['browse_root']}"
        typer.echo(
            f"  {ep['machine']:<17} {ep['kind']:<16} {ep['protocol']:<7} {where}"
            f"  profile {profile_name(cls, ep['machine'])}"
        )
    if sim.control is not None:
        typer.echo(f"control: {sim.control.host}:{sim.control.port} (line JSON, docs/simulator.md)")
    if opts.truth is not None:
        typer.echo(f"truth: {opts.truth}")


def _send(host: str, port: int, req: dict[str, Any]) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = request_sync(host, port, req)
    except OSError as exc:
        typer.echo(
            f"error: no simulator control interface at {host}:{port}: {exc}\n"
            "    hint: start one with `edge-agent simulate`, or pass its --control-port",
            err=True,
        )
        raise typer.Exit(1) from exc
    if not answer.get("ok"):
        typer.echo(f"error: {answer.get('error')}", err=True)
        raise typer.Exit(1)
    return answer


@simulate_app.command()
def inject(  # noqa: PLR0917 - typer maps options to parameters
    machine: Annotated[str, typer.Option(help="Machine name, e.g. press-01.")],
    tag: Annotated[str, typer.Option(help="Tag name from the machine's profile.")],
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(ANOMALY_KINDS)}.")],
    duration: Annotated[
        float | None, typer.Option(help="Simulated seconds (default per kind).")
    ] = None,
    magnitude: Annotated[
        float | None,
        typer.Option(help="Spike/out_of_range offset, drift rate per second (default: range)."),
    ] = None,
    delay: Annotated[float, typer.Option(help="Start this many simulated seconds from now.")] = 0,
    host: Host = "127.0.0.1",
    control_port: ControlPort = 7020,
) -> None:
    """Start an anomaly on one tag of a running simulator."""
    req: dict[str, Any] = {"cmd": "inject", "machine": machine, "tag": tag, "kind": kind}
    req |= {"duration": duration, "magnitude": magnitude, "delay": delay}
    typer.echo(json.dumps(_send(host, control_port, req)["anomaly"]))


@simulate_app.command()
def fault(  # noqa: PLR0917 - typer maps options to parameters
    machine: Annotated[str, typer.Option(help="Machine name, e.g. press-01.")],
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(FAULT_KINDS)}.")],
    duration: Annotated[
        float | None, typer.Option(help="Wall-clock seconds (default per kind).")
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="exception: only requests touching this tag.")
    ] = None,
    code: Annotated[
        int | None,
        typer.Option(
            help="exception: Modbus exception code (2 with --tag, else 6); S7 read return code "
            "(5 with --tag, else 3); CIP general status (5 with --tag, else 2)."
        ),
    ] = None,
    delay_ms: Annotated[int | None, typer.Option(help="slow: answer delay (2000).")] = None,
    renumber: Annotated[
        bool, typer.Option(help="restart (OPC-UA): come back with new node ids.")
    ] = False,
    host: Host = "127.0.0.1",
    control_port: ControlPort = 7020,
) -> None:
    """Make one machine misbehave on the wire: drop, offline, slow, exception, restart."""
    req: dict[str, Any] = {"cmd": "fault", "machine": machine, "kind": kind, "tag": tag}
    req["duration"] = duration
    req |= {"code": code, "delay_ms": delay_ms, "renumber": renumber}
    typer.echo(json.dumps(_send(host, control_port, req)["fault"]))


@simulate_app.command()
def clear(
    machine: Annotated[str | None, typer.Option(help="Only this machine.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only this tag (anomalies).")] = None,
    faults: Annotated[bool, typer.Option(help="Clear faults instead of anomalies.")] = False,
    host: Host = "127.0.0.1",
    control_port: ControlPort = 7020,
) -> None:
    """End anomalies (or, with --faults, faults) on a running simulator."""
    req: dict[str, Any] = (
        {"cmd": "clear_faults", "machine": machine}
        if faults
        else {"cmd": "clear", "machine": machine, "tag": tag}
    )
    typer.echo(f"cleared {_send(host, control_port, req)['cleared']}")


@simulate_app.command()
def status(host: Host = "127.0.0.1", control_port: ControlPort = 7020) -> None:
    """Print a running simulator's machines, stats, anomalies and faults as JSON."""
    answer = _send(host, control_port, {"cmd": "status"})
    answer.pop("ok", None)
    typer.echo(json.dumps(answer, indent=2))


@simulate_app.command("config")
def config(  # noqa: PLR0917 - typer maps options to parameters
    machines: Annotated[int, typer.Option(min=1, max=1000, help="Number of machines.")] = 5,
    out: Annotated[Path, typer.Option(help="Directory to write plant.yaml (and profiles) to.")] = (
        Path()
    ),
    modbus_port: Annotated[int, typer.Option(help="First Modbus TCP port.")] = 5020,
    opcua_port: Annotated[int, typer.Option(help="OPC-UA server port.")] = 4840,
    s7_port: Annotated[
        int | None, typer.Option(help="Port of the S7 machine (s7-press-01), if served.")
    ] = None,
    enip_port: Annotated[
        int | None, typer.Option(help="Port of the Logix machine (logix-conveyor-01), if served.")
    ] = None,
) -> None:
    """Write an agent config for `edge-agent simulate --machines N` (and extra CNC profiles);
    with the same --s7-port / --enip-port the simulator was given, its PLC machines too."""
    for option, port in (("--s7-port", s7_port), ("--enip-port", enip_port)):
        if port == 0:
            raise typer.BadParameter(
                "the agent needs the port the simulator printed, not 0", param_hint=option
            )
    text, profiles = agent_config(machines, modbus_port, opcua_port, s7_port=s7_port,
                                  enip_port=enip_port)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "plant.yaml").write_text(text, encoding="utf-8")
    for name, body in profiles.items():
        (out / name).write_text(body, encoding="utf-8")
    typer.echo(f"wrote {out / 'plant.yaml'} and {len(profiles)} extra profiles")
