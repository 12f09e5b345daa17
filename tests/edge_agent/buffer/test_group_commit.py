"""The buffer writer's group commit: an idle writer commits at once, a busy one in groups."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from edge_agent.buffer import Reading
from edge_agent.buffer.db import BufferDB, ChunkRef
from edge_agent.buffer.readings import wire_encoder
from edge_agent.buffer.writer import Bounds, WriterThread


def writer(path: Path, commit_interval: float) -> tuple[WriterThread, list[float], threading.Event]:
    committed: list[float] = []
    done = threading.Event()

    def on_committed(refs: list[ChunkRef]) -> None:
        committed.extend(time.monotonic() for _ in refs)
        done.set()

    thread = WriterThread(
        lambda: BufferDB(path, now_ms=int(time.time() * 1000), encoder=wire_encoder("pc-1")),
        bounds=Bounds(),
        commit_interval=commit_interval,
        on_committed=on_committed,
    )
    thread.start()
    thread.ready.result(10)
    return thread, committed, done


def test_an_idle_writer_commits_without_waiting_out_the_interval(tmp_path: Path) -> None:
    # An interval no commit could wait out within the test: the commit that comes is the idle one.
    thread, committed, done = writer(tmp_path / "b.db", commit_interval=30.0)
    try:
        start = time.monotonic()
        thread.post(lambda db: db.append("m1", [Reading("t", int(time.time() * 1000), 1.0)]))
        assert done.wait(10), "not committed"
        assert committed[0] - start < 10
    finally:
        thread.stop()
        thread.join(10)


def test_a_busy_writer_commits_in_groups(tmp_path: Path) -> None:
    thread, committed, done = writer(tmp_path / "b.db", commit_interval=30.0)
    try:
        ts = int(time.time() * 1000)
        # Queued while the writer is held up: taken as one group, committed once.
        gate = threading.Event()
        thread.post(lambda _db: gate.wait(10))
        for i in range(200):
            thread.post(lambda db, i=i: db.append("m1", [Reading("t", ts + i, float(i))]))
        commits = thread.commits
        gate.set()
        assert done.wait(10)
        time.sleep(0.2)  # anything committed separately would be counted by now
        assert len(committed) == 200
        assert thread.commits - commits == 1
    finally:
        thread.stop()
        thread.join(10)
