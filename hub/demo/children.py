"""Components run as child processes: started in their own session, stopped by PID.

Each child gets its own process session so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children one by one in the right order (agent before broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["Child", "python_argv", "typed_command"]

# How each component's CLI is reached from this interpreter: works in a venv, a system install
# or an editable checkout, without depending on where pip put the console scripts.
_ENTRY = {
    "millstream-hub": "hub.cli",
    "edge-agent": "edge_agent.cli",
}
_RUN = "import sys; sys.argv[0] = {name!r}; from {module} import main; main()"


def python_argv(program: str, *args: str) -> list[str]:
    """argv running `program` (millstream-hub, edge-agent or a `-m` module) with this Python."""
    if program in _ENTRY:
        code = _RUN.format(name=program, module=_ENTRY[program])
        return [sys.executable, "-c", code, *args]
    return [sys.executable, "-m", program, *args]


def typed_command(program: str) -> str:
    """How a user types `program` (a console script of this install) in their shell, as is.

    Bare when PATH finds this install's script (an activated venv, a system install); otherwise
    its path, relative to the working folder when inside it (`.venv/bin/edge-agent` after the
    Quickstart), so a banner or hint never prints a command that is `command not found`.
    """
    script = Path(sys.executable).parent / program
    found = shutil.which(program)
    if found is not None and Path(found).resolve() == script.resolve():
        return program
    if not script.exists():
        return program
    try:
        return str(script.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(script.absolute())


class Child:
    """A long-running component process; leaving the context stops it (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._argv = list(argv)
        self._env = dict(env) if env is not None else None
        self._stop_timeout_s = stop_timeout_s
        self._log: IO[bytes] | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def process(self) -> asyncio.subprocess.Process:
        """The running process (only inside the context)."""
        if self._process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._process

    async def __aenter__(self) -> Self:
        self._log = self.log_path.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env,
            start_new_session=True,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.stop()
        finally:
            if self._log is not None:
                self._log.close()

    async def stop(self) -> int:
        """SIGTERM this process (by PID) and wait; SIGKILL if it does not exit in time."""
        proc = self.process
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(self._stop_timeout_s):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        # What the child started itself (the hub's worker pool, multiprocessing's resource
        # tracker) outlives it when it died abruptly; they are in the process group this child
        # leads (its own session), so that group, named by the child's PID, is ended too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        return proc.returncode if proc.returncode is not None else -1
