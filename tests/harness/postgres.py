"""PostgreSQL 15 (the Debian package) as a test server, run as the `postgres` user under root."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import ClassVar

from ._server import Server, ServerError
from ._wire import pg_simple_query

__all__ = ["Postgres", "pg_bindir"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def pg_bindir() -> Path:
    """Where initdb and postgres live: $MILLSTREAM_PG_BIN, else the newest /usr/lib/postgresql/*."""
    if env := os.environ.get("MILLSTREAM_PG_BIN"):
        return Path(env)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    for bindir in versions:
        if (bindir / "postgres").exists():
            return bindir
    if found := shutil.which("postgres"):
        return Path(found).parent
    raise ServerError("PostgreSQL is not installed; run scripts/services install")


class Postgres(Server):
    """A PostgreSQL cluster on 127.0.0.1 with trust auth; `.dsn` is postgresql://postgres@…/postgres."""

    name: ClassVar[str] = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") waits for every client to leave.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT
    # PostgreSQL refuses to run as root.
    run_as: ClassVar[str | None] = "postgres"
    user: ClassVar[str] = "postgres"

    def __init__(
        self,
        *,
        port: int | None = None,
        workdir: Path | None = None,
        start_timeout: float = 60.0,
        durable: bool = False,
    ) -> None:
        """`durable`: PostgreSQL's own durability defaults (fsync, synchronous_commit and
        full_page_writes on, 128 MB shared buffers), as production runs, for benchmarks."""
        super().__init__(port=port, workdir=workdir, start_timeout=start_timeout)
        self.durable = durable
        self.data_dir = self.workdir / "data"
        self.socket_dir = self.workdir / "socket"

    @property
    def dsn(self) -> str:
        """postgresql://postgres@127.0.0.1:PORT/postgres."""
        return self.dsn_for("postgres")

    @property
    def address(self) -> str:
        """Same as `.dsn`."""
        return self.dsn

    def dsn_for(self, database: str) -> str:
        """The DSN of another database on this server."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres", timeout: float = 30.0) -> None:
        """Run one statement that returns no rows we need (CREATE/DROP DATABASE and the like)."""
        pg_simple_query(self.port, timeout, sql, user=self.user, database=database)

    def create_database(self, name: str) -> str:
        """Create an empty database and return its DSN."""
        self.execute(f'CREATE DATABASE "{_checked(name)}"')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        self.execute(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')

    def _prepare(self) -> None:
        bindir = pg_bindir()
        self._postgres = str(bindir / "postgres")
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            self._chown(self.socket_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._from_template(self.data_dir, self._initdb)

    def _initdb(self, data_dir: Path) -> None:
        # --no-sync: a test cluster need not survive a power cut, and initdb is twice as fast.
        argv = [
            str(pg_bindir() / "initdb"),
            "--pgdata", str(data_dir),
            "--username", self.user,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--no-locale",
            "--no-sync",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env(),
                timeout=120,
                check=False,
                **self._user_kwargs(),
            )
        if done.returncode != 0:
            raise ServerError(
                f"initdb failed with code {done.returncode}\n--- {self.log_path} (tail) ---\n"
                + self.log_tail()
            )

    def _argv(self) -> list[str]:
        return [
            self._postgres,
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-k", str(self.socket_dir),
            "-c", f"listen_addresses={self.host}",
            "-c", "max_connections=200",
            # Tests survive a killed server (the OS keeps written pages), not a power cut:
            # skipping fsync makes commits and checkpoints cheap on a shared CI machine.
            *(["-c", "shared_buffers=128MB"] if self.durable else
              ["-c", "fsync=off", "-c", "shared_buffers=32MB"]),
        ]  # fmt: skip

    def _probe(self, timeout: float) -> None:
        pg_simple_query(self.port, timeout, user=self.user)


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {_NAME.pattern}")
    return name
