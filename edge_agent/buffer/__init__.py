"""Store-and-forward buffer: every reading is committed to SQLite before it may be published.

Pure parts: `readings` (codec), `batcher`, `seqs`, `downsample`. I/O: `schema`, `db` (the
statements), `writer` (the one writer thread, group commit), `store` (the asyncio `Buffer`).
"""

from edge_agent.buffer.batcher import Batcher
from edge_agent.buffer.db import Batch, BufferDB, ChunkRef
from edge_agent.buffer.downsample import downsample
from edge_agent.buffer.readings import Encoder, Reading, decode_body, wire_encoder
from edge_agent.buffer.seqs import SeqAllocator
from edge_agent.buffer.store import Buffer, BufferStats
from edge_agent.buffer.writer import Bounds

__all__ = [
    "Batch",
    "Batcher",
    "Bounds",
    "Buffer",
    "BufferDB",
    "BufferStats",
    "ChunkRef",
    "Encoder",
    "Reading",
    "SeqAllocator",
    "decode_body",
    "downsample",
    "wire_encoder",
]
