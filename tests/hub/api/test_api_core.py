"""Pure core of the API: roles, tokens, rate-limit arithmetic, downsampling, live buffers."""

from __future__ import annotations

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.auth import MIN_SECRET_BYTES, NotAuthenticated, Principal, Role, allows, jwt_secret
from hub.auth.tokens import issue_access_token, make_api_key, parse_api_key, read_access_token
from hub.config import HubConfig
from hub.errors import ConfigError
from hub.live import (
    ClientBuffer,
    Fanout,
    ProtocolError,
    Subscriber,
    make_update,
    parse_client_message,
)
from hub.query import merge_buckets, plan_history
from hub.query.downsample import HOUR_MS, MINUTE_MS
from hub.storage import RollupRow
from millstream_common.ratelimit import take

KEY = b"k" * 32
OTHER = b"o" * 32


def test_roles_are_ordered() -> None:
    assert allows(Role.ADMIN, Role.VIEWER)
    assert allows(Role.OPERATOR, Role.OPERATOR)
    assert not allows(Role.VIEWER, Role.OPERATOR)
    assert not allows(Role.OPERATOR, Role.ADMIN)


def test_access_token_round_trip_and_expiry() -> None:
    token = issue_access_token(KEY, Principal("ann", Role.OPERATOR), now_s=1000, ttl_s=60)
    assert read_access_token(KEY, token, 1059) == Principal("ann", Role.OPERATOR)
    with pytest.raises(NotAuthenticated, match="expired"):
        read_access_token(KEY, token, 1060)


def test_forged_tokens_are_refused() -> None:
    token = issue_access_token(KEY, Principal("ann", Role.VIEWER), now_s=1000, ttl_s=60)
    with pytest.raises(NotAuthenticated):
        read_access_token(OTHER, token, 1001)  # signed with another secret
    claims = {"iss": "millstream-hub", "sub": "ann", "role": "admin", "exp": 2000}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(NotAuthenticated):
        read_access_token(KEY, unsigned, 1001)  # alg=none
    head, _body, sig = token.split(".")
    tampered = jwt.encode(claims | {"iat": 1000}, OTHER, algorithm="HS256").split(".")[1]
    with pytest.raises(NotAuthenticated):
        read_access_token(KEY, f"{head}.{tampered}.{sig}", 1001)  # role raised, old signature
    with pytest.raises(NotAuthenticated):
        read_access_token(KEY, "not-a-token", 1001)


