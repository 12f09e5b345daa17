"""Our edge agent and ThingsBoard IoT Gateway 3.8.5 side by side: same Modbus servers, same broker.

Issue #28's peer comparison. Installs `thingsboard-gateway==3.8.5` into a venv of its own
(`--gateway-venv`, default `.venv-tbgw`, git-ignored; never the project's `.venv`), with the
pymodbus its Modbus connector would otherwise pip-install when it is first imported. Then, on
the libmodbus servers, private Mosquitto and receipt responder of bench/agent_modbus.py
(1,000 uint16 holding registers per device, every `--interval-ms`, each poll of each register
a reading), it runs the two alternately: for each round, for each device count in `--runs`,
the agent (bench/agent_modbus.py's own run) and then the gateway, each for the same window
after the same warm-up.

The gateway gets a ThingsBoard connection to the private Mosquitto (an access token as MQTT
username), in-memory storage (its shipped default), no remote configuration, statistics or
rate limits, report strategy ON_RECEIVED (every poll is sent, not only changes), and one
Modbus TCP device per server: the registers as one wide-range time series (`"address":
"0-999"`, key `r${address}`, 16uint), read in requests of `maxRegistersPerRequest` 125 (the
most Modbus allows, Modbus Application Protocol §6.3), `pollPeriod` = `--interval-ms`. It
publishes nothing until something answers its `getSessionLimits` RPC (sent like a device's,
on v1/devices/me/rpc/request/N): a responder here answers with no rate limits, 100 messages
in flight (the agent's default) and ThingsBoard's 65,536-byte MQTT payload limit. A
subscriber counts the readings in its `v1/gateway/telemetry` messages
(`{device: [{ts, values}]}`) and takes receive time − ts, as bench/agent_modbus.py does with
the agent's batches.

Per run: CPU (psutil; the agent's process, the gateway's process tree: neither starts child
processes, so both are their one process, every thread), CPU-s per 1,000
readings delivered, delivered readings/s, latency p50/p99, RSS, the 1-minute load average
before and after. Printed as ratios (gateway ÷ agent, means over the rounds):

- CPU-s per 1,000 readings at the largest device count at which the gateway delivers at least
  95 % of what is offered, else at the smallest (the results say which, and what it delivered:
  the gateway's poll loop does not hold 100 ms even for one device, see docs/agent.md);
- delivered readings/s at the largest device count (full offer);
- latency p50/p99 at `--latency-devices` (2 → 20,000 readings/s offered).

The machine is shared: the script waits (up to `--load-wait` s) once for the 1-minute load
average to drop below `--max-load`, then measures; every run records its load.

    .venv/bin/python bench/peer_tbgw.py [--runs 2 10] [--rounds 2] [--warmup 10] [--seconds 20]
        [--gateway-venv PATH] [--results PATH]

About 5 minutes with the defaults. Writes bench/results/peer_tbgw.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiomqtt
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import agent_modbus
from bench.agent_modbus import (
    compile_server,
    git,
    percentile,
    start_servers,
    start_subscriber,
    stop_subscriber,
    subscriber,
    tally,
    wait_for_load,
)
from bench.hub_stand_in import start_broker, start_responder, stop

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "peer_tbgw.json"
GATEWAY = "thingsboard-gateway==3.8.5"
# What the Modbus connector of 3.8.5 pip-installs on first import unless present
# (connectors/modbus/modbus_connector.py: required_version); installed up front instead.
GATEWAY_EXTRAS = ["pymodbus==3.9.2", "pyserial", "pyserial-asyncio"]
TELEMETRY = "v1/gateway/telemetry"
RPC_REQUEST, RPC_RESPONSE = "v1/devices/me/rpc/request/", "v1/devices/me/rpc/response/"
# The answer to getSessionLimits (tb_gateway_mqtt.py __on_service_configuration): no rate
# limits for the gateway or its devices; inflight as the agent's; ThingsBoard's MQTT default
# payload limit (the client uses 80 % of it per message).
SESSION_LIMITS = {
    "rateLimits": {},
    "gatewayRateLimits": {},
    "maxInflightMessages": 100,
    "maxPayloadSize": 65536,
}
FULL_DELIVERY = 0.95


# -- the gateway --------------------------------------------------------------------------------
def install_gateway(venv: Path) -> str:
    """The gateway in its own venv (created if absent); its version."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)

    def version() -> str:
        return subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; "
             "print(m.version('thingsboard-gateway'), m.version('pymodbus'))"],
            check=False, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    if version() != f"{GATEWAY.split('==')[1]} {GATEWAY_EXTRAS[0].split('==')[1]}":
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", GATEWAY, *GATEWAY_EXTRAS], check=True
        )
    return version()


