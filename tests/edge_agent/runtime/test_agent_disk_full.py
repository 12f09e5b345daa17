"""The buffer's disk fills up (issue 18, case 3): a real agent on a real full filesystem.

The buffer lives on a small tmpfs of its own; a filler file takes the rest of it. Before, the
writer thread died, the agent stopped committing, ignored SIGTERM and, restarted, crashed on its
first send. Now it keeps running and sending, says "disk full" in its status, drops its oldest
readings by its policy and counts them, stops cleanly, restarts, and recovers by itself once
space is back. Ground truth: every reading the machines served reached the hub stand-in or was
counted as dropped.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import AgentProcess
from mqtt_harness import Broker, Responder, eventually

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
    with filler.open("wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
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


def received(hub: Responder) -> set[tuple[str, str, int]]:
    return {(m, tag, ts) for m, rs in hub.readings.items() for tag, ts in rs}


def status_says(agent: AgentProcess, words: str) -> bool:
    try:
        return words in (agent.status().get("why") or "")
    except (OSError, ValueError):
        return False


async def test_full_disk_keeps_the_agent_running_sending_and_honest(
    agent: AgentProcess, broker: Broker, small_disk: Path
) -> None:
    agent.rate = 100.0
    agent.buffer = {"path": str(small_disk / "buffer.db"), "disk_reserve": RESERVE}
    agent.mqtt = {"receipt_timeout": "2s"}
    async with Responder(broker) as hub:
        agent.start()
        await until(lambda: hub.total() > 500)
        assert (small_disk / "buffer.db.reserve").stat().st_size == 2 << 20
        # A hub that stops confirming: the buffer must grow, and the disk has no room for it.
        hub.suppress = True
        filler = fill(small_disk)
        await until(lambda: status_says(agent, "disk full"), 60)
        status = agent.status()
        assert status["state"] == "faulted"
        assert status["buffer"]["disk_full"] is True
        assert "DISK FULL" in agent.log()
        assert not (small_disk / "buffer.db.reserve").exists()  # given back to keep working
        # It keeps sending what it holds: the hub comes back and everything flows again.
        before = hub.total()
        hub.suppress = False
        await until(lambda: hub.total() > before + 500, 60)
        assert agent.proc is not None
        assert agent.proc.poll() is None
        # SIGTERM still stops it cleanly (exit 0, within the harness' 10 s).
        agent.terminate()

        # Restarted on the still-full disk, it runs and sends.
        agent.start()
        await until(lambda: agent.status_file.exists() and agent.status()["connected"])
        before = hub.total()
        await until(lambda: hub.total() > before + 500, 60)
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
        # what did not arrive was counted as dropped.
        agent.rate = 1.0
        agent.start()
        await until(lambda: agent.status_file.exists() and agent.status()["connected"])
        await until(lambda: len(served - received(hub)) <= dropped, 60)
        agent.terminate()
    assert dropped > 0  # the disk really was full: its policy dropped the oldest
