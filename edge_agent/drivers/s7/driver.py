"""The S7 driver: polls a Siemens S7 PLC over ISO-on-TCP (python-snap7's asyncio client).

Tags polled at the same interval are read together: their addresses are merged into as few
byte ranges per area and data block as the negotiated PDU allows (gaps of up to `max_gap`
bytes are read and thrown away rather than paid for with another request), and each range is
decoded locally. A failed read drops the connection; the next poll reconnects with backoff, and
the device health says why in words. Like the Modbus driver, `close()` lets a read in flight
finish and `batches()` hands out everything read before it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from snap7.async_client import AsyncClient
from snap7.error import S7Error
from snap7.type import Area

from edge_agent.drivers.base import Sample, Value
from edge_agent.drivers.polling import QUEUE_BATCHES, PollingDriver
from edge_agent.drivers.s7.address import S7Address, S7Type, byte_size, decode, encode
from edge_agent.drivers.writes import check_write, value_kind
from edge_agent.errors import DeviceUnavailable, WriteFailed, WriteRefused
from millstream_common.backoff import Backoff

__all__ = ["Block", "S7Driver", "S7Endpoint", "S7Point", "pack_requests", "plan_blocks"]

_log = logging.getLogger(__name__)

_AREA = {"DB": Area.DB, "M": Area.MK, "I": Area.PE, "Q": Area.PA}
# A read response spends 18 bytes of the PDU on headers (what snap7 reserves as well).
_READ_OVERHEAD = 18
DEFAULT_MAX_GAP = 32


@dataclass(frozen=True, slots=True)
class S7Endpoint:
    """Where the PLC is: ISO-on-TCP host and port, rack and slot of its CPU."""

    host: str
    port: int = 102
    rack: int = 0
    slot: int = 1
    timeout_ms: int = 1000

    @property
    def timeout_s(self) -> float:
        """The response timeout in seconds."""
        return self.timeout_ms / 1000

    def __str__(self) -> str:
        return f"{self.host}:{self.port} (rack {self.rack}, slot {self.slot})"


@dataclass(frozen=True, slots=True)
class S7Point:
    """One tag: where it is, its S7 type and its scaling."""

    name: str
    address: S7Address
    type: S7Type
    length: int = 254  # characters, for strings
    scale: float = 1.0
    offset: float = 0.0
    deadband: float | None = None
    poll_ms: int = 1000
    max_interval_ms: int = 60_000
    unit: str | None = None
    writable: bool = False
    min: float | None = None
    max: float | None = None

    @property
    def size(self) -> int:
        """Bytes read for this tag."""
        return byte_size(self.type, self.length)

    def value(self, data: bytes) -> Value:
        """The tag's value in engineering units from its bytes."""
        raw = decode(self.type, data, self.address.bit)
        if isinstance(raw, bool | str) or (self.scale == 1.0 and self.offset == 0.0):
            return raw
        return raw * self.scale + self.offset


@dataclass
class Block:
    """One contiguous byte range read in one request, and the tags inside it."""

    area: str
    db: int
    start: int
    size: int
    points: list[S7Point] = field(default_factory=list)


# An S7 read request: a 12-byte header, 2 parameter bytes and 12 per item; its response: the
# header and parameter again, then per item 4 bytes, the data and a fill byte to even length.
_REQUEST_HEAD = 14
_ITEM_SPEC = 12
_ITEM_HEAD = 4
MAX_ITEMS = 20  # items one request may name (what S7 CPUs accept)


def pack_requests(blocks: Sequence[Block], pdu: int) -> list[list[Block]]:
    """Blocks grouped into requests whose request and response each fit the PDU (the
    multi-variable read: several ranges, even of different data blocks, in one round trip)."""
    packets: list[list[Block]] = []
    current: list[Block] = []
    asked = answered = _REQUEST_HEAD
    for block in blocks:
        answer = _ITEM_HEAD + block.size + block.size % 2
        if current and (
            len(current) == MAX_ITEMS or asked + _ITEM_SPEC > pdu or answered + answer > pdu
        ):
            packets.append(current)
            current, asked, answered = [], _REQUEST_HEAD, _REQUEST_HEAD
        current.append(block)
        asked += _ITEM_SPEC
        answered += answer
    if current:
        packets.append(current)
    return packets


