"""The alerts API refuses text PostgreSQL cannot store (a NUL) with a 422, never a 500."""

from __future__ import annotations

import uuid

import pytest
from apitest import migrate, running_api

from hub.auth import Role

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_nul_in_alert_text_is_a_422(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    async with running_api(pg_dsn) as api:
        op = api.auth(Role.OPERATOR)
        some = uuid.uuid4()
        r = await api.client.post(
            f"/api/v1/alerts/{some}/ack", json={"comment": "a\x00b"}, headers=op
        )
        assert r.status_code == 422
        r = await api.client.post(f"/api/v1/alerts/{some}/ack", json={"comment": "ok"}, headers=op)
        assert r.status_code == 404
        r = await api.client.get("/api/v1/alerts", params={"rule": "a\x00"}, headers=op)
        assert r.status_code == 422
        r = await api.client.post(
            "/api/v1/alerts/shelves", json={"machine": "m\x00", "for": "1h", "reason": "x"},
            headers=op,
        )  # fmt: skip
        assert r.status_code == 422
        r = await api.client.post(
            "/api/v1/alerts/shelves", json={"for": "1h", "reason": "die\x00change"}, headers=op
        )
        assert r.status_code == 422
        r = await api.client.get("/api/v1/alerts", params={"state": "open"}, headers=op)
        assert r.status_code == 200
        assert r.json() == []
