"""Edge agent end to end against libmodbus servers: CPU per reading, poll → broker latency, RSS.

Issue #28's figures. Compiles the libmodbus test server (tests/edge_agent/drivers/modbus/
libmodbus_server.c, gcc + pkg-config libmodbus) into a temporary folder and starts one per
device, each holding `--registers` uint16 holding registers. Generates a device profile of one
uint16 tag per register, polled every `--interval-ms` (no deadband, so every poll of every tag
is a reading), and an agent.yaml naming `devices` machines, then runs the real agent process
(`edge-agent run`) against a private Mosquitto, with the receipt responder of
bench/hub_stand_in.py answering like the hub. A subscriber process on the telemetry topics
counts the readings (each batch once) and records, per reading, receive time − reading ts.

For each device count in `--runs` (default 2 → 20,000 readings/s offered, 10 → 100,000/s):
after `--warmup` s, over `--seconds` s:

- agent CPU (psutil, the agent process, every thread): CPU-s per 1,000 readings delivered and
  readings per CPU-s;
- delivered/offered: readings the subscriber saw ÷ readings the schedule asked for; the agent's
  own `schedule` share (status file, the figure behind "polling at N % of schedule");
- latency p50/p90/p99/max (receive − ts);
- agent RSS when connected, after warm-up, at the end, and its slope over the window.

The machine is shared: each run waits (up to `--load-wait` s) for the 1-minute load average to
drop below `--max-load`, then measures anyway; the load before and after is recorded.

    .venv/bin/python bench/agent_modbus.py [--runs 2 10] [--registers 1000] [--interval-ms 100]
        [--warmup 10] [--seconds 30] [--commit-interval 20ms] [--py-spy PATH] [--results PATH]

Prints the figures and writes bench/results/agent_modbus.json (runs recorded by earlier
invocations stay; one with another `--seconds` or `--commit-interval` gets its own key).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiomqtt
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hub_stand_in import HEAD, start_broker, start_responder, stop
from tests.harness import libmodbus

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "agent_modbus.json"
EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
AGENT_ID, SITE, LINE = "bench-modbus", "bench", "l1"
WINDOW_S = 30.0
TS = re.compile(rb'"ts":(\d+)')
# What the agent's buffer runs with (docs/agent.md "Buffer semantics", edge_agent/buffer/schema.py).
BUFFER_SQLITE = {"journal_mode": "WAL", "synchronous": "FULL", "commit_interval": "100ms"}


# -- libmodbus servers ---------------------------------------------------------------------------
def compile_server(tmp: Path) -> tuple[Path, str]:
    """The map-file server built like the tests build it; its binary and libmodbus' version."""
    try:
        binary = libmodbus.build(libmodbus.MAP_SERVER_C, tmp)
    except libmodbus.LibmodbusMissingError as exc:
        raise SystemExit(str(exc)) from exc
    return binary, libmodbus.libmodbus_version()


def start_servers(
    binary: Path, tmp: Path, count: int, registers: int
) -> tuple[list[subprocess.Popen[str]], list[int]]:
    """`count` libmodbus servers (one client each), holding registers 0.. set to 0..; ports."""
    map_file = tmp / "registers.map"
    map_file.write_text("".join(f"h {a} {a % 65536}\n" for a in range(registers)))
    started = [libmodbus.spawn(binary, str(map_file)) for _ in range(count)]
    return [proc for proc, _ in started], [port for _, port in started]


# -- subscriber: counts readings and their poll → broker latency ---------------------------------
# What a subscriber does with one message: the (ts, readings) pairs it carries, or None for a
# repeat of a batch already counted. bench/peer_tbgw.py counts the ThingsBoard gateway's with it.
Count = Callable[[bytes], Iterable[tuple[int, int]] | None]


def agent_batch_counter() -> Count:
    """Counts the agent's telemetry batches, each (src, seq) once."""
    seen: set[tuple[bytes, int]] = set()

    def count(payload: bytes) -> Iterable[tuple[int, int]] | None:
        head = HEAD.match(payload)
        assert head is not None
        key = (head["src"], int(head["seq"]))
        if key in seen:  # a republish (no receipt in time): counted once, no latency
            return None
        seen.add(key)
        # A poll's readings share few timestamps: count them in C, convert once each.
        return ((int(ts), n) for ts, n in Counter(TS.findall(payload)).items())

    return count