async def _read_packet(client: AsyncClient, packet: Sequence[Block]) -> list[bytes]:
    """The bytes of each block of one request."""
    if len(packet) == 1:
        (block,) = packet
        return [bytes(await client.read_area(_AREA[block.area], block.db, block.start, block.size))]
    request = client.protocol.build_multi_read_request(
        [(int(_AREA[b.area]), b.db, b.start, b.size) for b in packet]
    )
    # The asyncio client has no public multi-variable read (its read_multi_vars reads item by
    # item); its request/response exchange (locked, sequence-checked) is what it uses itself.
    response = await client._send_receive(request)
    return [bytes(d) for d in client.protocol.extract_multi_read_data(response, len(packet))]


def plan_blocks(
    points: Sequence[S7Point], max_block: int, max_gap: int = DEFAULT_MAX_GAP
) -> list[Block]:
    """The fewest byte ranges covering `points`: per area and data block, neighbours merged
    while the gap between them is at most `max_gap` and the range fits `max_block` bytes."""
    groups: dict[tuple[str, int], list[S7Point]] = defaultdict(list)
    for point in points:
        groups[point.address.area, point.address.db].append(point)
    blocks: list[Block] = []
    for (area, db), members in sorted(groups.items()):
        current: Block | None = None
        for point in sorted(members, key=lambda p: (p.address.byte, p.size)):
            start, end = point.address.byte, point.address.byte + point.size
            if (
                current is not None
                and start <= current.start + current.size + max_gap
                and max(end, current.start + current.size) - current.start <= max_block
            ):
                current.size = max(current.size, end - current.start)
                current.points.append(point)
                continue
            current = Block(area, db, start, end - start, [point])
            blocks.append(current)
    return blocks