def test_secret_is_required_and_strong() -> None:
    with pytest.raises(ConfigError, match="no JWT signing secret"):
        jwt_secret(HubConfig())
    with pytest.raises(ConfigError, match="at least 32"):
        jwt_secret(HubConfig(jwt_secret="short"))
    good = "0123456789abcdef" * (MIN_SECRET_BYTES // 16)
    assert jwt_secret(HubConfig(jwt_secret=good)) == good.encode()
    # Long enough, but made up: one character, or a short pattern, repeated.
    for weak in ("x" * MIN_SECRET_BYTES, "ab" * 24, "secret" * 8):
        with pytest.raises(ConfigError, match="different characters"):
            jwt_secret(HubConfig(jwt_secret=weak))


def test_api_key_format() -> None:
    key_id, key, _ = make_api_key()
    assert parse_api_key(key) == (key_id, key.split("_", 2)[2])
    for bad in ("", "msk_", "msk_short_x", "bearer-token", f"msk_{key_id}"):
        assert parse_api_key(bad) is None


def test_token_bucket_refuses_past_burst_and_refills() -> None:
    bucket = None
    for _ in range(5):
        ok, bucket, _wait = take(bucket, 100.0, rate=1.0, burst=5)
        assert ok
    ok, bucket, wait = take(bucket, 100.0, rate=1.0, burst=5)
    assert not ok
    assert wait == pytest.approx(1.0)
    ok, bucket, _ = take(bucket, 101.0, rate=1.0, burst=5)
    assert ok  # one token back after a second at 1/s
    ok, _, _ = take(bucket, 1000.0, rate=1.0, burst=5)
    assert ok


@given(
    start=st.integers(0, 2**40),
    span=st.integers(1, 400 * 86_400_000),
    max_points=st.integers(1, 5000),
    bound=st.integers(0, 10**8),
)
def test_plan_never_exceeds_max_points(start: int, span: int, max_points: int, bound: int) -> None:
    plan = plan_history(start, start + span, max_points, bound)
    if plan.kind == "raw":
        assert bound <= max_points
        return
    width = plan.width_ms
    assert width % (MINUTE_MS if plan.source == "minute" else HOUR_MS) == 0
    first = start - start % width
    assert (start + span - 1 - first) // width + 1 <= max_points


def test_plan_prefers_the_finest_width() -> None:
    day = 86_400_000
    plan = plan_history(0, day, 1000, 86_400)
    assert (plan.source, plan.width_ms) == ("minute", 2 * MINUTE_MS)
    assert plan_history(0, 7 * day, 1000, 10**6).source == "minute"
    assert plan_history(0, 90 * day, 1000, 10**7).source == "hour"
    assert plan_history(0, day, 1000, 1000).kind == "raw"


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300), st.integers(1, 30))
def test_merged_buckets_keep_extremes_and_counts(values: list[float], factor: int) -> None:
    rows = [
        RollupRow(i * MINUTE_MS, v, v, v, 1, i * MINUTE_MS + 5, v) for i, v in enumerate(values)
    ]
    merged = merge_buckets(rows, factor * MINUTE_MS)
    assert sum(b.count for b in merged) == len(values)
    assert max(b.max for b in merged) == max(values)
    assert min(b.min for b in merged) == min(values)
    assert merged[-1].last_value == values[-1]
    assert len(merged) == -(-len(values) // factor)


def _readings(tag: str, n: int, t0: int = 0) -> list[dict[str, object]]:
    return [{"tag": tag, "ts": t0 + i, "v": float(i), "q": "good"} for i in range(n)]


def test_client_buffer_collapses_to_latest_when_behind() -> None:
    buf = ClientBuffer(max_readings=100)
    for k in range(10):
        buf.add(make_update("s/l/m", _readings("a", 30, k * 30) + _readings("b", 1, k)))
    assert len(buf) <= 100
    assert buf.coalesced > 0
    [message] = buf.take()
    assert '"tag":"a","ts":299' in message  # the newest value of each tag survives
    assert '"tag":"b","ts":9' in message
    assert len(buf) == 0
    assert buf.take() == []


def test_client_buffer_filters_tags() -> None:
    buf = ClientBuffer()
    buf.add(make_update("s/l/m", _readings("a", 2) + _readings("b", 2)), frozenset({"b"}))
    [message] = buf.take()
    assert '"a"' not in message
    assert message.startswith('{"type":"readings","machine":"s/l/m","readings":[')


def test_protocol_parsing() -> None:
    msg = parse_client_message('{"type":"subscribe","machines":["s/l/m"],"series":[3]}')
    assert (msg.type, msg.machines, msg.series) == ("subscribe", ("s/l/m",), (3,))
    assert parse_client_message('{"type":"auth","token":"t"}').token == "t"
    for bad in (
        "nope",
        "[]",
        '{"type":"subscribe","machines":["s/l"]}',
        '{"type":"subscribe","series":[true]}',
        '{"type":"auth"}',
        '{"type":"shout"}',
    ):
        with pytest.raises(ProtocolError):
            parse_client_message(bad)


def test_fanout_routes_by_machine_and_tag() -> None:
    fanout = Fanout()
    everything, one_tag, other = Subscriber(), Subscriber(), Subscriber()
    for sub in (everything, one_tag, other):
        fanout.add(sub)
    fanout.subscribe(everything, "s/l/m", None)
    fanout.subscribe(one_tag, "s/l/m", frozenset({"b"}))
    fanout.subscribe(other, "s/l/x", None)
    fanout.deliver([make_update("s/l/m", _readings("a", 1) + _readings("b", 1))])
    assert len(everything.buffer) == 2
    assert len(one_tag.buffer) == 1
    assert len(other.buffer) == 0
    assert not other.ready.is_set()
    fanout.unsubscribe(everything, "s/l/m")
    fanout.remove(one_tag)
    fanout.deliver([make_update("s/l/m", _readings("b", 1))])
    assert len(everything.buffer) == 2
    assert fanout.clients == 2
