"""Alert changes on the live fan-out: only subscribers that asked get them (pure)."""

from __future__ import annotations

import pytest

from hub.live import Fanout, Subscriber
from hub.live.protocol import ProtocolError, parse_client_message


def test_alert_changes_reach_only_those_who_subscribed_to_alerts() -> None:
    fanout = Fanout()
    watching, other = Subscriber(), Subscriber()
    for s in (watching, other):
        fanout.add(s)
    fanout.watch_alerts(watching, True)
    fanout.publish_alert({"id": "a1", "state": "active"})
    assert watching.said == [{"type": "alert", "id": "a1", "state": "active"}]
    assert other.said == []
    fanout.watch_alerts(watching, False)
    fanout.publish_alert({"id": "a1", "state": "cleared"})
    assert len(watching.said) == 1
    fanout.watch_alerts(other, True)
    fanout.remove(other)
    fanout.publish_alert({"id": "a2", "state": "active"})
    assert other.said == []


def test_subscribe_message_takes_an_alerts_flag() -> None:
    msg = parse_client_message('{"type": "subscribe", "alerts": true}')
    assert msg.alerts is True
    assert msg.machines == ()
    assert parse_client_message('{"type": "subscribe", "machines": []}').alerts is False
    with pytest.raises(ProtocolError, match="alerts must be true or false"):
        parse_client_message('{"type": "subscribe", "alerts": "yes"}')