class S7Driver(PollingDriver[S7Point]):
    """Polls one S7 PLC; the runtime's Source (batches, close, health)."""

    def __init__(
        self,
        device: str,
        endpoint: S7Endpoint,
        points: Sequence[S7Point],
        *,
        max_gap: int = DEFAULT_MAX_GAP,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        queue_batches: int = QUEUE_BATCHES,
    ) -> None:
        self.endpoint = endpoint
        self.max_gap = max_gap
        super().__init__(device, points, backoff=backoff, clock=clock, queue_batches=queue_batches)
        self.pdu_length = 0
        self._client: AsyncClient | None = None
        self._plans: dict[int, list[Block]] = {}
        self._connecting = asyncio.Lock()  # poll loops of several intervals share one client

    @property
    def timeout_s(self) -> float:
        """The response timeout."""
        return self.endpoint.timeout_s

    @property
    def requests(self) -> list[Block]:
        """The byte ranges one poll of every tag reads (after connecting)."""
        return [block for blocks in self._plans.values() for block in blocks]

    async def connect(self) -> None:
        """Connect (if not connected) and plan the reads for the negotiated PDU size."""
        async with self._connecting:
            if self._client is None:
                await self._connect()

    async def _connect(self) -> None:
        client = AsyncClient()
        try:
            async with asyncio.timeout(self.endpoint.timeout_s + 1.0):
                await client.connect(
                    self.endpoint.host, self.endpoint.rack, self.endpoint.slot, self.endpoint.port
                )
        except (S7Error, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise DeviceUnavailable(
                f"cannot connect to {self.endpoint}: {_words(exc)}", device=self.device
            ) from None
        self._client = client
        self.counters["reconnects"] += 1
        self.pdu_length = client.pdu_length
        by_interval: dict[int, list[S7Point]] = defaultdict(list)
        for point in self.points:
            by_interval[point.poll_ms].append(point)
        self._plans = {
            ms: plan_blocks(pts, self.pdu_length - _READ_OVERHEAD, self.max_gap)
            for ms, pts in by_interval.items()
        }

    async def poll_interval(self, poll_ms: int) -> list[Sample]:
        """The tags polled every `poll_ms`, once."""
        return await self._poll(self._plans.get(poll_ms, []))

    async def release(self) -> None:
        """Disconnect."""
        await self._disconnect()

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def read(self) -> list[Sample]:
        """Every tag once."""
        return [sample for _point, _raw, sample in await self.read_raw()]

    async def read_raw(self) -> list[tuple[S7Point, bytes, Sample]]:
        """Every tag once with its bytes as the PLC keeps them (what `probe` shows)."""
        await self.connect()
        raw: list[tuple[S7Point, bytes, Sample]] = []
        await self._poll([b for blocks in self._plans.values() for b in blocks], raw)
        return raw

    async def _poll(
        self, blocks: Sequence[Block], raw: list[tuple[S7Point, bytes, Sample]] | None = None
    ) -> list[Sample]:
        client = self._client
        if client is None:
            raise DeviceUnavailable("not connected", device=self.device)
        samples: list[Sample] = []
        ts = int(self._clock() * 1000)
        try:
            for packet in pack_requests(blocks, self.pdu_length):
                async with asyncio.timeout(self.endpoint.timeout_s):
                    datas = await _read_packet(client, packet)
                self.counters["requests"] += 1
                for block, data in zip(packet, datas, strict=True):
                    for point in block.points:
                        at = point.address.byte - block.start
                        own = data[at : at + point.size]
                        sample = Sample(point.name, ts, point.value(own), "good")
                        samples.append(sample)
                        if raw is not None:
                            raw.append((point, own, sample))
        except (S7Error, OSError, TimeoutError) as exc:
            await self._disconnect()
            raise DeviceUnavailable(f"{self.endpoint}: {_words(exc)}", device=self.device) from None
        return samples

    # -- writes (commands, `edge-agent write`) -------------------------------------------------

    async def read_tag(self, tag: str) -> Value:
        """One tag's value now; `WriteRefused` naming the tags there are when there is none."""
        point = self.point(tag)
        await self.connect()
        block = Block(point.address.area, point.address.db, point.address.byte, point.size,
                      [point])  # fmt: skip
        (sample,) = await self._poll([block])
        return sample.value

    async def write(self, tag: str, value: Value) -> tuple[Value, Value]:
        """Write `value` (engineering units) to a writable tag; (value before, value read back).
        A bool is set inside its byte (read, change the one bit, write back)."""
        point = self.point(tag)
        kind = value_kind(point.type)
        checked = check_write(tag, value, kind, writable=point.writable, min=point.min,
                              max=point.max)  # fmt: skip
        previous = await self.read_tag(tag)
        address = point.address
        try:
            if point.type == "bool":
                old = await self._read_bytes(address.area, address.db, address.byte, 1)
                mask = 1 << (address.bit or 0)
                data = bytes([old[0] | mask if checked else old[0] & ~mask & 0xFF])
            else:
                raw = checked if isinstance(checked, str) else (
                    (float(checked) - point.offset) / point.scale  # type: ignore[arg-type]
                )  # fmt: skip
                data = encode(point.type, raw, point.length)
        except ValueError as exc:
            raise WriteRefused(f"{tag}: {exc}") from None
        client = self._client
        if client is None:
            raise DeviceUnavailable("not connected", device=self.device)
        try:
            async with asyncio.timeout(self.endpoint.timeout_s):
                await client.write_area(_AREA[address.area], address.db, address.byte,
                                        bytearray(data))  # fmt: skip
        except (S7Error, OSError, TimeoutError) as exc:
            await self._disconnect()
            raise WriteFailed(f"{address}: {_words(exc)}") from None
        return previous, await self.read_tag(tag)

    async def _read_bytes(self, area: str, db: int, start: int, size: int) -> bytes:
        client = self._client
        if client is None:
            raise DeviceUnavailable("not connected", device=self.device)
        try:
            async with asyncio.timeout(self.endpoint.timeout_s):
                return bytes(await client.read_area(_AREA[area], db, start, size))
        except (S7Error, OSError, TimeoutError) as exc:
            await self._disconnect()
            raise DeviceUnavailable(f"{self.endpoint}: {_words(exc)}", device=self.device) from None


def _words(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    if "Address out of range" in text or "not available" in text.lower():
        return (
            f"{text} — on an S7-1200/1500, a data block read by absolute address needs "
            "'Optimized block access' turned off in its properties, and PUT/GET allowed in the "
            "CPU's protection settings"
        )
    return text
