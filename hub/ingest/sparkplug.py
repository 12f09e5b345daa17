"""Sparkplug B messages → what storage commits, as the primary host application sees them.

Unlike Millstream's own JSON, Sparkplug is stateful: data may name metrics only by the aliases
the latest birth declared, a node's messages carry a 0–255 `seq` that must run without gaps,
and a death counts only if its `bdSeq` matches the birth's. So this classifier keeps per-node
state, runs on the event loop in arrival order (never in a parse worker), and asks the edge node
for a **rebirth** (NCMD `Node Control/Rebirth`) when it cannot make sense of what it gets — an
unknown alias, a seq gap, data before any birth — as the specification requires.

Births are committed with their readings (`SparkplugBirth`, table `sparkplug_births`) and loaded
again at start, so data the broker redelivers after a hub restart still resolves its aliases.

What becomes what (docs/sparkplug.md has the full table):

    NBIRTH / DBIRTH   the machine online, its metrics' values as readings, the aliases kept
    NDATA / DDATA     readings (`is_historical` metrics as history: stored, never shown live)
    NDEATH / DDEATH   the machine (a node: with all its devices) offline
    anything broken   a dead letter with the reason; only the broken metrics when the rest is good
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import wire
from hub.ingest.classify import Classified, Part, Several
from hub.ingest.message import Incoming
from hub.storage import (
    CompactReading,
    DeadLetter,
    MachineStatusUpdate,
    SparkplugBirth,
    TelemetryBatch,
)
from wire import sparkplug as spb

__all__ = ["REBIRTH_METRIC", "SparkplugIngest"]

log = logging.getLogger(__name__)

REBIRTH_METRIC = "Node Control/Rebirth"
BD_SEQ_METRIC = "bdSeq"
# Metrics that steer the edge node rather than describe a machine: kept in the alias map, not
# stored as series.
_CONTROL_PREFIXES = ("Node Control/", "Device Control/")
_LISTED = 5  # refused metrics named in a partial dead letter's message (all are in its payload)
# What a Millstream agent in `output: sparkplug` puts in `uuid`: its id and the batch's seq.
_AGENT_BATCH = re.compile(r"ms:(" + wire.SEGMENT_PATTERN + r"):(\d{1,18})")

NodeKey = tuple[str, str]  # (group, edge node)
BirthKey = tuple[str, str, str]  # (group, edge node, device or "")


@dataclass(slots=True)
class _Birth:
    aliases: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    datatypes: dict[str, int | None] = field(default_factory=dict)
    bd_seq: int | None = None
    has_data: bool = False  # declares a metric that is a machine's value (not only control)


def _is_control(name: str) -> bool:
    return name == BD_SEQ_METRIC or name.startswith(_CONTROL_PREFIXES)


class SparkplugIngest:
    """The primary host's view of every edge node (see module docstring); one per hub process
    that holds the Sparkplug host role."""

    def __init__(
        self,
        naming: spb.SpbNaming,
        request_rebirth: Callable[[str, str], None],
        *,
        births: Iterable[SparkplugBirth] = (),
        rebirth_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._naming = naming
        self._request_rebirth = request_rebirth
        self._rebirth_interval_s = rebirth_interval_s
        self._clock = clock
        self._births: dict[BirthKey, _Birth] = {}
        self._seq: dict[NodeKey, int] = {}
        self._asked: dict[NodeKey, float] = {}
        for b in births:
            self._remember(b)

    # --- state ------------------------------------------------------------------------------

    def _remember(self, b: SparkplugBirth) -> _Birth:
        birth = _Birth(bd_seq=b.bd_seq)
        for name, alias, datatype in b.metrics:
            if alias is not None:
                birth.aliases[alias] = (name, datatype)
            birth.datatypes[name] = datatype
            birth.has_data = birth.has_data or not _is_control(name)
        self._births[(b.group, b.node, b.device)] = birth
        return birth

    def _rebirth(self, node: NodeKey, why: str) -> None:
        """Ask the edge node to publish its births again (at most once per interval)."""
        now = self._clock()
        last = self._asked.get(node)
        if last is not None and now - last < self._rebirth_interval_s:
            return
        self._asked[node] = now
        log.info("asking Sparkplug edge node %s/%s for a rebirth: %s", *node, why)
        self._request_rebirth(*node)

    def _check_seq(self, node: NodeKey, kind: str, seq: int | None) -> None:
        if seq is None:
            return
        last = self._seq.get(node)
        self._seq[node] = seq
        if kind == "NBIRTH" or last is None:
            return
        if seq != (last + 1) % 256:
            self._rebirth(node, f"seq {seq} after {last}: messages were lost")

    # --- classification ---------------------------------------------------------------------

    def classify(self, msg: Incoming) -> Classified | None:
        """What `msg` becomes; never raises on input (anything broken is a dead letter)."""
        try:
            topic = spb.parse_topic(msg.topic)
            if topic.kind.endswith("CMD"):
                return None  # commands to edge nodes (ours, or another host's)
            site, line, machine = self._naming.machine_of(topic.group, topic.node, topic.device)
            payload = spb.decode(msg.payload)
        except wire.PayloadError as exc:
            return _dead(msg, exc.reason, str(exc))
        node = (topic.group, topic.node)
        key = (topic.group, topic.node, topic.device or "")
        if topic.kind == "NDEATH":
            return self._node_death(msg, node, payload)
        self._check_seq(node, topic.kind, payload.seq)
        where = (site, line, machine)
        if topic.kind == "DDEATH":
            return _status(where, "offline", msg, payload.timestamp, "Sparkplug DDEATH")
        if topic.kind in ("NBIRTH", "DBIRTH"):
            return self._birth(msg, topic, key, where, payload)
        if topic.device is not None and key not in self._births:
            self._rebirth(node, f"DDATA from {topic.device}, which has sent no DBIRTH")
        return Several(tuple(self._readings(msg, topic, key, where, payload)))

    def _node_death(self, msg: Incoming, node: NodeKey, payload: spb.SpbPayload) -> Classified:
        bd_seq = _bd_seq(payload)
        birth = self._births.get((*node, ""))
        if birth is not None and birth.bd_seq is not None and bd_seq != birth.bd_seq:
            # The will of an older connection, delivered after the node came back: not news.
            return _dead(
                msg,
                "bad_field",
                f"NDEATH bdSeq {bd_seq} does not match the current birth's {birth.bd_seq}:"
                " a stale death certificate, ignored",
            )
        self._seq.pop(node, None)
        devices = sorted(d for g, n, d in self._births if (g, n) == node)
        updates: list[Part] = []
        for device in devices:
            if device == "" and not (birth is not None and birth.has_data):
                continue
            where = self._naming.machine_of(*node, device or None)
            updates.append(_status(where, "offline", msg, payload.timestamp, "Sparkplug NDEATH"))
        return Several(tuple(updates))

    def _birth(
        self,
        msg: Incoming,
        topic: spb.SpbTopic,
        key: BirthKey,
        where: tuple[str, str, str],
        payload: spb.SpbPayload,
    ) -> Classified:
        record = SparkplugBirth(
            group=topic.group,
            node=topic.node,
            device=key[2],
            bd_seq=_bd_seq(payload) if topic.kind == "NBIRTH" else None,
            metrics=tuple((m.name, m.alias, m.datatype) for m in payload.metrics if m.name),
            received_at=msg.received_at,
        )
        birth = self._remember(record)
        nameless = sum(1 for m in payload.metrics if not m.name)
        out: list[Part] = [record]
        if topic.device is not None or birth.has_data:
            out.append(_status(where, "online", msg, payload.timestamp, f"Sparkplug {topic.kind}"))
        out += self._readings(msg, topic, key, where, payload)
        if nameless:
            out.append(
                _dead(msg, "bad_field", f"{nameless} metrics of a {topic.kind} have no name")
            )
        return Several(tuple(out))

    def _readings(
        self,
        msg: Incoming,
        topic: spb.SpbTopic,
        key: BirthKey,
        where: tuple[str, str, str],
        payload: spb.SpbPayload,
    ) -> list[Part]:
        """The message's values as a live batch and a history batch, and a dead letter holding
        only the metrics that cannot be stored."""
        birth = self._births.get(key)
        live: list[CompactReading] = []
        history: list[CompactReading] = []
        sent: list[CompactReading] = []  # every value as sent, in order (for a receipt)
        refused: list[tuple[int, dict[str, object], wire.PayloadError]] = []
        fallback_ts = payload.timestamp if payload.timestamp is not None else msg.received_at
        for index, m in enumerate(payload.metrics):
            name = m.name
            if name is None and m.alias is not None and birth is not None:
                name = birth.aliases.get(m.alias, (None, None))[0]
            here = f"metrics[{index}]"
            if name is None:
                error = wire.PayloadError(
                    "unknown_alias",
                    f"{here}: alias {m.alias} was declared by no birth of this edge node;"
                    " a rebirth was requested",
                    f"{here}.alias",
                )
                refused.append((index, _described(m, None), error))
                self._rebirth((topic.group, topic.node), f"unknown alias {m.alias}")
                continue
            if _is_control(name) or m.is_null:
                # Control metrics steer the node; a null is a value the node does not have.
                continue
            if m.refused is not None:
                error = wire.PayloadError("unsupported_value", f"{here} ({name}): {m.refused}")
                refused.append((index, _described(m, name), error))
                continue
            ts = m.ts if m.ts is not None else fallback_ts
            assert m.value is not None  # decode: no value only when null or refused
            sent.append(CompactReading(spb.tag_name(name), ts, m.value, m.quality))
            try:
                r = wire.validate_reading(
                    spb.tag_name(name),
                    ts,
                    m.value,
                    m.quality,
                    msg.received_at,
                    where=here,
                )
            except wire.PayloadError as exc:
                refused.append((index, _described(m, name), exc))
                continue
            (history if m.is_historical else live).append(CompactReading(r.tag, r.ts, r.v, r.q))
        src, seq, digest = _receipt(payload.uuid, sent)
        receipt = digest != ""
        if not receipt:
            src, seq = f"{spb.NAMESPACE}/{topic.group}/{topic.node}", payload.seq or 0
        out: list[Part] = []
        aside = None
        if refused:
            aside = _refused(msg, src, refused, len(payload.metrics))
            if receipt:  # set aside is committed too: the agent must stop sending it
                aside = dataclasses.replace(aside, seq=seq, digest=digest)
        for readings, is_live in ((live, True), (history, False)):
            if readings:
                out.append(
                    TelemetryBatch(
                        *where, src, seq, readings, digest,
                        refused=aside, receipt=receipt, live=is_live,
                    )
                )  # fmt: skip
                aside = None  # committed with the first batch
        if aside is not None:
            out.append(aside)
        return out


def _bd_seq(payload: spb.SpbPayload) -> int | None:
    """The birth/death sequence number a node birth or death carries."""
    value = next((m.value for m in payload.metrics if m.name == BD_SEQ_METRIC), None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _receipt(uuid: str | None, sent: list[CompactReading]) -> tuple[str, int, str]:
    """(agent id, batch seq, digest) to receipt a Millstream agent's batch by, or ("", 0, "").

    The digest is taken of the batch as the agent stored it — the same readings in the same
    order, encoded by the same `wire.encode_telemetry` — rebuilt from what this message carried,
    never of anything the message claims: a forged `uuid` gets a receipt for its own content
    only, which deletes nothing of the agent it names (edge_agent/publish/sparkplug.py)."""
    found = _AGENT_BATCH.fullmatch(uuid or "")
    if found is None or not sent:
        return "", 0, ""
    src, seq = found.group(1), int(found.group(2))
    try:
        digest = wire.batch_digest(wire.encode_telemetry(src, seq, sent))
    except wire.PayloadError:
        return "", 0, ""  # not a batch the agent could have stored
    return src, seq, digest


def _described(m: spb.SpbMetric, name: str | None) -> dict[str, object]:
    """A refused metric as JSON for the dead-letter store (the payload itself is protobuf)."""
    out: dict[str, object] = {"name": name, "alias": m.alias, "ts": m.ts}
    if m.datatype is not None:
        out["datatype"] = m.datatype
    if m.value is not None:
        out["value"] = m.value
    return out


def _refused(
    msg: Incoming,
    src: str,
    refused: list[tuple[int, dict[str, object], wire.PayloadError]],
    total: int,
) -> DeadLetter:
    reasons = "; ".join(str(e) for _, _, e in refused[:_LISTED])
    more = f"; and {len(refused) - _LISTED} more" if len(refused) > _LISTED else ""
    body = {
        "sparkplug": msg.topic,
        "metrics": [dict(m, index=i, reason=e.reason) for i, m, e in refused],
    }
    return DeadLetter(
        topic=msg.topic,
        payload=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        reason=refused[0][2].reason,
        message=f"{len(refused)} of {total} metrics refused, the rest stored: {reasons}{more}"[
            :2000
        ],
        received_at=msg.received_at,
        src=src,
    )


def _dead(msg: Incoming, reason: wire.Reason, message: str) -> DeadLetter:
    # No seq: nothing is receipted to a Sparkplug node.
    return DeadLetter(msg.topic, msg.payload, reason, message[:2000], msg.received_at)


def _status(
    where: tuple[str, str, str], state: str, msg: Incoming, ts: int | None, detail: str
) -> MachineStatusUpdate:
    at = ts if ts is not None else msg.received_at
    return MachineStatusUpdate(
        *where,
        state=state,
        ts=at,
        detail=detail,
        payload=json.dumps({"v": 1, "state": state, "ts": at, "detail": detail}),
        received_at=msg.received_at,
    )
