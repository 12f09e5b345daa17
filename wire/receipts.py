"""Receipts: the hub tells a publisher which of its batches are committed, and with what content."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pydantic import ValidationError

from wire.errors import PayloadError, shorten
from wire.limits import VERSION
from wire.models import Receipt, ReceiptBody
from wire.topics import ReceiptTopic, parse_topic
from wire.validation import payload_error, validate_payload

__all__ = ["batch_digest", "coalesce_seqs", "encode_receipt", "parse_receipt"]


def batch_digest(payload: bytes) -> str:
    """The digest a receipt names a batch by: SHA-256 of the payload bytes, first 128 bits, hex.

    The hub takes it of the bytes it received, the publisher of the bytes it sent; MQTT carries
    payloads unchanged, so they match exactly when the hub stored that very batch.
    """
    return hashlib.sha256(payload).hexdigest()[:32]


def coalesce_seqs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted inclusive ranges covering exactly `seqs`: 3,1,2,7,7 → [(1, 3), (7, 7)]."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def encode_receipt(
    seqs: Iterable[tuple[int, int]], sha256: Iterable[tuple[int, str]] = ()
) -> bytes:
    """Serialise inclusive seq ranges (see `coalesce_seqs`) and the (seq, `batch_digest`) of each
    batch stored; PayloadError if one is invalid."""
    try:
        body = ReceiptBody(v=VERSION, seqs=tuple(seqs), sha256=tuple(sha256))
    except ValidationError as exc:
        raise payload_error(exc) from None
    return body.model_dump_json(exclude_defaults=True).encode()


def parse_receipt(topic: str, payload: bytes) -> Receipt:
    """Validate a receipt as an agent receives it; raise PayloadError, never anything else."""
    where = parse_topic(topic)
    if not isinstance(where, ReceiptTopic):
        raise PayloadError("bad_topic", f"topic: {shorten(topic)} is not a receipt topic", "topic")
    body = validate_payload(ReceiptBody, payload)
    return Receipt.model_construct(src=where.src, seqs=body.seqs, sha256=body.sha256)