def write_gateway_config(
    work: Path, broker_port: int, ports: list[int], registers: int, poll_ms: int
) -> Path:
    """tb_gateway.json, logs.json and modbus.json in `work`/config; the folder."""
    config = work / "config"
    config.mkdir(parents=True)
    (work / "logs").mkdir()
    main = {
        "thingsboard": {
            "host": "127.0.0.1",
            "port": broker_port,
            "remoteShell": False,
            "remoteConfiguration": False,
            "statistics": {"enable": False},
            "deviceFiltering": {"enable": False},
            "checkConnectorsConfigurationInSeconds": 60,
            "syncDevicesSharedAttributesOnConnect": False,
            "security": {"type": "accessToken", "accessToken": "bench-tbgw"},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
            # "0:0," is the client's "no limit" (tb_device_mqtt.py RateLimit).
            **dict.fromkeys(
                (
                    "rateLimits",
                    "dpRateLimits",
                    "messagesRateLimits",
                    "deviceMessagesRateLimits",
                    "deviceRateLimits",
                    "deviceDpRateLimits",
                ),
                "0:0,",
            ),
        },
        # The shipped defaults (config/tb_gateway.json of the package).
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 100000},
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }
    (config / "tb_gateway.json").write_text(json.dumps(main, indent=2))
    logs = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"f": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "formatter": "f", "filename": "logs/gw.log"}
        },
        # As the shipped logs.json: the root (pymodbus too) at ERROR, else pymodbus 3.9.2 warns
        # that BinaryPayloadDecoder is deprecated for every register decoded; the gateway's own
        # loggers at WARNING (shipped: INFO) so that neither side logs per poll.
        "root": {"level": "ERROR", "handlers": ["file"]},
        "loggers": {
            name: {"level": "WARNING", "handlers": ["file"], "propagate": False}
            for name in (
                "service",
                "connector",
                "converter",
                "tb_connection",
                "storage",
                "extension",
                "database",
            )
        },
    }
    (config / "logs.json").write_text(json.dumps(logs, indent=2))
    slaves = [
        {
            "host": "127.0.0.1",
            "port": port,
            "type": "tcp",
            "method": "socket",
            "unitId": 1,
            "deviceName": f"m{i}",
            "deviceType": "default",
            "timeout": 1,
            "byteOrder": "BIG",
            "wordOrder": "BIG",
            "retries": 1,
            "pollPeriod": poll_ms,
            "timeseries": [
                {
                    "tag": "r${address}",
                    "type": "16uint",
                    "functionCode": 3,
                    "objectsCount": 1,
                    "address": f"0-{registers - 1}",
                    "maxRegistersPerRequest": 125,
                }
            ],
            "attributes": [],
            "attributeUpdates": [],
            "rpc": [],
        }
        for i, port in enumerate(ports)
    ]
    modbus = {"name": "Modbus", "logLevel": "WARNING", "master": {"slaves": slaves}}
    (config / "modbus.json").write_text(json.dumps(modbus, indent=2))
    return config


