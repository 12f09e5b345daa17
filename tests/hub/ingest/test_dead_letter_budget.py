"""The dead-letter store's byte budget (pure): rows always, whole payloads within the budget."""

from __future__ import annotations

from hub.ingest.deadletters import HEAD_BYTES, TOO_LARGE_BYTES, DeadLetterBudget
from hub.storage import DeadLetter

MIB = 1024 * 1024


def letter(src: str, size: int, reason: str = "bad_json") -> DeadLetter:
    return DeadLetter("ms/v1/s/l/m/telemetry", b"x" * size, reason, "refused", 0, src)


def test_a_flooding_publisher_keeps_its_rows_but_only_heads_past_its_budget() -> None:
    budget = DeadLetterBudget(per_publisher_per_minute=256 * 1024, total_per_minute=2 * MIB)
    kept = [budget.trim(letter("dev", 100 * 1024), now=0.0) for _ in range(30)]
    whole = [d for d in kept if len(d.payload) == 100 * 1024]
    assert len(whole) == 2  # 256 KiB of budget: two whole payloads of 100 KiB
    assert all(len(d.payload) == HEAD_BYTES for d in kept[2:])
    assert all(d.payload_size == 100 * 1024 for d in kept)  # the real size is still recorded
    assert budget.trimmed == 28
    # Another publisher still gets its payloads kept whole.
    assert len(budget.trim(letter("other", 100 * 1024), now=0.0).payload) == 100 * 1024
    # A minute later the flooding publisher's budget is back.
    assert len(budget.trim(letter("dev", 100 * 1024), now=60.0).payload) == 100 * 1024


def test_the_hub_as_a_whole_has_a_budget_too() -> None:
    budget = DeadLetterBudget(per_publisher_per_minute=MIB, total_per_minute=MIB)
    sizes = [len(budget.trim(letter(f"d{i}", 300 * 1024), now=0.0).payload) for i in range(5)]
    assert sizes == [300 * 1024] * 3 + [HEAD_BYTES] * 2


def test_an_oversized_payload_keeps_only_its_head_and_small_ones_are_untouched() -> None:
    budget = DeadLetterBudget()
    big = budget.trim(letter("dev", 10 * MIB, reason="too_large"), now=0.0)
    assert len(big.payload) == TOO_LARGE_BYTES
    assert big.payload_size == 10 * MIB
    small = letter("dev", 200)
    assert budget.trim(small, now=0.0) is small
