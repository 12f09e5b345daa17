"""Real servers as fixtures, started on first use and stopped at session end.

Session-scoped (shared by every test that asks): `mosquitto`, `postgres`, `redis`, `kafka`.
Per test: `pg_dsn` (a fresh database on the session PostgreSQL, dropped afterwards),
`node_opcua_alarms` (the endpoint URL of a fresh node-opcua server with the Press alarm) and the
factories `mosquitto_factory`, `postgres_factory`, `redis_factory`, `kafka_factory`, which give a
test private servers it may stop, kill and restart, and `kafka_cluster` (three Kafka nodes). A
server that cannot start fails the test with its log tail; it is never skipped. Under CI=true any
skip counts as a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from tests.harness import (
    Kafka,
    Mosquitto,
    Postgres,
    ProbeError,
    Redis,
    Server,
    ServerError,
    history,
)
from tests.harness.kafka import KafkaCluster
from tests.harness.node_opcua import NodeOpcuaAlarms

S = TypeVar("S", bound=Server)

# Property tests assert behaviour, never speed (figures live in bench/). Hypothesis' default
# 200 ms deadline and its too-slow check failed a correct test when a busy 2-core CI machine
# stalled the process; print_blob lets a real failure be replayed exactly.
settings.register_profile(
    "millstream", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("millstream")


def _serve(server: S) -> Iterator[S]:
    try:
        server.start()
    except ServerError as exc:
        server.cleanup()
        pytest.fail(f"could not start {server.name}: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """The session's Mosquitto broker (persistence on)."""
    yield from _serve(Mosquitto())


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's PostgreSQL; prefer `pg_dsn` for a database of the test's own."""
    yield from _serve(Postgres())


@pytest.fixture(scope="session")
def redis() -> Iterator[Redis]:
    """The session's Redis."""
    yield from _serve(Redis())


@pytest.fixture(scope="session")
def kafka() -> Iterator[Kafka]:
    """The session's single-node Kafka; give each test its own topic names."""
    yield from _serve(Kafka())


@pytest.fixture
def node_opcua_alarms() -> Iterator[str]:
    """The URL of a fresh node-opcua server with the Press guard-door alarm (docs/opcua.md)."""
    for server in _serve(NodeOpcuaAlarms()):
        yield server.url


@pytest.fixture
def pg_dsn(postgres: Postgres) -> Iterator[str]:
    """A fresh, empty database on the session PostgreSQL, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    try:
        dsn = postgres.create_database(name)
    except (OSError, ProbeError) as exc:
        pytest.fail(f"could not create database {name} on {postgres.dsn}: {exc}", pytrace=False)
    yield dsn
    postgres.drop_database(name)


def _factory(make: Callable[..., S]) -> Iterator[Callable[..., S]]:
    made: list[S] = []

    def start(**options: Any) -> S:
        server = make(**options)
        made.append(server)
        try:
            server.start()
        except ServerError as exc:
            pytest.fail(f"could not start {server.name}: {exc}", pytrace=False)
        return server

    try:
        yield start
    finally:
        for server in made:
            server.cleanup()


@pytest.fixture
def mosquitto_factory() -> Iterator[Callable[..., Mosquitto]]:
    """Start private brokers: `mosquitto_factory(persistence=False)`; cleaned up after the test."""
    yield from _factory(Mosquitto)


@pytest.fixture
def postgres_factory() -> Iterator[Callable[..., Postgres]]:
    """Start private PostgreSQL clusters; cleaned up after the test."""
    yield from _factory(Postgres)


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., Redis]]:
    """Start private Redis servers; cleaned up after the test."""
    yield from _factory(Redis)


@pytest.fixture
def kafka_factory() -> Iterator[Callable[..., Kafka]]:
    """Start private Kafka nodes (about 15 s each); cleaned up after the test."""
    yield from _factory(Kafka)


@pytest.fixture
def kafka_cluster() -> Iterator[KafkaCluster]:
    """A private three-node Kafka cluster (replication 3, min.insync.replicas 2; about 10 s to
    start) the test may kill nodes of; cleaned up after the test."""
    cluster = KafkaCluster()
    try:
        cluster.start()
    except ServerError as exc:
        cluster.cleanup()
        pytest.fail(f"could not start the Kafka cluster: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.cleanup()


# -- under CI=true, nothing is silently skipped ----------------------------------------------------


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under CI=true a skipped test is reported as failed (expected failures stay as they are)."""
    report = yield
    if _ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which allows no skips: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Under CI=true a module that skips itself at import (importorskip) is a failure too."""
    report = yield
    if _ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which allows no skips: {report.longrepr}"
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List every real server this session started, so a CI log shows them."""
    if not history:
        return
    terminalreporter.section("real servers started")
    for record in history:
        terminalreporter.write_line(
            f"{record.name:<10} {record.address:<50} {record.seconds:5.1f} s  pid {record.pid}"
        )
