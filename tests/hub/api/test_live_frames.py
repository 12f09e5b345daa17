"""Prepared WebSocket frames are byte for byte what the websockets library sends."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from hub.live.frames import text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_text_frame_matches_the_reference_serializer(size: int) -> None:
    payload = b"x" * size
    reference = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame(payload) == reference
