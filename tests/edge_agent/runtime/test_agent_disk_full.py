"""The buffer's disk fills up (issue 18, case 3): a real agent on a real full filesystem.

The buffer lives on a small tmpfs of its own; a filler file takes the rest of it. Before, the
writer thread died, the agent stopped committing, ignored SIGTERM and, restarted, crashed on its
first send. Now it keeps running and sending, says "disk full" in its status, drops its oldest
readings by its policy and counts them, stops cleanly, restarts, and recovers by itself once
space is back. Real agent, hub, Mosquitto and PostgreSQL; ground truth: every reading the
machines served reached PostgreSQL or was counted as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agent_harness import AgentProcess
from mqtt_harness import Broker, eventually

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hub" / "ingest"))
from hubtest import hub_config, migrate, pg_fetch, running_hub

DISK_MB = 16
RESERVE = "2MiB"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of the test's own (mounting needs root, as CI and the test machines run)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test: {done.stderr}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file."""
    filler = disk / "filler"
    chunk = bytes(1 << 16)
    # Unbuffered: a buffered file keeps what a full disk refused and writes it again when it is
    # closed, so the ENOSPC caught below came back out of the `with` (a flake, depending on how
    # many bytes the agent had left free).
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    with contextlib.suppress(OSError), filler.open("ab") as f:  # the last partial block
        while f.write(bytes(512)):
            f.flush()
    return filler


async def until(pred: object, within: float = 60) -> None:
    async def check() -> bool:
        return bool(pred())  # type: ignore[operator]

    await eventually(check, within)


async def stored(dsn: str) -> set[tuple[str, str, int]]:
    """Readings of the agent's site in PostgreSQL, as (machine, tag, ts)."""
    rows = await pg_fetch(
        dsn,
        "SELECT s.machine, s.tag, r.ts FROM readings r JOIN series s ON s.id = r.series_id"
        " WHERE s.site = 'plant'",
    )
    return {(m, t, int(ts)) for m, t, ts in rows}


async def until_stored(
    dsn: str, pred: Callable[[set[tuple[str, str, int]]], bool], agent: AgentProcess
) -> None:
    deadline = time.monotonic() + 60
    while not pred(await stored(dsn)):
        if time.monotonic() >= deadline:
            # What the agent said is the only clue to a stall: CI keeps nothing else.
            with contextlib.suppress(OSError, ValueError):
                print("agent status:", agent.status())
            raise AssertionError(f"not stored in time; agent log:\n{agent.log()[-6000:]}")
        await asyncio.sleep(0.5)


def status_says(agent: AgentProcess, words: str) -> bool:
    try:
        return words in (agent.status().get("why") or "")
    except (OSError, ValueError):
        return False


async def test_full_disk_keeps_the_agent_running_sending_and_honest(
    agent: AgentProcess, broker: Broker, small_disk: Path, pg_dsn: str
) -> None:
    await migrate(pg_dsn)
    hub = hub_config(broker.url, pg_dsn)  # one client id: a restarted hub resumes its session
    agent.rate = 100.0
    agent.buffer = {"path": str(small_disk / "buffer.db"), "disk_reserve": RESERVE}
    agent.mqtt = {"receipt_timeout": "2s"}
    async with running_hub(hub):
        agent.start()
        await until_stored(pg_dsn, lambda got: len(got) > 500, agent)
        assert (small_disk / "buffer.db.reserve").stat().st_size == 2 << 20
    # The hub is down, so nothing is confirmed: the buffer must grow, and the disk has no room.
    filler = fill(small_disk)
    await until(lambda: status_says(agent, "disk full"), 60)
    status = agent.status()
    assert status["state"] == "faulted"
    assert status["buffer"]["disk_full"] is True
    assert "DISK FULL" in agent.log()
    assert not (small_disk / "buffer.db.reserve").exists()  # given back to keep working
    async with running_hub(hub):
        # It keeps sending what it holds: the hub is back and everything flows again.
        before = len(await stored(pg_dsn))
        await until_stored(pg_dsn, lambda got: len(got) > before + 500, agent)
        assert agent.proc is not None
        assert agent.proc.poll() is None
        # SIGTERM still stops it cleanly (exit 0, within the harness' 10 s).
        agent.terminate()

        # Restarted on the still-full disk, it runs and sends.
        agent.start()
        await until(lambda: agent.status_file.exists() and agent.status()["connected"])
        before = len(await stored(pg_dsn))
        await until_stored(pg_dsn, lambda got: len(got) > before + 500, agent)
        assert agent.proc is not None
        assert agent.proc.poll() is None

        # Space comes back: it says so by itself and makes its reserve again.
        filler.unlink()
        await until(lambda: agent.status()["buffer"]["disk_full"] is False, 30)
        await until((small_disk / "buffer.db.reserve").exists, 30)
        assert agent.status()["state"] == "online"
        agent.terminate()
        served = agent.served()
        dropped = agent.status()["buffer"]["dropped"]
        # Everything left in the buffer is delivered by a last run; nothing vanished silently:
        # what did not reach PostgreSQL was counted as dropped.
        agent.rate = 1.0
        agent.start()
        await until(lambda: agent.status_file.exists() and agent.status()["connected"])
        await until_stored(pg_dsn, lambda got: len(served - got) <= dropped, agent)
        agent.terminate()
    assert dropped > 0  # the disk really was full: its policy dropped the oldest