async def answer_session_limits(port: int) -> None:
    """Answer every getSessionLimits RPC the gateway sends, forever."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-tb-rpc") as c:
        await c.subscribe(RPC_REQUEST + "+", qos=1)
        async for msg in c.messages:
            assert isinstance(msg.payload, bytes)
            request_id = str(msg.topic)[len(RPC_REQUEST) :]
            if json.loads(msg.payload).get("method") == "getSessionLimits":
                await c.publish(RPC_RESPONSE + request_id, json.dumps(SESSION_LIMITS), qos=1)
                print(f"answered getSessionLimits {request_id}", flush=True)


def count_tb(payload: bytes) -> Iterable[tuple[int, int]]:
    """(ts, readings) of one v1/gateway/telemetry message: {device: [{ts, values}]}."""
    for entries in json.loads(payload).values():
        for entry in entries:
            yield int(entry["ts"]), len(entry["values"])


async def devices_publishing(port: int, devices: int, within_s: float) -> bool:
    """Whether telemetry from `devices` devices arrives within `within_s` s."""
    seen: set[str] = set()
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-tb-up-{os.getpid()}") as c:
        await c.subscribe(TELEMETRY, qos=0)
        try:
            async with asyncio.timeout(within_s):
                async for msg in c.messages:
                    assert isinstance(msg.payload, bytes)
                    seen.update(json.loads(msg.payload))
                    if len(seen) >= devices:
                        return True
        except TimeoutError:
            pass
    return False


def tree_cpu_s(ps: psutil.Process) -> float:
    """User + system CPU-s of a process, its waited-for children and its live descendants."""
    total = 0.0
    for p in [ps, *ps.children(recursive=True)]:
        with_children = p is ps
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
        if with_children:
            total += t.children_user + t.children_system
    return total


def run_gateway(
    tmp: Path, venv: Path, broker_port: int, ports: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    """One gateway run over `ports`; its figures."""
    devices = len(ports)
    out: dict[str, Any] = {"devices": devices, **wait_for_load(args.max_load, 0)}
    work = Path(tempfile.mkdtemp(dir=tmp, prefix=f"tbgw-{devices}-"))
    config = write_gateway_config(work, broker_port, ports, args.registers, args.interval_ms)
    sub_out = work / "subscriber.json"
    sub = start_subscriber(__file__, broker_port, sub_out)
    # Only what it needs: the gateway reads host, port, username, ... from the environment.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(work)),
        "LANG": "C.UTF-8",
        "TB_GW_CONFIG_DIR": str(config),
        # Its update check (a POST to its vendor at start and hourly, tb_updater.py) goes to a
        # closed port here and fails at once instead of leaving the machine.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    with (work / "logs" / "stdout.log").open("ab") as log:
        gateway = subprocess.Popen(
            [str(venv / "bin" / "thingsboard-gateway")], cwd=work, env=env, stdout=log, stderr=log
        )
    ps = psutil.Process(gateway.pid)
    try:
        if not asyncio.run(devices_publishing(broker_port, devices, 60)):
            raise SystemExit(f"the gateway published for fewer than {devices} devices; see {work}")
        rss_start = ps.memory_info().rss
        time.sleep(args.warmup)
        rss_warm = ps.memory_info().rss
        t0, c0 = time.time(), tree_cpu_s(ps)
        rss: list[int] = []
        while time.time() - t0 < args.seconds:
            time.sleep(1)
            rss.append(ps.memory_info().rss)
        t1, c1 = time.time(), tree_cpu_s(ps)
        out["threads"] = ps.num_threads()
        out["child_processes"] = len(ps.children(recursive=True))
    finally:
        stop(gateway)
        stop_subscriber(sub)
    out["load_avg_end"] = round(os.getloadavg()[0], 2)
    delivered, repeated, hist, sub_s = tally(sub_out, t0, t1)
    wall = t1 - t0
    offered_per_s = devices * args.registers * 1000 / args.interval_ms
    delivered_per_s = delivered / sub_s
    cores = (c1 - c0) / wall
    errors = (work / "logs" / "gw.log").read_text(errors="replace").count(" ERROR ")
    out.update(
        {
            "offered_per_s": round(offered_per_s),
            "delivered_per_s": round(delivered_per_s),
            "delivered_ratio": round(delivered_per_s / offered_per_s, 3),
            "repeated_batches": repeated,
            "cpu_cores": round(cores, 3),
            "cpu_s_per_1000_delivered": round(cores / delivered_per_s * 1000, 4)
            if delivered_per_s
            else None,
            "readings_per_cpu_s": round(delivered_per_s / cores) if cores else None,
            "latency_ms": {
                "readings": sum(hist.values()),
                "p50": percentile(hist, 0.50),
                "p90": percentile(hist, 0.90),
                "p99": percentile(hist, 0.99),
                "max": max(hist) if hist else None,
            },
            "rss_mb": {
                "connected": round(rss_start / 2**20, 1),
                "after_warmup": round(rss_warm / 2**20, 1),
                "end": round(rss[-1] / 2**20, 1),
                "max": round(max(rss) / 2**20, 1),
            },
            "log_errors": errors,
            "window_s": round(wall, 1),
        }
    )
    return out


# -- the comparison -----------------------------------------------------------------------------
def cpu(r: dict[str, Any], key: str) -> Any:
    """A CPU figure of either run: bench/agent_modbus.py names the agent's `agent_*`."""
    return r[key] if key in r else r[f"agent_{key}"]


