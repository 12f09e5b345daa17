"""OPC-UA subscription throughput: 5,000 monitored items at 100 ms sampling on a local server.

The server runs in its own process (this file with `--serve`, or node-opcua with
`--node-server`), so the agent's CPU share is measurable on its own. Every 100 ms every
monitored item gets a new value. The client is the real `OpcuaDriver`; a consumer drains
`batches()` as the buffer writer does. Recorded: values delivered per second, client CPU% (share
of one core), values per client CPU-second (what one fully used core sustains: the figure to
compare with the 20,000/s target when the local server is the limit), peak RSS, server CPU%.

    .venv/bin/python bench/opcua_subscribe.py [--items 5000] [--sampling-ms 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
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


async def serve(port: int, items: int, period_ms: int) -> None:
    """An asyncua server whose N Double variables all change every `period_ms`."""
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
    tick = 0
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
        next_at = max(next_at + period, time.monotonic())
        await asyncio.sleep(next_at - time.monotonic())


# -- client (the measured process) ----------------------------------------------------------


async def measure(
    port: int,
    ns: int,
    items: int,
    sampling_ms: int,
    seconds: float,
    per_subscription: int,
    publish_requests: int,
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

    async def consume() -> None:
        nonlocal count
        async for batch in driver.batches():
            count += len(batch)

    me = psutil.Process()
    async with driver:
        consumer = asyncio.create_task(consume(), name="bench-consumer")
        await asyncio.sleep(3)  # warm-up: initial values and steady state
        rss_peak = me.memory_info().rss
        start_count, start_cpu, start = count, me.cpu_times(), time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
            rss_peak = max(rss_peak, me.memory_info().rss)
        end_count, end_cpu, end = count, me.cpu_times(), time.perf_counter()
        consumer.cancel()
        dropped = driver.stats.dropped_samples
        reconnects = driver.stats.reconnects
    wall = end - start
    cpu = (end_cpu.user - start_cpu.user) + (end_cpu.system - start_cpu.system)
    return {
        "values_per_s": round((end_count - start_count) / wall),
        "client_cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        "client_rss_mb_peak": round(rss_peak / 2**20, 1),
        # What one fully used core would sustain: the figure to compare with the target when the
        # local server, not the agent, is what limits values_per_s.
        "client_values_per_cpu_second": round((end_count - start_count) / cpu) if cpu else None,
        "dropped_samples": dropped,
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
        "--node-server",
        action="store_true",
        help="serve with node-opcua (tests/interop/opcua) instead of the asyncua load generator",
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.items, args.sampling_ms))
        return

    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    if not args.node_server:
        argv = [sys.executable, __file__, "--serve", str(port), "--items", str(args.items)]
        argv += ["--sampling-ms", str(args.sampling_ms)]
        env = None
        server_name = "asyncua"
    else:
        # node-opcua is installed for the interop tests (tests/interop/opcua, `npm install`).
        argv = ["node", str(root / "bench" / "opcua_bench_server.js"), str(port)]
        argv += [str(args.items), str(args.sampling_ms)]
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
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
