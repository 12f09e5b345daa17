"""init, status and buffer stats|export|purge against real files (service: test_service.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from edge_agent.buffer import BufferDB, Reading
from edge_agent.cli import app

runner = CliRunner()


def make_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "agent.yaml"
    result = runner.invoke(
        app,
        [
            "init",
            str(cfg),
            "--agent-id",
            "line3-pc",
            "--site",
            "plant-a",
            "--line",
            "line-3",
            "--broker",
            "mqtt://127.0.0.1:1883",
        ],
    )
    assert result.exit_code == 0, result.output
    return cfg


BASE_TS = int(time.time() * 1000) - 60_000


def fill(tmp_path: Path, count: int) -> None:
    db = BufferDB(tmp_path / "buffer.db", now_ms=int(time.time() * 1000))
    now = BASE_TS + 10_000
    for base in range(0, count, 100):
        db.append(
            "machine-1",
            [Reading("kw", now - 10_000 + i, float(i)) for i in range(base, base + 100)],
        )
    db.close()


def test_init_writes_a_config_that_validates(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    text = cfg.read_text()
    assert "receipt_timeout: 30s" in text
    assert "on_full: drop_oldest" in text
    result = runner.invoke(app, ["validate", str(cfg)])
    assert result.exit_code == 0, result.output
    again = runner.invoke(
        app,
        ["init", str(cfg), "--agent-id", "a", "--site", "s", "--line", "l", "--broker", "mqtt://h"],
    )
    assert again.exit_code == 1
    assert "--force" in again.output


def test_buffer_stats_export_and_purge_with_confirmation(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    fill(tmp_path, 500)
    stats = runner.invoke(app, ["buffer", "stats", str(cfg), "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output)["readings"] == 500

    out = tmp_path / "export.jsonl"
    since = BASE_TS + 400
    exported = runner.invoke(app, ["buffer", "export", str(cfg), str(out), "--since", str(since)])
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 100
    assert {x["machine"] for x in lines} == {"machine-1"}

    refused = runner.invoke(app, ["buffer", "purge", str(cfg)], input="n\n")
    assert refused.exit_code == 1
    assert (
        json.loads(runner.invoke(app, ["buffer", "stats", str(cfg), "--json"]).output)["readings"]
        == 500
    )
    purged = runner.invoke(app, ["buffer", "purge", str(cfg)], input="y\n")
    assert purged.exit_code == 0, purged.output
    assert "purged 500 readings" in purged.output
    assert (
        json.loads(runner.invoke(app, ["buffer", "stats", str(cfg), "--json"]).output)["readings"]
        == 0
    )


def test_purge_refuses_while_the_agent_runs(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    fill(tmp_path, 100)
    # Another process holds the buffer's lock, as a running agent does.
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from edge_agent.runtime.lock import hold_agent_lock\n"
            "with hold_agent_lock(Path(sys.argv[1])):\n"
            "    print('held', flush=True); sys.stdin.read()",
            str(tmp_path / "buffer.db"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            result = runner.invoke(app, ["buffer", "purge", str(cfg), "--yes"])
            assert result.exit_code == 1
            assert "systemctl stop millstream-agent" in result.output
            status = runner.invoke(app, ["status", str(cfg), "--json"])
            assert json.loads(status.output)["running"] is True
        finally:
            holder.kill()  # kill -9: no clean-up runs; the kernel drops the lock with the process
            holder.wait(30)
    status = runner.invoke(app, ["status", str(cfg), "--json"])
    assert json.loads(status.output)["running"] is False
    purged = runner.invoke(app, ["buffer", "purge", str(cfg), "--yes"])
    assert purged.exit_code == 0, purged.output
    assert "purged 100 readings" in purged.output


def test_status_before_first_run_and_from_status_file(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    first = runner.invoke(app, ["status", str(cfg)])
    assert first.exit_code == 0
    assert "has not run" in first.output
