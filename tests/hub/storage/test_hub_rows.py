"""Row building (pure): value kinds, quality codes, partition days."""

from __future__ import annotations

from dataclasses import dataclass

from hub.storage import SeriesKey, TelemetryBatch
from hub.storage.rows import DAY_MS, missing_series, to_rows


@dataclass(frozen=True)
class R:
    tag: str
    ts: int
    v: float | int | bool | str
    q: str = "good"


def test_value_kinds_quality_and_days() -> None:
    batch = TelemetryBatch(
        "s",
        "l",
        "m",
        "src",
        1,
        [R("f", 5, 1.5), R("i", 6, 2, "bad"), R("b", DAY_MS, True), R("t", 2 * DAY_MS, "RUN")],
    )
    ids = {("s", "l", "m"): {"f": 1, "i": 2, "b": 3}}
    assert missing_series([batch], ids) == {SeriesKey("s", "l", "m", "t")}
    ids[("s", "l", "m")]["t"] = 4
    rows, days = to_rows([batch], ids)
    assert rows == [
        (1, 5, 1.5, None, 0),
        (2, 6, 2.0, None, 2),
        (3, DAY_MS, 1.0, "true", 0),
        (4, 2 * DAY_MS, None, "RUN", 0),
    ]
    assert days == {0, 1, 2}
