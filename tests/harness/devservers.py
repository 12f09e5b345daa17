"""`scripts/services up|down|status`: long-running dev servers on fixed 127.0.0.1 ports.

State lives under .services/ in the repository (gitignored): one data directory per server and a
pid file per running server. `down` signals only the pids recorded in those files, and only after
checking that the pid still runs the server's program (pids get reused).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ._server import REPO, Server, ServerError
from .kafka import Kafka
from .mosquitto import Mosquitto
from .postgres import Postgres
from .redis import Redis

__all__ = ["DEV_SERVERS", "main"]

STATE = REPO / ".services"


@dataclass(frozen=True)
class DevServer:
    """A dev server's fixed port and how to build it."""

    name: str
    port: int
    program: str  # a word of its command line, to recognise the pid as ours

    def build(self) -> Server:
        """The harness object for this server, on its fixed port and state directory."""
        workdir = STATE / self.name
        if self.name == "mosquitto":
            return Mosquitto(port=self.port, workdir=workdir)
        if self.name == "postgres":
            return Postgres(port=self.port, workdir=workdir)
        if self.name == "redis":
            return Redis(port=self.port, workdir=workdir)
        return Kafka(port=self.port, controller_port=self.port + 1, workdir=workdir)


# Standard port + 10000, so dev servers never collide with system services on the usual ports.
DEV_SERVERS = {
    s.name: s
    for s in (
        DevServer("mosquitto", 11883, "mosquitto"),
        DevServer("postgres", 15432, "postgres"),
        DevServer("redis", 16379, "redis-server"),
        DevServer("kafka", 19092, "kafka.Kafka"),  # its controller listens on 19093
    )
}


def _pid_file(name: str) -> Path:
    return STATE / f"{name}.pid"


def _alive(pid: int, program: str) -> bool:
    """True if `pid` runs and is `program` (not a zombie, not a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and program in cmdline


def _running_pid(server: DevServer) -> int | None:
    try:
        pid = int(_pid_file(server.name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid, server.program) else None


def up(names: list[str]) -> int:
    """Start the named servers (all by default) unless they already run."""
    STATE.mkdir(exist_ok=True)
    failed = 0
    for name in names:
        spec = DEV_SERVERS[name]
        instance = spec.build()
        if (pid := _running_pid(spec)) is not None:
            print(f"{name:<10} already running  pid {pid:<8} {instance.address}")
            continue
        try:
            instance.start()
        except ServerError as exc:
            print(f"{name:<10} FAILED: {exc}", file=sys.stderr)
            failed += 1
            continue
        assert instance.pid is not None
        _pid_file(name).write_text(f"{instance.pid}\n")
        print(f"{name:<10} started          pid {instance.pid:<8} {instance.address}")
        instance.detach()
    return 1 if failed else 0


def down(names: list[str], timeout: float = 30.0) -> int:
    """Stop the named servers that `up` started, gracefully, then by SIGKILL after `timeout`."""
    for name in names:
        spec = DEV_SERVERS[name]
        pid = _running_pid(spec)
        if pid is None:
            _pid_file(name).unlink(missing_ok=True)
            print(f"{name:<10} not running")
            continue
        os.kill(pid, type(spec.build()).stop_signal)
        deadline = time.monotonic() + timeout
        while _alive(pid, spec.program) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid, spec.program):
            # Its own process group (start_new_session), so its children go with it.
            os.killpg(pid, signal.SIGKILL)
            print(f"{name:<10} killed after {timeout:.0f} s")
        else:
            print(f"{name:<10} stopped")
        _pid_file(name).unlink(missing_ok=True)
    return 0


def status(names: list[str]) -> int:
    """Print each server's state and address; exit 3 if any is not running."""
    stopped = 0
    for name in names:
        spec = DEV_SERVERS[name]
        instance = spec.build()
        pid = _running_pid(spec)
        if pid is None:
            stopped += 1
            print(f"{name:<10} stopped")
        else:
            print(f"{name:<10} running  pid {pid:<8} {instance.address}")
    return 3 if stopped else 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="scripts/services", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("names", nargs="*", metavar="SERVER", help=", ".join(DEV_SERVERS))
    args = parser.parse_args(argv)
    names = args.names or list(DEV_SERVERS)
    if unknown := [n for n in names if n not in DEV_SERVERS]:
        parser.error(f"unknown server {', '.join(unknown)}; choose from {', '.join(DEV_SERVERS)}")
    commands = {"up": up, "down": down, "status": status}
    return commands[args.command](names)


if __name__ == "__main__":
    sys.exit(main())
