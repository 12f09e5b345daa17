"""Real servers for tests and benchmarks, each on a free 127.0.0.1 port with its own data dir.

    with Postgres() as pg:          # start() ... cleanup()
        asyncpg.connect(pg.dsn)
    broker = Mosquitto(persistence=False); broker.start(); broker.restart(); broker.kill()

Every server offers `.host`, `.port`, `.address` (and `.url` / `.dsn` / `.bootstrap`), `start()`,
`stop()` (graceful), `kill()` (SIGKILL), `restart()`, `cleanup()`; start-up failures raise
ServerError with the server's log tail. tests/conftest.py wraps them as pytest fixtures.
"""

from ._server import HOST, REPO, ProbeError, Server, ServerError, StartRecord, free_port, history
from .kafka import Kafka, kafka_libs, kafka_version
from .mosquitto import Mosquitto
from .postgres import Postgres, pg_bindir
from .redis import Redis

__all__ = [
    "HOST",
    "REPO",
    "Kafka",
    "Mosquitto",
    "Postgres",
    "ProbeError",
    "Redis",
    "Server",
    "ServerError",
    "StartRecord",
    "free_port",
    "history",
    "kafka_libs",
    "kafka_version",
    "pg_bindir",
]
