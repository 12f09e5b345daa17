"""The life cycle every real server shares: temp dir, free port, spawn, probe, stop, kill."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

__all__ = [
    "HOST",
    "REPO",
    "ProbeError",
    "Server",
    "ServerError",
    "StartRecord",
    "free_port",
    "history",
]

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
_log = logging.getLogger("millstream.harness")


class ServerError(RuntimeError):
    """A server could not be started or stopped; the message carries its log tail."""


class ProbeError(Exception):
    """A readiness probe reached the server but it is not ready yet."""


@dataclass(frozen=True)
class StartRecord:
    """One successful start, for the end-of-session summary."""

    name: str
    address: str
    seconds: float
    pid: int


# Every start in this process, in order; tests/conftest.py prints it at the end of a session.
history: list[StartRecord] = []

# Servers still running at interpreter exit are killed, so a crashed pytest leaves no orphans
# (each server runs in its own session, so nothing else would stop it).
_live: weakref.WeakSet[Server] = weakref.WeakSet()


# Data directories built once per process (initdb, Kafka storage format) and copied for every
# later instance: a copy takes a fraction of the seconds the tools need on a loaded machine.
_templates: dict[str, Path] = {}
_templates_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.kill()
    for template in _templates.values():
        shutil.rmtree(template.parent, ignore_errors=True)


class _PortTakenError(ServerError):
    """Another process answered on the port we meant to use."""


def _listens(session: int, port: int) -> bool | None:
    """Whether a process of `session` listens on 127.0.0.1:`port`; None where /proc cannot tell."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    local = f"0100007F:{port:04X}"
    # Columns: sl local remote state … inode; state 0A is LISTEN.
    inodes = {f"socket:[{c[9]}]" for c in map(str.split, table) if c[1] == local and c[3] == "0A"}
    if not inodes:
        return None  # not in the table (yet); the probe answered, so let it pass
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # Field 6 of stat is the session id; the command name (field 2) may hold spaces.
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3]) != session:
                continue
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def _stat(pid: int) -> list[str] | None:
    """Fields 3… of /proc/<pid>/stat (state, ppid, …); None once the process is gone."""
    try:
        # The command name (field 2) may hold spaces and parentheses: split after the last ")".
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> dict[int, str]:
    """Every live descendant of `pid` → its start time (so a reused pid is not taken for it)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            starts[int(entry.name)] = fields[19]  # field 22: start time in clock ticks
    found: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found[child] = starts[child]
        todo.extend(children.get(child, []))
    return found


def _wait_gone(processes: dict[int, str], timeout: float) -> list[int]:
    """Wait until each process has exited (gone, a zombie, or its pid reused); returns the rest."""
    deadline = time.monotonic() + timeout
    left = dict(processes)
    while left:
        for pid, start in list(left.items()):
            fields = _stat(pid)
            if fields is None or fields[0] in "ZX" or fields[19] != start:
                del left[pid]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return list(left)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (start() retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, offset: int = 0, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class Server:
    """One real server process on 127.0.0.1, with its own data directory; a context manager."""

    name: ClassVar[str] = "server"
    # What "graceful" means differs: PostgreSQL's SIGTERM waits for clients, SIGINT does not.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    # Run as this system user when we are root (PostgreSQL refuses to run as root).
    run_as: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        port: int | None = None,
        workdir: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.host = HOST
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self._owns_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=f"millstream-{self.name}-"))
            if workdir is None
            else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.log_path = self.workdir / f"{self.name}.log"
        self.startup_seconds: float | None = None
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0 and self.run_as is not None:
            self._chown(self.workdir)

    # -- what each server provides ---------------------------------------------------------------

    @property
    def address(self) -> str:
        """The URL, DSN or bootstrap string clients connect to."""
        return f"{self.host}:{self.port}"

    def _prepare(self) -> None:
        """Write config and initialise the data directory; runs before every start."""

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _probe(self, timeout: float) -> None:
        """Connect and check the server answers; raise OSError or ProbeError while it does not."""
        raise NotImplementedError

    def _repick_ports(self) -> None:
        self.port = free_port()

    # -- life cycle --------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the process we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and return once it accepts connections; raise ServerError otherwise."""
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid})")
        # Another test run may grab our free port between free_port() and bind: pick again.
        attempts = 1 if self._fixed_port or self.starts else 3
        for attempt in range(attempts):
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                try:
                    self._start_once(offset)
                except OSError as exc:  # a missing binary or unwritable directory
                    self._proc = None
                    raise ServerError(str(exc)) from exc
            except ServerError as exc:
                log = _tail(self.log_path, offset).lower()
                clash = isinstance(exc, _PortTakenError) or "address already in use" in log
                if clash and attempt + 1 < attempts:
                    _log.info("%s: port clash on %d, picking another", self.name, self.port)
                    self._repick_ports()
                    continue
                raise
            return

    def _start_once(self, offset: int) -> None:
        # The figure includes initdb / storage format: a test waits for those too.
        started = time.monotonic()
        self._prepare()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env(),
                # Own process group, signalled as a whole; kill() also finds the children
                # that left it (PostgreSQL's backends call setsid()).
                start_new_session=True,
                **self._user_kwargs(),
            )
        _live.add(self)
        deadline = started + self.start_timeout
        last = "no probe yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise ServerError(
                    f"{self.name} exited with code {code} while starting on {self.host}:{self.port}"
                    f"\n--- {self.log_path} (tail) ---\n{_tail(self.log_path, offset)}"
                )
            try:
                self._probe(timeout=2.0)
            except (OSError, ProbeError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if _listens(self._proc.pid, self.port) is not False:
                    break
                # A concurrent test run's server took the port and answered our probe.
                self.kill()
                raise _PortTakenError(f"{self.name}: address already in use on port {self.port}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(
                    f"{self.name} did not accept connections on {self.host}:{self.port} within "
                    f"{self.start_timeout:.0f} s (last probe: {last})"
                    f"\n--- {self.log_path} (tail) ---\n{_tail(self.log_path, offset)}"
                )
            time.sleep(0.1)
        self.startup_seconds = time.monotonic() - started
        self.starts += 1
        history.append(StartRecord(self.name, self.address, self.startup_seconds, self._proc.pid))
        _log.info(
            "%s started on %s in %.1f s (pid %d, log %s)",
            self.name,
            self.address,
            self.startup_seconds,
            self._proc.pid,
            self.log_path,
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully (the server's own shutdown signal); SIGKILL after `timeout` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                self.kill()
                return
        self._signal_group(signal.SIGKILL)  # stray children of a stopped server, if any
        self._proc = None
        _live.discard(self)

    def kill(self) -> None:
        """SIGKILL the server and every process it started, as a crash or power cut would;
        returns once all of them are dead."""
        proc = self._proc
        if proc is None:
            return
        # Killing the group is not enough: PostgreSQL's backends each call setsid(), so they
        # leave it, outlive a killed postmaster and go on talking to their clients until they
        # notice (then they send "FATAL: terminating connection due to unexpected postmaster
        # exit" — which a crash never does, and which asyncpg can misread as an answer). So:
        # stop the server from forking, kill every descendant, then the group.
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGSTOP)
        children = _descendants(proc.pid)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._signal_group(signal.SIGKILL)
        proc.wait()
        # Orphans are reaped by init, not by us: wait for them, or a restart on the same data
        # directory may find its shared memory still attached ("still in use").
        if left := _wait_gone(children, timeout=30.0):
            _log.warning("%s: processes %s survived SIGKILL for 30 s", self.name, left)
        self._proc = None
        _live.discard(self)

    def restart(self) -> None:
        """Graceful stop, then start on the same port with the same data directory."""
        self.stop()
        self.start()

    def detach(self) -> None:
        """Leave the server running after this process exits (scripts/services up)."""
        _live.discard(self)
        self._proc = None

    def cleanup(self) -> None:
        """Stop the server and delete its data directory if the harness created it."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.address} {state}>"

    # -- helpers -----------------------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log, for assertion messages."""
        return _tail(self.log_path, 0, lines)

    def _from_template(self, dest: Path, build: Callable[[Path], None]) -> None:
        """Fill `dest` with a copy of this class's template, running `build(path)` once first."""
        with _templates_lock:
            template = _templates.get(self.name)
            if template is None:
                parent = Path(tempfile.mkdtemp(prefix=f"millstream-{self.name}-template-"))
                if os.geteuid() == 0 and self.run_as is not None:
                    self._chown(parent)
                template = parent / "data"
                build(template)
                _templates[self.name] = template
        # cp -a keeps ownership and modes (PostgreSQL insists on a 0700 data dir of its own user).
        subprocess.run(["cp", "-a", str(template), str(dest)], check=True, timeout=120)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        # The group id is the pid of the process we started (start_new_session).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["HOME"] = str(self.workdir)
        return env

    def _user_kwargs(self) -> dict[str, Any]:
        if os.geteuid() != 0 or self.run_as is None:
            return {}
        return {"user": self.run_as, "group": self._account().pw_gid, "extra_groups": []}

    def _account(self) -> pwd.struct_passwd:
        assert self.run_as is not None
        try:
            return pwd.getpwnam(self.run_as)
        except KeyError as exc:
            raise ServerError(
                f"{self.name} must run as user {self.run_as!r}, which does not exist"
            ) from exc

    def _chown(self, path: Path) -> None:
        account = self._account()
        os.chown(path, account.pw_uid, account.pw_gid)
