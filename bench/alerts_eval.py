"""Alert evaluation cost: readings per second through the engine, on one core.

Target (issue "alerts"): ≥ 100,000 readings/s evaluated with 10,000 rules over 50,000 series.
The rule mix is a plant's: per-machine thresholds on named tags (most rules), z-score and rate
rules over tag globs, quality rules; every series is watched by a threshold, about half by a
z-score rule. Readings arrive as committed batches of one machine (100 readings each), in
timestamp order, values noisy around a level with rare excursions (so alerts do fire and clear).
The first pass (every series seen for the first time: rule matching) is timed apart from the
steady state. CPU time of this process, so a busy machine does not flatter or punish it.

    .venv/bin/python bench/alerts_eval.py [--series 50000] [--rules 10000] [--readings 2000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.alerts.engine import Engine
from hub.alerts.rules import Rule

RESULTS = Path(__file__).parent / "results" / "alerts_eval.json"
NOW = 1_800_000_000_000
TAGS_PER_MACHINE = 50


def make_rules(machines: int, count: int) -> list[Rule]:
    """`count` rules: a few broad glob rules, the rest per-machine thresholds on named tags."""
    rules = [
        Rule.model_validate(
            {
                "name": "odd-temp",
                "kind": "zscore",
                "window": "1h",
                "z": 5,
                "min_samples": 20,
                "match": {"tag": "temp_*"},
            }
        ),
        Rule.model_validate(
            {
                "name": "odd-current",
                "kind": "zscore",
                "window": "1h",
                "z": 5,
                "min_samples": 20,
                "match": {"tag": "*current*"},
            }
        ),
        Rule.model_validate(
            {
                "name": "fast-pressure",
                "kind": "rate",
                "above": 50,
                "window": "10s",
                "match": {"tag": "pressure_*"},
            }
        ),
        Rule.model_validate(
            {"name": "bad-signal", "kind": "quality", "for": "10s", "match": {"machine": "m0*"}}
        ),
    ]
    i = 0
    while len(rules) < count:
        m, t = i % machines, (i // machines) % TAGS_PER_MACHINE
        rules.append(
            Rule.model_validate(
                {
                    "name": f"limit-{i}",
                    "kind": "threshold",
                    "above": 95,
                    "below": 5,
                    "hysteresis": 1,
                    "for": "2s",
                    "match": {"machine": f"m{m}", "tag": _tag(t)},
                }
            )
        )
        i += 1
    return rules


def _tag(t: int) -> str:
    return ("temp_", "motor_current_", "pressure_", "speed_", "level_")[t % 5] + str(t)


def make_batches(machines: int, readings: int, per_batch: int) -> list[tuple[str, list[Any]]]:
    """Committed batches in arrival order: each machine's tags polled once a second."""
    rng = random.Random(42)
    level = {(m, t): rng.uniform(30, 70) for m in range(machines) for t in range(TAGS_PER_MACHINE)}
    batches: list[tuple[str, list[Any]]] = []
    excursion: dict[tuple[int, int], int] = {}  # seconds of excursion left per series
    second = 0
    while len(batches) * per_batch < readings:
        for m in range(machines):
            ts = NOW + second * 1000 + m % 1000
            rows = []
            for t in range(TAGS_PER_MACHINE):
                v = level[(m, t)] + rng.gauss(0, 1.0)
                if rng.random() < 0.0005:
                    excursion[(m, t)] = 4  # rare 4-second excursions: alerts fire and clear
                if excursion.get((m, t)):
                    excursion[(m, t)] -= 1
                    v += 40
                rows.append((_tag(t), ts, v, "good"))
            for k in range(0, TAGS_PER_MACHINE, per_batch):
                batches.append((f"m{m}", rows[k : k + per_batch]))
            if len(batches) * per_batch >= readings:
                break
        second += 1
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--readings", type=int, default=2_000_000)
    args = parser.parse_args()
    machines = args.series // TAGS_PER_MACHINE
    rules = make_rules(machines, args.rules)
    engine = Engine(rules)
    first_pass = args.series  # one reading per series: every series matched for the first time
    batches = make_batches(machines, args.readings + first_pass, TAGS_PER_MACHINE)
    warm = batches[: first_pass // TAGS_PER_MACHINE]
    steady = batches[first_pass // TAGS_PER_MACHINE :]

    def run(chunk: list[tuple[str, list[Any]]]) -> tuple[float, int, int]:
        fired = n = 0
        start = time.process_time()
        for machine, rows in chunk:
            fired += len(engine.readings("plant", "line", machine, rows, rows[0][1]))
            n += len(rows)
        return time.process_time() - start, n, fired

    warm_s, warm_n, _ = run(warm)
    steady_s, steady_n, fired = run(steady)
    rate = steady_n / steady_s
    watches = sum(1 for _ in engine.export()["series"])
    result = {
        "benchmark": "alerts_eval",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_1m": os.getloadavg()[0],
        },
        "settings": {
            "series": args.series,
            "rules": len(rules),
            "readings": steady_n,
            "batch_readings": TAGS_PER_MACHINE,
        },
        "first_pass_readings_per_s": round(warm_n / warm_s),
        "readings_per_s": round(rate),
        "transitions": fired,
        "watched_series": watches,
        "target_readings_per_s": 100_000,
        "meets_target": rate >= 100_000,
    }
    print(
        f"alerts eval: {rate:,.0f} readings/s steady ({steady_n:,} readings, {fired:,} transitions)"
        f"; first pass {warm_n / warm_s:,.0f}/s over {args.series:,} series, {len(rules):,} rules"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
