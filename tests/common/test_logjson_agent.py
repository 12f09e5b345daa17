"""millstream_common/logjson.py for the agent: its log lines never carry its broker password."""

from __future__ import annotations

import json
import logging

from edge_agent.publish import PublisherSettings
from millstream_common.logjson import REDACTED, JsonFormatter, hide_secret, redact


def test_password_in_a_url_is_redacted() -> None:
    out = redact("cannot connect to mqtts://pc-7:Pa55-w0rd@broker.plant:8883 (timeout)")
    assert out == f"cannot connect to mqtts://pc-7:{REDACTED}@broker.plant:8883 (timeout)"


def test_a_hidden_password_is_masked_in_message_and_traceback() -> None:
    hide_secret("from-the-password-file")
    try:
        raise ConnectionError("server said: bad password 'from-the-password-file'")
    except ConnectionError as exc:
        record = logging.LogRecord(
            "aiomqtt", logging.WARNING, __file__, 1, "publish failed: %s", (exc,), None
        )
        record.exc_info = (type(exc), exc, exc.__traceback__)
    line = JsonFormatter().format(record)
    assert "from-the-password-file" not in line
    assert json.loads(line)["msg"] == f"publish failed: server said: bad password '{REDACTED}'"


def test_settings_never_show_the_password() -> None:
    settings = PublisherSettings(host="h", port=1883, client_id="a", password="s3cret-value")
    assert "s3cret-value" not in repr(settings)
