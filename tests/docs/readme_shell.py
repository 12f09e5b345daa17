"""Run README commands as a reader types them, in a sandbox folder instead of the real machine.

A command is taken from README.md verbatim (asking for one the README does not show fails) and
changed only where it must be to run in a test, always in the same visible ways:

- a leading `sudo ` or `sudo -u millstream ` is dropped (tests run as the sandbox's owner;
  the account `millstream` does not exist on a test machine);
- the machine's folders move into the sandbox: `/etc/millstream`, `/var/lib/millstream`,
  `/root/` and `/usr/local/bin/` become `<root>/etc/millstream/` and so on, and `/opt/millstream/`
  (where the offline bundle installs) is the project's `.venv/`, the agent installed the same way;
- per call, `replace` swaps host ports and file names (e.g. 8000 for the hub's free port), and
  `extra` appends options for what cannot happen here (e.g. `--no-systemctl`); each test names
  them next to the command.

Every command runs with bash in the sandbox's working folder, `.venv/bin` first on PATH.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from tests.harness import REPO

__all__ = ["VENV", "Shell", "stop", "wait_until"]

VENV = REPO / ".venv"
T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T | None], timeout_s: float = 90.0) -> T:
    """Call `check` until it returns something truthy; fail naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}")


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout_s: float = 30.0) -> int:
    """Send `sig` to a process we started and wait for its exit code (killed after the timeout)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


class Shell:
    """Runs README commands in a sandbox and remembers which ones it ran."""

    def __init__(self, readme_commands: list[str], root: Path, env: dict[str, str] | None = None):
        self.readme_commands = readme_commands
        self.root = root
        self.cwd = root / "work"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            **(env or {}),
        }
        self.ran: set[str] = set()
        self._started: list[subprocess.Popen[bytes]] = []

    def command(self, readme: str, replace: dict[str, str] | None = None, extra: str = "") -> str:
        """The README command `readme` as it runs here (see the module docstring)."""
        assert readme in self.readme_commands, f"README.md no longer shows: {readme}"
        self.ran.add(readme)
        text = readme.removeprefix("sudo -u millstream ").removeprefix("sudo ")
        moves = {
            "/etc/millstream": f"{self.root}/etc/millstream",
            "/var/lib/millstream": f"{self.root}/var/lib/millstream",
            "/root/": f"{self.root}/root/",
            "/usr/local/bin/": f"{self.root}/usr/local/bin/",
            "/opt/millstream/": f"{VENV}/",
        }
        for old, new in {**moves, **(replace or {})}.items():
            text = text.replace(old, new)
        return f"{text} {extra}".strip()

    def run(
        self,
        readme: str,
        *,
        replace: dict[str, str] | None = None,
        extra: str = "",
        stdin: str = "",
        env: dict[str, str] | None = None,
        timeout_s: float = 180.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run a README command to completion; stdout and stderr are captured."""
        return self.run_text(
            self.command(readme, replace, extra), stdin=stdin, env=env, timeout_s=timeout_s
        )

    def run_text(
        self,
        text: str,
        *,
        stdin: str = "",
        env: dict[str, str] | None = None,
        timeout_s: float = 180.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run `text` (a README command already changed by `command`) with bash."""
        return subprocess.run(
            ["bash", "-c", text],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            # No controlling terminal: password prompts read stdin as a pipe would feed them.
            start_new_session=True,
            check=False,
        )

    def ok(self, readme: str, **options: object) -> str:
        """Run a README command that must succeed; its stdout."""
        done = self.run(readme, **options)  # type: ignore[arg-type]
        assert done.returncode == 0, (
            f"{readme!r} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    def start(
        self, readme: str, log: Path, *, replace: dict[str, str] | None = None, extra: str = ""
    ) -> subprocess.Popen[bytes]:
        """Start a long-running README command; stdout and stderr go to `log`."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {self.command(readme, replace, extra)}"],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._started.append(proc)
        return proc

    def close(self) -> None:
        """Kill whatever this shell started and is still running (a failed test's leftovers)."""
        for proc in self._started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()

    @contextlib.contextmanager
    def session(self) -> Iterator[Shell]:
        """This shell, closed afterwards."""
        try:
            yield self
        finally:
            self.close()
