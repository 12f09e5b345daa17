"""OPC-UA subscription throughput: 5,000 monitored items at 100 ms sampling on a local server.

The server runs in its own process (this file with `--serve`, or node-opcua with
`--node-server`), so the agent's CPU share is measurable on its own. Every 100 ms every
monitored item gets a new value. The client is the real `OpcuaDriver`; a consumer drains
`batches()` as the agent's buffer writer does. Recorded: values delivered per second, what the
server produced (it counts the values it generates: it may not keep up with the nominal offer),
client CPU% (share of one core), values per client CPU-second (what one fully used core
sustains: the figure to compare with the 20,000/s target when the local server is the limit),
latency from each value's source timestamp (set by the server when it makes the value) to the
consumer, RSS at the start and end of the window, server CPU%.

`--consumer-us N` makes the consumer spend N µs of CPU per value on the agent's event loop, as
a slow buffer would: more is offered than the agent keeps, and what is measured is how it copes
(the kept share it reports, latency and memory).

    .venv/bin/python bench/opcua_subscribe.py [--items 5000] [--sampling-ms 100] [--seconds 20]
        [--node-server] [--consumer-us 0] [--out results/opcua_subscribe.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.drivers.opcua import (
    OpcuaDriver,
    OpcuaEndpoint,
    OpcuaPoint,
    SessionOptions,
)
from edge_agent.drivers.opcua.session import PUBLISH_REQUESTS

RESULTS = Path(__file__).parent / "results" / "opcua_subscribe.json"


# -- server process -------------------------------------------------------------------------


async def serve(port: int, items: int, period_ms: int, produced: Path) -> None:
    """An asyncua server whose N Double variables all change every `period_ms`; the count of
    values generated is written to `produced` after every tick."""
    from asyncua import Server, ua  # noqa: PLC0415

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:millstream:bench")
    folder = await server.nodes.objects.add_folder(ua.NodeId("Bench", ns), "Bench")
    for i in range(items):
        await folder.add_variable(ua.NodeId(f"v{i}", ns), f"v{i}", 0.0)
    await server.start()
    print("ready", flush=True)
    # Load generator: notifications are queued straight into the server's subscriptions (skipping
    # its address-space write path, which saturates near 5,000 values/s), so what is measured is
    # the agent, not asyncua's server. The wire traffic is the same as for real value changes.
    subscriptions = server.iserver.subscription_service.subscriptions
    tick = made = 0
    period = period_ms / 1000
    next_at = time.monotonic()
    while True:
        tick += 1
        stamp = dt.datetime.now(dt.UTC)
        for isub in list(subscriptions.values()):
            items_by_id = isub.monitored_item_srv._monitored_items
            for mid, mdata in list(items_by_id.items()):
                value = ua.DataValue(
                    ua.Variant(float(tick * 10_000 + mdata.client_handle), ua.VariantType.Double),
                    SourceTimestamp=stamp,
                    ServerTimestamp=stamp,
                )
                note = ua.MonitoredItemNotification(ClientHandle=mdata.client_handle, Value=value)
                await isub.enqueue_datachange_event(mid, note, mdata.queue_size)
                made += 1
        _record(produced, made)
        next_at = max(next_at + period, time.monotonic())
        await asyncio.sleep(next_at - time.monotonic())


# -- client (the measured process) ----------------------------------------------------------


def _record(path: Path, made: int) -> None:
    # Tiny and local: what the client reads at the start and end of its window.
    path.write_text(str(made))


def _produced(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def _percentile(ordered: Sequence[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def measure(
    port: int,
    ns: int,
    items: int,
    sampling_ms: int,
    seconds: float,
    per_subscription: int,
    publish_requests: int,
    consumer_us: float,
    produced_file: Path,
) -> dict[str, Any]:
    """Run the driver against the server and return the figures."""
    points = [
        OpcuaPoint(f"v{i}", node=f"ns={ns};s=v{i}", sampling_ms=sampling_ms) for i in range(items)
    ]
    state = Path(tempfile.mkdtemp(prefix="opcua-bench-"))
    driver = OpcuaDriver(
        "bench",
        OpcuaEndpoint(f"opc.tcp://127.0.0.1:{port}"),
        points,
        SessionOptions(
            state_dir=state,
            timeout_s=30.0,
            items_per_subscription=per_subscription,
            publish_requests=publish_requests,
        ),
    )
    count = 0
    measuring = False
    # (latency of the batch's oldest value in ms, values in the batch) while measuring.
    latencies: list[tuple[int, int]] = []

    async def consume() -> None:
        nonlocal count
        async for batch in driver.batches():
            count += len(batch)
            if measuring:
                oldest = min(s.ts for s in batch)
                latencies.append((time.time_ns() // 1_000_000 - oldest, len(batch)))
            if consumer_us:
                # A slow buffer on the same event loop: CPU spent per value.
                until = time.perf_counter() + consumer_us * len(batch) / 1e6
                while time.perf_counter() < until:
                    pass

    me = psutil.Process()
    async with driver:
        consumer = asyncio.create_task(consume(), name="bench-consumer")
        await asyncio.sleep(3)  # warm-up: initial values and steady state
        rss_start = rss_peak = me.memory_info().rss
        measuring = True
        dropped_start = driver.stats.dropped_samples
        made_start = _produced(produced_file)
        start_count, start_cpu, start = count, me.cpu_times(), time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
            rss_peak = max(rss_peak, me.memory_info().rss)
        end_count, end_cpu, end = count, me.cpu_times(), time.perf_counter()
        made = _produced(produced_file) - made_start
        measuring = False
        rss_end = me.memory_info().rss
        consumer.cancel()
        dropped = driver.stats.dropped_samples - dropped_start
        reconnects = driver.stats.reconnects
        kept_share = driver.health.schedule
        session = driver._session
        fast = session.fast_responses if session else None
        slow = session.asyncua_responses if session else None
    wall = end - start
    cpu = (end_cpu.user - start_cpu.user) + (end_cpu.system - start_cpu.system)
    # Each value weighs as one: a batch's oldest value stands for all of it (a bound).
    weighted = sorted(lat for lat, n in latencies for _ in range(n))
    delivered = end_count - start_count
    return {
        "values_per_s": round(delivered / wall),
        "server_produced_values_per_s": round(made / wall) if made else None,
        "delivered_of_produced": round(delivered / made, 3) if made else None,
        "client_cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        "client_rss_mb_peak": round(rss_peak / 2**20, 1),
        # What one fully used core would sustain: the figure to compare with the target when the
        # local server, not the agent, is what limits values_per_s.
        "client_values_per_cpu_second": round((end_count - start_count) / cpu) if cpu else None,
        "dropped_samples": dropped,
        "kept_share_reported": kept_share,
        "latency_ms_p50": _percentile(weighted, 0.5),
        "latency_ms_p99": _percentile(weighted, 0.99),
        "latency_ms_max": weighted[-1] if weighted else None,
        "latency_ms_mean": round(statistics.fmean(weighted), 1) if weighted else None,
        "client_rss_mb_start": round(rss_start / 2**20, 1),
        "client_rss_mb_end": round(rss_end / 2**20, 1),
        "publish_responses_decoded": {"fast_path": fast, "asyncua": slow},
        "reconnects": reconnects,
        "offered_values_per_s": round(items * 1000 / sampling_ms),
        "measured_seconds": round(wall, 1),
    }


def main() -> None:
    """Start the server process, measure the client, print and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--sampling-ms", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--per-subscription", type=int, default=1000)
    parser.add_argument("--publish-requests", type=int, default=PUBLISH_REQUESTS)
    parser.add_argument(
        "--consumer-us",
        type=float,
        default=0.0,
        help="CPU µs the consumer spends per value (a slow buffer: overload)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the figures")
    parser.add_argument("--produced-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--node-server",
        action="store_true",
        help="serve with node-opcua (tests/interop/opcua) instead of the asyncua load generator",
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.items, args.sampling_ms, args.produced_file))
        return

    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    produced_file = Path(tempfile.mkdtemp(prefix="opcua-bench-")) / "produced"
    if not args.node_server:
        argv = [sys.executable, __file__, "--serve", str(port), "--items", str(args.items)]
        argv += ["--sampling-ms", str(args.sampling_ms), "--produced-file", str(produced_file)]
        env = None
        server_name = "asyncua"
    else:
        # node-opcua is installed for the interop tests (tests/interop/opcua, `npm install`).
        argv = ["node", str(root / "bench" / "opcua_bench_server.js"), str(port)]
        argv += [str(args.items), str(args.sampling_ms), str(produced_file)]
        modules = root / "tests" / "interop" / "opcua" / "node_modules"
        env = {**os.environ, "NODE_PATH": str(modules)}
        server_name = "node-opcua"
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.strip() == "ready":
                break
        else:
            raise SystemExit("bench server did not start")
        server_ps = psutil.Process(server.pid)
        server_ps.cpu_percent()
        figures = asyncio.run(
            measure(
                port,
                1 if args.node_server else 2,
                args.items,
                args.sampling_ms,
                args.seconds,
                args.per_subscription,
                args.publish_requests,
                args.consumer_us,
                produced_file,
            )
        )
        figures["server_cpu_percent_of_one_core"] = round(server_ps.cpu_percent(), 1)
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()
    result = {
        "benchmark": "opcua_subscribe",
        "items": args.items,
        "sampling_ms": args.sampling_ms,
        "items_per_subscription": args.per_subscription,
        "publish_requests_in_flight": args.publish_requests,
        "consumer_us_per_value": args.consumer_us,
        **figures,
        "target_values_per_s": 20_000,
        "server": f"{server_name} in its own process; every variable changes every sampling tick",
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            # The machine may be shared: a load above the core count starves both processes.
            "load_average_1m_after": round(os.getloadavg()[0], 2),
        },
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