async def subscriber(
    port: int, topic: str = f"ms/v1/{SITE}/{LINE}/+/telemetry", count: Count | None = None
) -> dict[int, dict[str, Any]]:
    """Until stdin closes: per second of receive time, readings (each batch once), repeated
    batches and a histogram of receive − ts in ms."""
    count = count or agent_batch_counter()
    buckets: dict[int, dict[str, Any]] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-sub-{os.getpid()}") as c:
        await c.subscribe(topic, qos=1)
        print("READY", flush=True)

        async def consume() -> None:
            async for msg in c.messages:
                now_ms = time.time() * 1000
                payload = msg.payload
                assert isinstance(payload, bytes)
                bucket = buckets.setdefault(
                    int(now_ms // 1000), {"readings": 0, "repeated": 0, "latency_ms": Counter()}
                )
                counted = count(payload)
                if counted is None:
                    bucket["repeated"] += 1
                    continue
                for ts, n in counted:
                    bucket["readings"] += n
                    bucket["latency_ms"][int(now_ms - ts)] += n

        task = asyncio.create_task(consume())
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return buckets


def start_subscriber(script: str, broker_port: int, out: Path) -> subprocess.Popen[str]:
    """`script --subscriber PORT OUT` in its own process, once it has subscribed; closing its
    stdin makes it write its buckets to `out` and exit."""
    sub = subprocess.Popen(
        [sys.executable, script, "--subscriber", str(broker_port), str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sub.stdout is not None
    if sub.stdout.readline().strip() != "READY":
        raise SystemExit("subscriber failed")
    return sub


def stop_subscriber(sub: subprocess.Popen[str]) -> None:
    """Close its stdin (it writes its buckets) and wait for it."""
    assert sub.stdin is not None
    sub.stdin.close()
    sub.wait(30)
    if sub.stdout is not None:
        sub.stdout.close()


def tally(buckets_file: Path, t0: float, t1: float) -> tuple[int, int, Counter[int], int]:
    """Readings, repeated batches and the latency histogram over the whole seconds of receive
    time inside [t0, t1]; and how many seconds that is."""
    buckets = json.loads(buckets_file.read_text())
    first, last = math.ceil(t0), math.floor(t1)
    hist: Counter[int] = Counter()
    delivered = repeated = 0
    for second in range(first, last):
        b = buckets.get(str(second), {"readings": 0, "repeated": 0, "latency_ms": {}})
        delivered += b["readings"]
        repeated += b["repeated"]
        hist.update({int(k): v for k, v in b["latency_ms"].items()})
    return delivered, repeated, hist, last - first


def percentile(hist: Counter[int], q: float) -> int | None:
    """The q-quantile (0..1) of a histogram value → count (nearest rank)."""
    total = sum(hist.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return value
    return max(hist)


# -- the agent's config -------------------------------------------------------------------------
def write_config(
    work: Path,
    broker_port: int,
    ports: list[int],
    registers: int,
    poll_ms: int,
    commit_interval: str | None,
) -> Path:
    """A profile of `registers` uint16 tags (no deadband: every poll is sent) and agent.yaml."""
    profiles = work / "device_profiles"
    profiles.mkdir(parents=True)
    tags = "".join(
        f"  - {{name: r{a}, table: holding, address: {a}, type: uint16}}\n"
        for a in range(registers)
    )
    (profiles / "bench-u16.yaml").write_text(
        "profile: bench-u16\nvendor: Millstream\nmodel: libmodbus bench server\n"
        "protocol: modbus\nsource: bench/agent_modbus.py\n"
        f"defaults: {{order: ABCD, poll_ms: {poll_ms}}}\ntags:\n{tags}"
    )
    devices = "".join(
        f"  - machine: m{i}\n    profile: bench-u16\n"
        f"    modbus: {{host: 127.0.0.1, port: {port}, unit: 1, timeout_ms: 1000}}\n"
        for i, port in enumerate(ports)
    )
    config = work / "agent.yaml"
    config.write_text(
        f"agent: {{id: {AGENT_ID}, site: {SITE}, line: {LINE}}}\n"
        # The status file is how this bench watches the agent; the rest are the defaults.
        f"mqtt: {{url: 'mqtt://127.0.0.1:{broker_port}', status_interval: 1s}}\n"
        "buffer: {path: ./buffer.db, max_bytes: 1GiB, max_age: 7d"
        + (f", commit_interval: {commit_interval}" if commit_interval else "")
        + "}\n"
        f"devices:\n{devices}"
    )
    return config


def status(work: Path) -> dict[str, Any]:
    try:
        return json.loads((work / "state" / "agent-status.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_for_load(max_load: float, max_wait: float) -> dict[str, Any]:
    """Wait until the 1-minute load average is below `max_load`, at most `max_wait` s."""
    t0 = time.monotonic()
    while os.getloadavg()[0] >= max_load and time.monotonic() - t0 < max_wait:
        time.sleep(5)
    load = os.getloadavg()[0]
    return {
        "load_avg_before": round(load, 2),
        "waited_s": round(time.monotonic() - t0),
        "measured_above_max_load": load >= max_load,
    }


def run(tmp: Path, broker_port: int, ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """One agent run over `ports`; its figures."""
    devices = len(ports)
    out: dict[str, Any] = {"devices": devices, **wait_for_load(args.max_load, args.load_wait)}
    # Its own folder: bench/peer_tbgw.py runs the same device count more than once.
    work = Path(tempfile.mkdtemp(dir=tmp, prefix=f"run-{devices}-"))
    config = write_config(
        work, broker_port, ports, args.registers, args.interval_ms, args.commit_interval
    )
    sub_out = work / "subscriber.json"
    sub = start_subscriber(__file__, broker_port, sub_out)
    with (work / "agent.log").open("ab") as log:
        agent = subprocess.Popen([EDGE_AGENT, "run", str(config)], stdout=log, stderr=log)
    ps = psutil.Process(agent.pid)
    spy: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 60
        while True:
            s = status(work)
            online = [d.get("online") for d in s.get("devices", {}).values()]
            if s.get("connected") and len(online) == devices and all(online):
                break
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"agent did not come up; see {work / 'agent.log'}")
            time.sleep(0.2)
        rss_start = ps.memory_info().rss
        time.sleep(args.warmup)
        if args.py_spy:
            spy = subprocess.Popen(
                # --gil: only the thread holding the GIL, i.e. where the Python CPU goes;
                # --nonblocking: the agent is never paused (its latency is being measured).
                [args.py_spy, "record", "--pid", str(agent.pid), "--duration",
                 str(int(args.seconds)), "--format", "raw", "--threads", "--gil", "--nonblocking",
                 "--output", str(Path(tempfile.gettempdir()) / f"agent_modbus_{devices}.pyspy")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        rss_warm = ps.memory_info().rss
        t0, s0, c0 = time.time(), status(work), ps.cpu_times()
        samples: list[tuple[float, int, int, list[float]]] = []  # t, rss, buffered, schedules
        while time.time() - t0 < args.seconds:
            time.sleep(1)
            s = status(work)
            samples.append(
                (
                    time.time() - t0,
                    ps.memory_info().rss,
                    s.get("buffer", {}).get("readings", 0),
                    [d["schedule"] for d in s["devices"].values() if d.get("schedule")],
                )
            )
        t1, s1, c1 = time.time(), status(work), ps.cpu_times()
        out["threads"] = ps.num_threads()
    finally:
        stop(agent)
        if spy is not None:
            spy.wait()
        stop_subscriber(sub)
    out["load_avg_end"] = round(os.getloadavg()[0], 2)

    delivered, repeated, hist, sub_s = tally(sub_out, t0, t1)
    wall = t1 - t0
    offered_per_s = devices * args.registers * 1000 / args.interval_ms
    delivered_per_s = delivered / sub_s
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    cores = cpu / wall

    def produced(s: dict[str, Any]) -> int:
        return sum(d["produced"] for d in s["devices"].values())

    schedules = [x for *_, sch in samples for x in sch]
    final_schedule = [d.get("schedule") for d in s1["devices"].values()]
    # Slope of RSS over the window (least squares), MB per minute.
    n = len(samples)
    mt = sum(t for t, *_ in samples) / n
    mr = sum(r for _, r, *_ in samples) / n
    var = sum((t - mt) ** 2 for t, *_ in samples)
    slope = sum((t - mt) * (r - mr) for t, r, *_ in samples) / var if var else 0.0
    out.update(
        {
            "offered_per_s": round(offered_per_s),
            "produced_per_s": round((produced(s1) - produced(s0)) / wall),
            "delivered_per_s": round(delivered_per_s),
            "delivered_ratio": round(delivered_per_s / offered_per_s, 3),
            "repeated_batches": repeated,
            "schedule_mean": round(sum(schedules) / len(schedules), 3) if schedules else None,
            "schedule_min": min(schedules) if schedules else None,
            "schedule_at_end": final_schedule,
            "agent_cpu_cores": round(cores, 3),
            # The kernel's part: sockets, SQLite's file writes and fsyncs.
            "agent_cpu_system_share": round((c1.system - c0.system) / cpu, 3) if cpu else None,
            "agent_cpu_s_per_1000_delivered": round(cores / delivered_per_s * 1000, 4)
            if delivered_per_s
            else None,
            "readings_per_agent_cpu_s": round(delivered_per_s / cores) if cores else None,
            "latency_ms": {
                "readings": sum(hist.values()),
                "p50": percentile(hist, 0.50),
                "p90": percentile(hist, 0.90),
                "p99": percentile(hist, 0.99),
                "max": max(hist) if hist else None,
            },
            "buffer_readings_start": s0.get("buffer", {}).get("readings"),
            "buffer_readings_end": s1.get("buffer", {}).get("readings"),
            "buffer_readings_max": max(b for _, _, b, _ in samples),
            "rss_mb": {
                "connected": round(rss_start / 2**20, 1),
                "after_warmup": round(rss_warm / 2**20, 1),
                "end": round(samples[-1][1] / 2**20, 1),
                "max": round(max(r for _, r, *_ in samples) / 2**20, 1),
                "slope_mb_per_min": round(slope * 60 / 2**20, 2),
                "every_10s": [round(r / 2**20, 1) for _, r, *_ in samples[9::10]],
            },
            "device_errors": sum(d.get("errors", 0) for d in s1["devices"].values()),
            "window_s": round(wall, 1),
        }
    )
    return out


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=False, capture_output=True, text=True
    ).stdout.strip()


def show(name: str, r: dict[str, Any]) -> None:
    lat, rss = r["latency_ms"], r["rss_mb"]
    print(
        f"{name}: offered {r['offered_per_s']:,}/s, produced {r['produced_per_s']:,}/s, "
        f"delivered {r['delivered_per_s']:,}/s "
        f"({100 * r['delivered_ratio']:.1f} %), agent schedule {r['schedule_mean']} "
        f"(min {r['schedule_min']})\n"
        f"  agent {r['agent_cpu_cores']} cores: {r['agent_cpu_s_per_1000_delivered']} CPU-s per "
        f"1,000 readings, {r['readings_per_agent_cpu_s']:,} readings per CPU-s\n"
        f"  latency ms p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']}\n"
        f"  RSS MB connected {rss['connected']} warm {rss['after_warmup']} end {rss['end']} "
        f"(slope {rss['slope_mb_per_min']} MB/min); buffer {r['buffer_readings_start']} → "
        f"{r['buffer_readings_end']}; load {r['load_avg_before']} → {r['load_avg_end']}",
        flush=True,
    )


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, nargs="+", default=[2, 10], help="device counts")
    parser.add_argument("--registers", type=int, default=1000, help="uint16 tags per device")
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=WINDOW_S)
    parser.add_argument(
        "--commit-interval", help="buffer.commit_interval, e.g. 20ms (default: the agent's)"
    )
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--load-wait", type=float, default=60, help="per run, seconds")
    parser.add_argument(
        "--py-spy", help="py-spy binary: record the agent in each window to $TMPDIR/*.pyspy"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--subscriber", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        buckets = asyncio.run(subscriber(int(args.subscriber[0])))
        Path(args.subscriber[1]).write_text(json.dumps(buckets))
        return
    results: dict[str, Any] = {
        "benchmark": "agent_modbus",
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "registers_per_device": args.registers,
            "type": "uint16 holding, one tag per register, no deadband",
            "interval_ms": args.interval_ms,
            "warmup_s": args.warmup,
            "max_load": args.max_load,
            "py_spy_attached": bool(args.py_spy),
            "buffer_sqlite": BUFFER_SQLITE,  # a run's own commit_interval is in the run
            "mqtt": "agent defaults (max_batch 1000, max_delay_ms 100, inflight 100, QoS 1), "
            "status_interval 1s; receipts from bench/hub_stand_in.py every 50 ms",
        },
        # The agent measured is the working tree's: other work may be under way in it.
        "agent_tree": {
            "commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": git("status", "--porcelain", "edge_agent", "wire").splitlines(),
        },
        "targets": {"p50_ms_at_20000": 50, "p99_ms_at_20000": 150, "p99_ms_overload": 1000},
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        binary, version = compile_server(tmp)
        results["settings"]["server"] = f"libmodbus {version} (libmodbus_server.c, gcc -O1)"
        servers, ports = start_servers(binary, tmp, max(args.runs), args.registers)
        broker, broker_port = start_broker(tmp)
        responder = start_responder(broker_port, tmp / "responder.log")
        try:
            time.sleep(1)
            for devices in args.runs:
                # Runs with other than the default window or commit interval get their own key.
                key = f"devices_{devices}"
                if args.seconds != WINDOW_S:
                    key += f"_{args.seconds:g}s"
                if args.commit_interval:
                    key += f"_commit_{args.commit_interval}"
                results[key] = run(tmp, broker_port, ports[:devices], args)
                results[key]["recorded"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                results[key]["agent_commit"] = results["agent_tree"]["commit"]
                results[key]["commit_interval"] = args.commit_interval or "100ms (default)"
                show(key, results[key])
        finally:
            stop(responder)
            broker.terminate()
            broker.wait()
            libmodbus.stop_all(servers)
    args.results.parent.mkdir(exist_ok=True)
    # Like agent_pipeline.json: runs of earlier invocations stay unless this one redid them.
    previous = json.loads(args.results.read_text()) if args.results.exists() else {}
    previous.update(results)
    args.results.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
