"""millstream_common/logjson.py for the hub: JSON lines with credentials redacted, whoever logs."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.auth import make_api_key
from millstream_common.logjson import REDACTED, JsonFormatter, hide_secret, redact

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJhbGljZSIsImV4cCI6MTc2MzkwMDAwMH0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
)


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        # What uvicorn logs for a WebSocket client that authenticates in the URL.
        ('127.0.0.1:5123 - "WebSocket /ws?token=abc.def-ghi" [accepted]', '/ws?token=[redacted]"'),
        ("GET /api/v1/machines?site=a&api_key=k3y-k3y&x=1", "&api_key=[redacted]&x=1"),
        ("GET /x?access_token=t0ken1234;y", "?access_token=[redacted];y"),
        ("GET /x?REFRESH_TOKEN=t0ken1234", "?REFRESH_TOKEN=[redacted]"),
        ("GET /x?password=hunter22#frag", "?password=[redacted]#frag"),
        ("Authorization: Bearer abc.def.ghi", "Bearer [redacted]"),
        (f"token {JWT} refused", f"token {REDACTED} refused"),
        ("redis://:hunter22@redis:6379/0 unreachable", "redis://:[redacted]@redis:6379/0"),
        ("mqtt://agent:pa55word@broker:1883", "mqtt://agent:[redacted]@broker:1883"),
    ],
)
def test_credentials_are_redacted(line: str, kept: str) -> None:
    out = redact(line)
    assert kept in out
    for secret in ("abc.def", "k3y-k3y", "t0ken1234", "hunter22", "pa55word", JWT):
        assert secret not in out


def test_api_key_keeps_its_id_and_loses_its_secret() -> None:
    key_id, key, _ = make_api_key()
    secret = key.split("_", 2)[2]
    out = redact(f"/ws?x=1 {key}")
    assert key_id in out
    assert secret not in out


def test_what_carries_no_credential_is_unchanged() -> None:
    line = "GET /api/v1/series/12/readings?from=1&to=2&max_points=4500 200 http://hub:8000/x"
    assert redact(line) == line


def test_hidden_secrets_are_masked_anywhere() -> None:
    hide_secret("the-broker-password-7")
    hide_secret(b"jwt-signing-secret-0123456789abcdef")
    hide_secret("abc")  # too short to be a secret worth masking: ignored
    out = redact("connect failed: the-broker-password-7 / jwt-signing-secret-0123456789abcdef abc")
    assert out == f"connect failed: {REDACTED} / {REDACTED} abc"


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40))
def test_any_token_in_a_query_string_is_redacted(token: str) -> None:
    token = token.replace("&", "").replace(";", "").replace("#", "").replace('"', "")
    token = "".join(token.split())
    line = f'"WebSocket /ws?token={token}" 403'
    assert redact(line) == f'"WebSocket /ws?token={REDACTED if token else ""}" 403'


def test_a_logged_line_is_json_with_message_fields_and_traceback_redacted() -> None:
    hide_secret("swordfish-in-a-traceback")
    try:
        raise RuntimeError("login with swordfish-in-a-traceback failed")
    except RuntimeError:
        record = logging.LogRecord(
            "uvicorn.error", logging.INFO, __file__, 1, "WebSocket %s", ("/ws?token=" + JWT,), None
        )
        import sys  # noqa: PLC0415

        record.exc_info = sys.exc_info()
    record.fields = {"path": "/x?api_key=abcdef", "status": 200}
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["msg"] == f"WebSocket /ws?token={REDACTED}"
    assert entry["path"] == f"/x?api_key={REDACTED}"
    assert entry["status"] == 200
    assert "swordfish" not in entry["exc"]
    assert JWT not in line
