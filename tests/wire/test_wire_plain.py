"""The plain telemetry checks (wire/plain.py) judge every batch as the hub's model does.

`encode_telemetry` trusts `plainly_valid` instead of validating with pydantic, so a reading it
passes that the model refuses would be published and dead-lettered by the hub. Hypothesis
generates batches that are valid and broken in every way the model knows (tag, ts, value, q,
src, seq, count) and asserts both verdicts agree, so neither can change alone."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import wire
from wire.models import TelemetryBody
from wire.plain import plainly_valid
from wire.validation import validate_payload


class R(NamedTuple):
    """A reading as the agent's buffer holds it (any attribute may be wrong here)."""

    tag: Any
    ts: Any
    v: Any
    q: Any = "good"


_INT64 = 2**63
weird = st.one_of(
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
tags = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9_.-]{1,128}\Z"),
    st.text(max_size=130),  # spaces, unicode, empty, too long, a trailing newline
    st.sampled_from(["temp\n", "a" * 129, "", "ok.tag"]),
    st.integers(),
    weird,  # unhashable too: judged, not raised on
)
stamps = st.one_of(
    st.integers(0, wire.MAX_TS),
    st.integers(-5, 2 * wire.MAX_TS),
    st.sampled_from([True, 1.5, "1", 0, wire.MAX_TS, wire.MAX_TS + 1, -1]),
)
values = st.one_of(
    st.booleans(),
    st.integers(-_INT64, _INT64 - 1),
    st.integers(-(2**1100), 2**1100),  # wider than int64: a float to the model, if storable
    st.sampled_from([_INT64, -_INT64 - 1, 10**300, 10**301, -(10**301)]),
    st.floats(allow_nan=False, allow_infinity=False),  # beyond ±1e300 too
    st.sampled_from([1e300, -1e300, 1.0000000000000001e300, 1e301, 0.0, -0.0]),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=300),  # NUL, 4-byte characters
    st.sampled_from(["", "\x00", "a\x00", "é" * 512, "é" * 513, "x" * 1024, "x" * 1025]),
    weird,
)
qualities = st.one_of(
    st.sampled_from(["good", "uncertain", "bad"]),
    st.sampled_from(["Good", "", "ok", None, 1]),
)
readings = st.builds(R, tag=tags, ts=stamps, v=values, q=qualities)
srcs = st.one_of(st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"), st.text(max_size=70), st.none())
seqs = st.one_of(st.integers(0, wire.MAX_SEQ), st.integers(-3, 2**64), st.sampled_from([True]))


def body_of(src: Any, seq: Any, items: list[R]) -> dict[str, Any]:
    return {
        "v": 1,
        "src": src,
        "seq": seq,
        "readings": [{"tag": r.tag, "ts": r.ts, "v": r.v, "q": r.q} for r in items],
    }


def model_accepts(src: Any, seq: Any, items: list[R]) -> bool | None:
    """The model's verdict on the payload encode_telemetry would build; None when no JSON
    payload can be built at all (the encoder refuses it first, as before)."""
    try:
        payload = wire.telemetry._ENCODER.encode(body_of(src, seq, items)).encode()
    except (ValueError, TypeError):
        return None
    try:
        validate_payload(TelemetryBody, payload)
    except wire.PayloadError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(src=srcs, seq=seqs, items=st.lists(readings, min_size=0, max_size=4))
@example(src="pc-1", seq=1, items=[R("t", 1, 2**63)])
@example(src="pc-1", seq=1, items=[R("t", 1, 10**301)])
@example(src="pc-1", seq=1, items=[R("temp\n", 1, 1)])
@example(src="pc-1", seq=1, items=[R("t", True, 1)])
@example(src="pc-1", seq=1, items=[R("t", wire.MAX_TS + 1, 1)])
@example(src="pc-1", seq=1, items=[R("t", -1, 1)])
@example(src="pc-1", seq=1, items=[R("t", 1, 1, ["good"])])
@example(src="pc-1", seq=1, items=[R(["t"], 1, 1)])
@example(src="pc-1", seq=1, items=[R("t", 1, 'quote " back\\slash \n tab\t é 😀')])
@example(src="pc-1", seq=1, items=[R("t", 1, 1e16), R("t", 2, 5e-324), R("t", 3, -0.0)])
@example(src="pc-1", seq=1, items=[R("t", 1, 1e301)])
@example(src="pc-1", seq=1, items=[R("t", 1, -1e301)])
@example(src="pc-1", seq=1, items=[R("t", 1, 1e300), R("u", 1, -1e300)])
@example(src="pc-1", seq=1, items=[R("t", 1, "é" * 513)])
def test_plain_checks_agree_with_the_model(src: Any, seq: Any, items: list[R]) -> None:
    verdict = model_accepts(src, seq, items)
    if verdict is None:
        return
    assert plainly_valid(src, seq, items) == verdict
    if verdict:
        # What the agent sends for it, written without a dict per reading: the same bytes the
        # json encoder writes.
        assert wire.telemetry._plain_body(src, seq, items) == wire.telemetry._ENCODER.encode(
            body_of(src, seq, items)
        )


@settings(max_examples=200, deadline=None)
@given(items=st.lists(readings, min_size=1, max_size=4))
def test_encode_refuses_exactly_what_the_model_refuses(items: list[R]) -> None:
    verdict = model_accepts("pc-1", 7, items)
    if verdict is None:
        return
    if verdict:
        assert wire.encode_telemetry("pc-1", 7, items)
    else:
        with pytest.raises(wire.PayloadError):
            wire.encode_telemetry("pc-1", 7, items)


def test_the_error_is_the_models_wording() -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.encode_telemetry("pc-1", 7, [R("ok", 1, 1.0), R("t", 1, "a\x00b")])
    assert caught.value.reason == "nul_in_string"
    assert caught.value.field == "readings[1].v"
