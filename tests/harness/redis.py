"""Redis 7 (the Debian package) as a test server."""

from __future__ import annotations

import shutil
from typing import ClassVar

from ._server import Server, ServerError
from ._wire import redis_ping

__all__ = ["Redis"]


class Redis(Server):
    """A redis-server on 127.0.0.1 without persistence; `.url` is redis://127.0.0.1:PORT/0."""

    name: ClassVar[str] = "redis"

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def address(self) -> str:
        """Same as `.url`."""
        return self.url

    def _prepare(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server is not installed; run scripts/services install")
        self._binary = binary

    def _argv(self) -> list[str]:
        # Caches and fan-out only: no RDB snapshots or AOF, so a restart starts empty.
        return [
            self._binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip

    def _probe(self, timeout: float) -> None:
        redis_ping(self.port, timeout)
