"""Property-based tests from the OpenAPI document (schemathesis): no input makes the API 5xx.

The API runs in a real uvicorn server on a thread of its own (with its own event loop and
PostgreSQL pool), so schemathesis' synchronous client talks to it over a real socket.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from apitest import PASSWORD, SECRET, migrate, store_readings
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from prometheus_client import CollectorRegistry

from hub.api.v1 import mount_api, open_api_services
from hub.auth import Role, hash_password
from hub.config import ApiConfig, HubConfig
from hub.live import Fanout

EXAMPLES = 30  # per operation: bounded so the whole file stays well under a minute


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ServerThread(threading.Thread):
    def __init__(self, dsn: str, port: int) -> None:
        super().__init__(name="api-under-test", daemon=True)
        self.dsn, self.port = dsn, port
        self.ready = threading.Event()
        self.server: uvicorn.Server | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        await migrate(self.dsn)
        await store_readings(
            self.dsn, "s", "m", "t", [(1_799_990_000_000 + i, 1.0) for i in range(50)]
        )
        # Rate limits high enough that the generated requests are all really exercised.
        api = ApiConfig(requests_per_minute=10**6, logins_per_minute=10**6)
        config = HubConfig(storage=self.dsn, jwt_secret=SECRET, api=api)
        app = FastAPI()
        async with open_api_services(config, Fanout()) as services:
            await services.auth.store.add_user("admin", Role.ADMIN, hash_password(PASSWORD), 0)
            mount_api(app, services, CollectorRegistry())
            self.server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
            )
            self.ready.set()
            await self.server.serve()


@pytest.fixture
def api_url(pg_dsn: str) -> Iterator[str]:
    port = _free_port()
    thread = _ServerThread(pg_dsn, port)
    thread.start()
    assert thread.ready.wait(60)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if thread.error is not None:
            raise thread.error
        try:
            httpx.get(f"{base}/api/v1/openapi.json", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            threading.Event().wait(0.05)
    try:
        yield base
    finally:
        assert thread.server is not None
        thread.server.should_exit = True
        thread.join(30)


def test_no_input_makes_the_api_fail(api_url: str) -> None:
    doc = httpx.get(f"{api_url}/api/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    login = httpx.post(
        f"{api_url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    failures: list[str] = []
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=f"{api_url}/api/v1", headers=headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        check()
    assert failures == []