def mean(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for r in runs:
        v: Any = r
        for key in path:
            v = v[key]
        if v is not None:
            values.append(v)
    return sum(values) / len(values) if values else None


Runs = dict[int, list[dict[str, Any]]]  # device count → one run per round


def ratios(agent: Runs, tbgw: Runs, latency_devices: int) -> dict[str, Any]:
    """Gateway ÷ agent of the means over rounds, with the device counts they come from."""
    out: dict[str, Any] = {}
    kept_up = [n for n in sorted(tbgw) if (mean(tbgw[n], "delivered_ratio") or 0) >= FULL_DELIVERY]
    cpu_n = kept_up[-1] if kept_up else min(tbgw)
    a, g = (
        mean([{"v": cpu(r, "cpu_s_per_1000_delivered")} for r in runs[cpu_n]], "v")
        for runs in (agent, tbgw)
    )
    out["cpu_s_per_1000"] = {
        "devices": cpu_n,
        "gateway_kept_up": bool(kept_up),
        "tbgw_delivered_ratio": round(mean(tbgw[cpu_n], "delivered_ratio") or 0, 3),
        "agent": round(a, 4) if a else None,
        "tbgw": round(g, 4) if g else None,
        "tbgw_over_agent": round(g / a, 2) if a and g else None,
    }
    full = max(tbgw)
    a, g = mean(agent[full], "delivered_per_s"), mean(tbgw[full], "delivered_per_s")
    out["delivered_per_s_at_full_offer"] = {
        "devices": full,
        "offered_per_s": agent[full][0]["offered_per_s"],
        "agent": round(a) if a else None,
        "tbgw": round(g) if g else None,
        "agent_over_tbgw": round(a / g, 2) if a and g else None,
    }
    if latency_devices in tbgw:
        lat: dict[str, Any] = {
            "devices": latency_devices,
            "offered_per_s": agent[latency_devices][0]["offered_per_s"],
        }
        for q in ("p50", "p99"):
            a = mean(agent[latency_devices], "latency_ms", q)
            g = mean(tbgw[latency_devices], "latency_ms", q)
            lat[q] = {
                "agent": round(a) if a else None,
                "tbgw": round(g) if g else None,
                "tbgw_over_agent": round(g / a, 2) if a and g else None,
            }
        out["latency_ms"] = lat
    # Every device count, for the record: delivered and CPU-s per 1,000, means over rounds.
    out["by_devices"] = {
        n: {
            name: {
                "delivered_per_s": round(mean(runs[n], "delivered_per_s") or 0),
                "cpu_s_per_1000": round(
                    mean([{"v": cpu(r, "cpu_s_per_1000_delivered")} for r in runs[n]], "v") or 0,
                    4,
                ),
            }
            for name, runs in (("agent", agent), ("tbgw", tbgw))
        }
        for n in sorted(tbgw)
    }
    return out


def show(name: str, r: dict[str, Any]) -> None:
    lat = r["latency_ms"]
    print(
        f"{name}: offered {r['offered_per_s']:,}/s, delivered {r['delivered_per_s']:,}/s "
        f"({100 * r['delivered_ratio']:.1f} %); {cpu(r, 'cpu_cores')} cores, "
        f"{cpu(r, 'cpu_s_per_1000_delivered')} CPU-s per 1,000; latency ms p50 {lat['p50']} "
        f"p99 {lat['p99']}; RSS end {r['rss_mb']['end']} MB; "
        f"load {r['load_avg_before']} → {r['load_avg_end']}",
        flush=True,
    )


def main() -> None:
    """Run the comparison and record it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, nargs="+", default=[2, 10], help="device counts")
    parser.add_argument("--rounds", type=int, default=2, help="agent, gateway, agent, gateway")
    parser.add_argument("--latency-devices", type=int, default=2)
    parser.add_argument("--registers", type=int, default=1000, help="uint16 registers per device")
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--load-wait", type=float, default=60, help="once, before the runs")
    parser.add_argument("--gateway-venv", type=Path, default=ROOT / ".venv-tbgw")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--subscriber", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--rpc-responder", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        buckets = asyncio.run(subscriber(int(args.subscriber[0]), TELEMETRY, count_tb))
        Path(args.subscriber[1]).write_text(json.dumps(buckets))
        return
    if args.rpc_responder:
        asyncio.run(answer_session_limits(args.rpc_responder))
        return
    if shutil.which("mosquitto") is None:
        raise SystemExit("needs mosquitto")
    versions = install_gateway(args.gateway_venv).split()
    # What bench/agent_modbus.py's run() reads: its defaults, no py-spy, no per-run load wait.
    agent_args = argparse.Namespace(
        registers=args.registers,
        interval_ms=args.interval_ms,
        warmup=args.warmup,
        seconds=args.seconds,
        commit_interval=None,
        max_load=args.max_load,
        load_wait=0,
        py_spy=None,
    )
    results: dict[str, Any] = {
        "benchmark": "peer_tbgw",
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            "agent_commit": git("rev-parse", "--short", "HEAD"),
            "agent_uncommitted": git("status", "--porcelain", "edge_agent", "wire").splitlines(),
            "thingsboard_gateway": versions[0] if versions else None,
            "gateway_pymodbus": versions[1] if len(versions) > 1 else None,
        },
        "settings": {
            "registers_per_device": args.registers,
            "type": "uint16 holding, every poll of every register is a reading",
            "interval_ms": args.interval_ms,
            "warmup_s": args.warmup,
            "window_s": args.seconds,
            "rounds": args.rounds,
            "order": "per round, per device count: agent, then gateway",
            "agent": "bench/agent_modbus.py run(): agent defaults (SQLite buffer, WAL, "
            "synchronous=FULL), receipts from bench/hub_stand_in.py; CPU of the agent process",
            "tbgw": "in-memory storage, report strategy ON_RECEIVED, no rate limits, one "
            "wide-range 16uint time series per device read 125 registers per request, "
            "logs at WARNING; CPU of the gateway's process tree",
            "tbgw_session_limits": SESSION_LIMITS,
            "cpu_ratio_at": f"largest device count with gateway delivery >= {FULL_DELIVERY}",
        },
    }
    load = wait_for_load(args.max_load, args.load_wait)
    results["machine"]["load_wait"] = load
    agent: dict[int, list[dict[str, Any]]] = {n: [] for n in args.runs}
    tbgw: dict[int, list[dict[str, Any]]] = {n: [] for n in args.runs}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        binary, version = compile_server(tmp)
        results["versions"]["libmodbus"] = version
        servers, ports = start_servers(binary, tmp, max(args.runs), args.registers)
        broker, broker_port = start_broker(tmp)
        responder = start_responder(broker_port, tmp / "responder.log")
        with (tmp / "rpc.log").open("ab") as rpc_log:
            rpc = subprocess.Popen(
                [sys.executable, __file__, "--rpc-responder", str(broker_port)],
                stdout=rpc_log,
                stderr=rpc_log,
            )
        try:
            time.sleep(1)
            for round_ in range(1, args.rounds + 1):
                for devices in args.runs:
                    r = agent_modbus.run(tmp, broker_port, ports[:devices], agent_args)
                    agent[devices].append(r)
                    show(f"round {round_} agent   {devices:>2} devices", r)
                    r = run_gateway(tmp, args.gateway_venv, broker_port, ports[:devices], args)
                    tbgw[devices].append(r)
                    show(f"round {round_} tbgw    {devices:>2} devices", r)
        finally:
            stop(rpc)
            stop(responder)
            broker.terminate()
            broker.wait()
            for server in servers:
                server.terminate()
                server.wait()
                if server.stdout is not None:
                    server.stdout.close()
    results["runs"] = {f"devices_{n}": {"agent": agent[n], "tbgw": tbgw[n]} for n in args.runs}
    results["ratios"] = ratios(agent, tbgw, args.latency_devices)
    results["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    r = results["ratios"]
    cpu, full = r["cpu_s_per_1000"], r["delivered_per_s_at_full_offer"]
    short = (
        "" if cpu["gateway_kept_up"] else f" (gateway {cpu['tbgw_delivered_ratio']:.0%} delivered)"
    )
    print(
        f"CPU-s per 1,000 readings at {cpu['devices']} devices{short}: "
        f"agent {cpu['agent']}, gateway {cpu['tbgw']} (×{cpu['tbgw_over_agent']})\n"
        f"delivered at {full['offered_per_s']:,}/s offered: agent {full['agent']:,}/s, "
        f"gateway {full['tbgw']:,}/s (agent ×{full['agent_over_tbgw']})"
    )
    if "latency_ms" in r:
        lat = r["latency_ms"]
        print(
            f"latency at {lat['offered_per_s']:,}/s: p50 agent {lat['p50']['agent']} ms, "
            f"gateway {lat['p50']['tbgw']} ms (×{lat['p50']['tbgw_over_agent']}); p99 agent "
            f"{lat['p99']['agent']} ms, gateway {lat['p99']['tbgw']} ms "
            f"(×{lat['p99']['tbgw_over_agent']})"
        )
    args.results.parent.mkdir(exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
