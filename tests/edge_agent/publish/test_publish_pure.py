"""Pure parts of the publisher: backoff, token bucket, rates."""

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.publish import Rate, TokenBucket
from millstream_common.backoff import backoff_delay


@given(st.integers(0, 200), st.floats(0, 0.999999))
def test_backoff_grows_is_capped_and_jittered(attempt: int, rnd: float) -> None:
    delay = backoff_delay(attempt, 0.5, 60.0, rnd)
    step = min(60.0, 0.5 * 2**attempt)
    assert step / 2 <= delay <= step
    assert delay <= 60.0


def test_backoff_first_attempts_double() -> None:
    assert [backoff_delay(a, 1.0, 60.0, 0.0) for a in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(30, 1.0, 60.0, 0.0) == 30.0


def test_token_bucket_paces_to_rate() -> None:
    bucket = TokenBucket(rate=1000, burst=500, now=0.0)
    assert bucket.take(500, now=0.0) == 0.0  # the burst
    assert bucket.take(1000, now=0.0) == 1.0  # one second's worth owed
    assert bucket.take(500, now=2.0) == 0.0


def test_rate_over_complete_seconds() -> None:
    rate = Rate(window=2)
    rate.add(100, 10.2)
    rate.add(300, 11.5)
    rate.add(999, 12.1)  # the current second does not count yet
    assert rate.per_second(12.5) == 200.0
    assert rate.per_second(20.0) == 0.0
