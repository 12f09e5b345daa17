"""Cursor paging for the list endpoints: opaque cursors and the `X-Next-Cursor`/`Link` headers.

A list endpoint keeps answering the bare JSON list it always did; paging only adds query
parameters (`limit`, `after`) and response headers, so clients that never page see no change
(docs/api.md "Paging"). A cursor is the last row's sort key, base64url-encoded JSON tagged with
the listing it came from: the next page starts strictly after that key, so rows inserted or
removed between two fetches never shift the rows still to come (keyset paging, no OFFSET).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Annotated

from fastapi import HTTPException, Query, Request, Response

__all__ = [
    "After",
    "Key",
    "Limit",
    "decode_cursor",
    "encode_cursor",
    "next_page",
]

MAX_LIMIT = 1000
MAX_CURSOR_CHARS = 2048  # four 255-char names, JSON-quoted and base64-encoded, fit with room

# A sort key: names (site, line, machine, tag, agent id) or an integer id.
Key = tuple[str | int, ...]

Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_LIMIT, description="page size; without it the whole list (after `after`)"),
]
After = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_CHARS,
        description="the `X-Next-Cursor` of the previous page: rows strictly after it",
    ),
]


def encode_cursor(listing: str, key: Key) -> str:
    """The opaque, URL-safe cursor of `key` in `listing` (the endpoint's name)."""
    raw = json.dumps([listing, *key], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(listing: str, cursor: str, shape: Sequence[type]) -> Key:
    """The sort key in `cursor`, which must come from `listing` and have `shape`; else 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError) as exc:
        raise _bad(listing, "it is not one the hub issued") from exc
    if not isinstance(doc, list) or not doc or doc[0] != listing:
        raise _bad(listing, "it is not one the hub issued for this list")
    key = doc[1:]
    # bool is an int to Python; no key of ours is a bool, so refuse it explicitly.
    if len(key) != len(shape) or not all(
        type(v) is t and not isinstance(v, bool) for v, t in zip(key, shape, strict=True)
    ):
        raise _bad(listing, "it is not one the hub issued for this list")
    return tuple(key)


def _bad(listing: str, why: str) -> HTTPException:
    return HTTPException(
        422,
        f"bad cursor for /{listing}: {why}; pass the X-Next-Cursor of a previous page"
        " unchanged, or leave `after` out to start from the first row",
    )


def next_page(request: Request, response: Response, listing: str, key: Key | None) -> None:
    """Announce the next page (when `key`, the last row's sort key, is given) in headers."""
    if key is None:
        return
    cursor = encode_cursor(listing, key)
    response.headers["X-Next-Cursor"] = cursor
    # A relative reference (RFC 8288 §3.1; RFC 3986 §4.2): the same query with the new cursor.
    # Relative, so it stays right behind a reverse proxy that rewrites the host.
    url = request.url.include_query_params(after=cursor)
    response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
