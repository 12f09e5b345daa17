"""One OPC-UA session: secure channel, pinned server certificate, nodes, subscriptions, polls.

A session is disposable. Anything wrong with it (socket closed, server restarted, subscription
silent, status change) ends `run_until_lost()`, and the driver builds a fresh one, so browse paths
are resolved again and subscriptions are created from scratch against the new server state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from asyncua import Client, ua
from asyncua.common.utils import Buffer
from asyncua.crypto import security_policies
from asyncua.ua.ua_binary import struct_from_binary

from edge_agent.cancel import recheck_cancel
from edge_agent.drivers.base import Sample
from edge_agent.drivers.opcua.alarms import event_filter
from edge_agent.drivers.opcua.browse_path import parse_browse_path
from edge_agent.drivers.opcua.certs import ensure_app_certificate, first_certificate, thumbprints
from edge_agent.drivers.opcua.errors import ServerCertificateChanged, map_error
from edge_agent.drivers.opcua.notifications import DataChanges, decode_publish
from edge_agent.drivers.opcua.points import OpcuaEndpoint, OpcuaEvents, OpcuaPoint
from edge_agent.drivers.opcua.quality import device_silence
from edge_agent.drivers.opcua.samples import bad_sample, sample_from_datavalue
from edge_agent.drivers.opcua.security import SecuritySpec, parse_security
from edge_agent.drivers.opcua.trust import PinDecision, PinStore, decide
from edge_agent.drivers.opcua.watchdog import StaleWatchdog
from edge_agent.errors import DeviceUnavailable, MillstreamAgentError, WriteFailed

__all__ = ["OpcuaSession", "SessionOptions", "wall_clock_ms"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Requests per service call: large enough for throughput, small enough for servers' message limits.
_BATCH = 1000


def wall_clock_ms() -> int:
    """Current wall time in epoch ms (fallback timestamp when a server sends none)."""
    return time.time_ns() // 1_000_000


# Publish requests kept in flight (capped by the number of subscriptions): 6 delivered 28,600
# values/s from 5,000 items where 4 stopped near 20,000 (bench/opcua_subscribe.py).
PUBLISH_REQUESTS = 6
# Events are few and wanted fast (raise → hub within 2 s): a short publishing interval costs
# nothing while nothing happens, keep-alives aside.
_EVENT_INTERVAL_MS = 200.0
# Events queued on the server per notifier between publishes: a burst of alarms (a line trip)
# must not lose any, unlike data changes where the newest value is all that matters.
_EVENT_QUEUE = 1000
_CONDITION_REFRESH = ua.NodeId(ua.Int32(ua.ObjectIds.ConditionType_ConditionRefresh))


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Tunables of a session; defaults suit a PLC on the plant network."""

    state_dir: Path
    timeout_s: float = 5.0
    # Keep-alive period floor: a keep-alive every 100 ms for a 100 ms subscription is waste.
    keepalive_s: float = 1.0
    stale_min_s: float = 1.0
    items_per_subscription: int = 1000
    publish_requests: int = PUBLISH_REQUESTS
    # The server drops our session this long after we vanish, freeing its session slots quickly.
    session_timeout_ms: int = 60_000
    clock_ms: Callable[[], int] = wall_clock_ms


class _SessionLost(Exception):  # noqa: N818 -- internal signal, never leaves this module
    """Raised inside the session's task group to end it."""


_OnPublish = Callable[["_Subscription", ua.PublishResult], None]


@dataclass(slots=True)
class _Subscription:
    interval_ms: float
    watchdog: StaleWatchdog
    on_publish: _OnPublish
    handles: dict[int, str] = field(default_factory=dict)
    subscription_id: int = 0


class OpcuaSession:
    """A session with one device: `open()` it, `run_until_lost()`, then `aclose()`."""

    def __init__(
        self,
        device: str,
        endpoint: OpcuaEndpoint,
        points: Sequence[OpcuaPoint],
        options: SessionOptions,
        emit: Callable[[list[Sample]], None] = lambda _samples: None,
        *,
        report: Callable[[str | None], None] = lambda _why: None,
        events: OpcuaEvents | None = None,
        on_events: Callable[[list[list[Any]]], None] = lambda _events: None,
        on_refresh_failed: Callable[[], None] = lambda: None,
    ) -> None:
        self.device = device
        # Event notifiers to subscribe to (None: none); each notification's field values, in
        # the select clause's order, go to `on_events` (edge_agent/drivers/opcua/alarms.py).
        self.events = events
        self._on_events = on_events
        self._on_refresh_failed = on_refresh_failed
        self.endpoint = endpoint
        self.points = tuple(points)
        self.options = options
        self._emit = emit
        # None: the device behind the server answers; a code name: the server says it does not.
        self._report = report
        self._client: Client | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self.nodes: dict[str, ua.NodeId] = {}
        self.unresolved: dict[str, str] = {}
        self.deadband_refused: list[str] = []
        self._subscriptions: list[_Subscription] = []
        self._by_id: dict[int, _Subscription] = {}
        # subscription id → client handle → tag, of the data subscriptions (`decode_publish`).
        self._data_handles: dict[int, dict[int, str]] = {}
        # True when our publish loops (`_publish_loop`) replace asyncua's (`_claim_publishing`).
        self._own_publishing = False
        self._publishers: list[asyncio.Task[None]] = []
        # Publish responses decoded by `decode_publish` and by asyncua (tests, benchmarks).
        self.fast_responses = 0
        self.asyncua_responses = 0
        self.events_refused: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> OpcuaSession:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    @property
    def client(self) -> Client:
        """The connected asyncua client (browse uses it directly)."""
        if self._client is None:
            raise DeviceUnavailable("not connected", device=self.device)
        return self._client

    async def open(self, *, subscribe: bool = True) -> None:
        """Connect, check the server certificate pin, log in, resolve nodes, subscribe."""
        spec = parse_security(self.endpoint.security)
        # asyncua probes the server state every `watchdog_intervall` with that as its timeout;
        # a 1 s default declares a busy PLC dead, so probe at the request timeout instead.
        client = Client(
            self.endpoint.url,
            timeout=self.options.timeout_s,
            watchdog_intervall=self.options.timeout_s,
        )
        client.name = client.description = f"Millstream edge agent ({self.device})"
        client.product_uri = "urn:millstream:edge-agent"
        client.session_timeout = self.options.session_timeout_ms
        client.connection_lost_callback = self._on_connection_lost
        self._client = client
        try:
            async with asyncio.timeout(self.options.timeout_s * 4):
                await self._configure_security(client, spec)
                if self.endpoint.username:
                    client.set_user(self.endpoint.username)
                    client.set_password(self.endpoint.password or "")
                await client.connect()
            await self.resolve()
            if subscribe:
                self._own_publishing = self._claim_publishing()
                await self._create_subscriptions()
                await self.subscribe_events()
                self._start_publishing()
            self._log_problems()
        except BaseException as exc:
            await self.aclose()
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | MillstreamAgentError):
                raise
            raise map_error(exc, self.device, username=self.endpoint.username) from exc

    async def aclose(self) -> None:
        """Close the session; bounded in time because the server may already be gone."""
        client, self._client = self._client, None
        publishers, self._publishers = self._publishers, []
        for task in publishers:
            task.cancel()
        if publishers:
            await asyncio.wait(publishers)
        if client is None:
            return
        # A dead server must not keep us here: disconnect is best effort within the timeout.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.options.timeout_s):
                await client.disconnect()
        client.disconnect_socket()

    async def run_until_lost(self) -> str:
        """Run the watchdog and poll loops until the session is lost; returns why."""
        reasons: list[str] = []
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch(), name=f"opcua-watchdog-{self.device}")
                for interval_ms, points in _poll_groups(self.points).items():
                    group.create_task(
                        self._poll_loop(interval_ms, points),
                        name=f"opcua-poll-{self.device}-{interval_ms}ms",
                    )
                for n in range(self._extra_asyncua_loops()):
                    group.create_task(
                        self._asyncua_loop(), name=f"opcua-publish-{self.device}-{n + 2}"
                    )
                # Waited for here, not in a child: on Python 3.11 a TaskGroup whose body has
                # finished leaves its own cancel counted when a child fails, and then
                # `recheck_cancel()` below could not tell it from a close().
                await self._wait_lost()
        except* _SessionLost as lost:
            reasons.extend(str(exc) for exc in lost.exceptions)
        # A close() that met a lost connection must still end the supervisor (edge_agent/cancel.py).
        recheck_cancel()
        return reasons[0] if reasons else "session ended"

    # -- security ----------------------------------------------------------------------------

    async def _configure_security(self, client: Client, spec: SecuritySpec) -> None:
        # RSA key generation on first use takes a while: keep it off the event loop.
        cert = await asyncio.to_thread(ensure_app_certificate, self.options.state_dir)
        client.application_uri = cert.application_uri
        if not spec.secure:
            return
        server_der = await self._server_certificate(client, spec)
        self._check_pin(server_der)
        policy = getattr(security_policies, f"SecurityPolicy{spec.policy}")
        await client.set_security(
            policy,
            str(cert.cert_path),
            str(cert.key_path),
            server_certificate=server_der,
            mode=getattr(ua.MessageSecurityMode, spec.mode),
        )

    async def _server_certificate(self, client: Client, spec: SecuritySpec) -> bytes:
        endpoints = await client.connect_and_get_server_endpoints()
        policy_uri = getattr(security_policies, f"SecurityPolicy{spec.policy}").URI
        mode = getattr(ua.MessageSecurityMode, spec.mode)
        for endpoint in endpoints:
            if endpoint.SecurityPolicyUri == policy_uri and endpoint.SecurityMode == mode:
                return first_certificate(endpoint.ServerCertificate)
        offered = sorted({_endpoint_label(e) for e in endpoints})
        raise DeviceUnavailable(
            f"server offers no {spec} endpoint; it offers {', '.join(offered)}: "
            "change `security` in the device entry or enable the policy on the server",
            device=self.device,
        )

    def _check_pin(self, server_der: bytes) -> None:
        store = PinStore(self.options.state_dir)
        presented, _ = thumbprints(server_der)
        pinned = store.pinned(self.device)
        decision = decide(pinned, presented)
        if decision is PinDecision.FIRST_USE:
            store.pin(self.device, server_der, self.endpoint.url)
            _log.warning(
                "%s: trusting server certificate on first use, SHA-256 %s", self.device, presented
            )
        elif decision is PinDecision.CHANGED:
            raise ServerCertificateChanged(
                f"server certificate changed: pinned SHA-256 {pinned}, server now presents "
                f"{presented}. If the PLC was replaced or its certificate renewed on purpose, "
                f"run `edge-agent opcua trust --device {self.device} CONFIG` to accept it",
                device=self.device,
            )

    # -- nodes -------------------------------------------------------------------------------

    async def resolve(self) -> None:
        """Map every point to a node id; the server translates browse paths (every session)."""
        self.nodes.clear()
        self.unresolved.clear()
        by_path: list[OpcuaPoint] = []
        for point in self.points:
            if point.node is not None:
                self.nodes[point.tag] = ua.NodeId.from_string(point.node)
            else:
                by_path.append(point)
        for chunk in _chunks(by_path, _BATCH):
            requests = [_browse_request(str(p.browse_path)) for p in chunk]
            results = await self._call(
                self.client.uaclient.translate_browsepaths_to_nodeids(requests)
            )
            for point, result in zip(chunk, results, strict=True):
                if result.StatusCode.is_good() and result.Targets:
                    self.nodes[point.tag] = result.Targets[0].TargetId
                else:
                    self.unresolved[point.tag] = f"browse path not found ({result.StatusCode.name})"

    def _log_problems(self) -> None:
        # One line per session, not per tag: 5,000 broken tags must not flood the log.
        if self.unresolved:
            shown = ", ".join(f"{t} ({r})" for t, r in list(self.unresolved.items())[:5])
            more = len(self.unresolved) - 5
            _log.warning(
                "%s: %d tags unavailable: %s%s",
                self.device,
                len(self.unresolved),
                shown,
                f" and {more} more" if more > 0 else "",
            )
        if self.deadband_refused:
            _log.warning(
                "%s: server refused the deadband of %d tags (e.g. %s); subscribed without it",
                self.device,
                len(self.deadband_refused),
                self.deadband_refused[0],
            )

    # -- subscriptions -----------------------------------------------------------------------

    async def _create_subscriptions(self) -> None:
        groups: dict[int, list[OpcuaPoint]] = {}
        for point in self.points:
            if point.mode == "subscribe" and point.tag in self.nodes:
                groups.setdefault(point.sampling_ms, []).append(point)
        for interval_ms, points in sorted(groups.items()):
            # Servers cap notifications per publish response (node-opcua: 1,000) and send one
            # response per subscription per interval, so large groups are split.
            for chunk in _chunks(points, self.options.items_per_subscription):
                await self._subscribe_group(float(max(interval_ms, 10)), list(chunk))

    async def _new_subscription(self, interval_ms: float, on_publish: _OnPublish) -> _Subscription:
        """A subscription publishing every `interval_ms`, its keep-alive watched (`_watch`)."""
        keepalive = max(1, math.ceil(self.options.keepalive_s * 1000 / interval_ms))
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=interval_ms,
            RequestedMaxKeepAliveCount=keepalive,
            # Spec: lifetime count ≥ 3 × keep-alive count (OPC 10000-4 §5.13.2).
            RequestedLifetimeCount=keepalive * 10,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        watchdog = StaleWatchdog(interval_ms / 1000, keepalive, min_s=self.options.stale_min_s)
        sub = _Subscription(interval_ms, watchdog, on_publish)
        watchdog.feed(time.monotonic())
        revised = await self._call(
            self.client.uaclient.create_subscription(params, lambda r: on_publish(sub, r))
        )
        sub.subscription_id = revised.SubscriptionId
        watchdog.publishing_interval_s = revised.RevisedPublishingInterval / 1000
        watchdog.keepalive_count = revised.RevisedMaxKeepAliveCount
        self._subscriptions.append(sub)
        self._by_id[sub.subscription_id] = sub
        return sub

    async def _subscribe_group(self, interval_ms: float, points: list[OpcuaPoint]) -> None:
        sub = await self._new_subscription(interval_ms, self._on_publish)
        self._data_handles[sub.subscription_id] = sub.handles
        handle = len(self._subscriptions) * 1_000_000
        for chunk in _chunks(points, _BATCH):
            requests = []
            for point in chunk:
                handle += 1
                sub.handles[handle] = point.tag
                requests.append(_monitored_item(self.nodes[point.tag], point, handle))
            await self._create_items(sub, requests)

    async def _create_items(
        self, sub: _Subscription, requests: list[ua.MonitoredItemCreateRequest]
    ) -> None:
        params = ua.CreateMonitoredItemsParameters(
            SubscriptionId=sub.subscription_id,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            ItemsToCreate=requests,
        )
        results = await self._call(self.client.uaclient.create_monitored_items(params))
        retry = []
        for request, result in zip(requests, results, strict=True):
            if result.StatusCode.is_good():
                continue
            tag = sub.handles[request.RequestedParameters.ClientHandle]
            if request.RequestedParameters.Filter is not None and _is_filter_problem(
                result.StatusCode
            ):
                # Percent deadbands need an EURange the node may lack: keep values, drop the filter.
                self.deadband_refused.append(tag)
                request.RequestedParameters.Filter = None
                retry.append(request)
            else:
                del sub.handles[request.RequestedParameters.ClientHandle]
                self.unresolved[tag] = f"cannot monitor ({result.StatusCode.name})"
        if retry:
            await self._create_items(sub, retry)

    def _on_publish(self, sub: _Subscription, result: ua.PublishResult) -> None:
        # A response as asyncua decoded it: without our publish loops, or one `decode_publish`
        # leaves to asyncua (a status change, diagnostics).
        sub.watchdog.feed(time.monotonic())
        data = result.NotificationMessage.NotificationData
        if not data:
            return
        now_ms = self.options.clock_ms()
        samples: list[Sample] = []
        statuses: list[int] = []
        handles = sub.handles
        for notification in data:
            if isinstance(notification, ua.DataChangeNotification):
                for item in notification.MonitoredItems:
                    tag = handles.get(item.ClientHandle)
                    if tag is not None:
                        samples.append(sample_from_datavalue(tag, item.Value, now_ms))
                        statuses.append(_status(item.Value))
            elif isinstance(notification, ua.StatusChangeNotification) and (
                not notification.Status.is_good()
            ):
                self._mark_lost(f"subscription status {notification.Status.name}")
        if samples:
            self._emit(samples)
            self._judge(statuses)

    def _judge(self, statuses: list[int]) -> None:
        answering, silent = device_silence(statuses)
        if answering:
            self._report(None)
        elif silent is not None:
            self._report(f"the server reports {silent} for every tag")

    # -- events ------------------------------------------------------------------------------

    async def subscribe_events(self) -> None:
        """One subscription with a monitored item per notifier of `events`, then
        ConditionRefresh (nothing without `events`). `open()` calls it; `probe` too."""
        spec = self.events
        if spec is None:
            return
        sub = await self._new_subscription(_EVENT_INTERVAL_MS, self._on_event_publish)
        flt = event_filter(spec.fields)
        requests = []
        for n, notifier in enumerate(spec.notifiers, start=1):
            handle = 900_000_000 + n
            sub.handles[handle] = notifier
            requests.append(
                ua.MonitoredItemCreateRequest(
                    ItemToMonitor=ua.ReadValueId(
                        NodeId=ua.NodeId.from_string(notifier),
                        AttributeId=ua.AttributeIds.EventNotifier,
                    ),
                    MonitoringMode=ua.MonitoringMode.Reporting,
                    RequestedParameters=ua.MonitoringParameters(
                        ClientHandle=handle,
                        SamplingInterval=0,
                        Filter=flt,
                        QueueSize=_EVENT_QUEUE,
                        DiscardOldest=True,
                    ),
                )
            )
        items = ua.CreateMonitoredItemsParameters(
            SubscriptionId=sub.subscription_id,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            ItemsToCreate=requests,
        )
        results = await self._call(self.client.uaclient.create_monitored_items(items))
        refused = [
            f"{request.ItemToMonitor.NodeId.to_string()} ({result.StatusCode.name})"
            for request, result in zip(requests, results, strict=True)
            if not result.StatusCode.is_good()
        ]
        if refused:
            self.events_refused = refused
            _log.warning(
                "%s: the server refused to report events of %s: check `events.notifiers` in the "
                "profile (an object whose EventNotifier attribute says it reports events)",
                self.device,
                ", ".join(refused),
            )
        if spec.refresh and len(refused) < len(requests):
            await self._condition_refresh(sub.subscription_id)

    async def _condition_refresh(self, subscription_id: int) -> None:
        """Ask the server to re-send every condition it retains (OPC 10000-9 §5.5.7)."""
        request = ua.CallMethodRequest(
            ObjectId=ua.NodeId(ua.Int32(ua.ObjectIds.ConditionType)),
            MethodId=_CONDITION_REFRESH,
            InputArguments=[ua.Variant(subscription_id, ua.VariantType.UInt32)],
        )
        (result,) = await self._call(self.client.uaclient.call([request]))
        if not result.StatusCode.is_good():
            self._on_refresh_failed()
            _log.warning(
                "%s: the server does not refresh its conditions (%s): alarms active before "
                "this connection are reported only when they change",
                self.device,
                result.StatusCode.name,
            )

    def _on_event_publish(self, sub: _Subscription, result: ua.PublishResult) -> None:
        sub.watchdog.feed(time.monotonic())
        found: list[list[Any]] = []
        for notification in result.NotificationMessage.NotificationData or ():
            if isinstance(notification, ua.EventNotificationList):
                for event in notification.Events:
                    found.append([_plain(v) for v in event.EventFields])
            elif isinstance(notification, ua.StatusChangeNotification) and (
                not notification.Status.is_good()
            ):
                self._mark_lost(f"subscription status {notification.Status.name}")
        if found:
            self._on_events(found)

    # -- writes ------------------------------------------------------------------------------

    async def data_type(self, point: OpcuaPoint) -> ua.NodeId:
        """The variable's DataType attribute (what a written Variant must be)."""
        node = self._node_of(point)
        params = ua.ReadParameters(
            NodesToRead=[ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.DataType)]
        )
        (value,) = await self._call(self.client.uaclient.read(params))
        data_type = value.Value.Value if value.Value is not None else None
        if not isinstance(data_type, ua.NodeId):
            status = value.StatusCode.name if value.StatusCode is not None else "no value"
            raise WriteFailed(f"{point.tag}: cannot read its data type ({status})")
        return data_type

    async def write(self, point: OpcuaPoint, variant: ua.Variant) -> None:
        """Write one value; `WriteFailed` naming the server's refusal (BadNotWritable, …)."""
        params = ua.WriteParameters(
            NodesToWrite=[
                ua.WriteValue(
                    NodeId=self._node_of(point),
                    AttributeId=ua.AttributeIds.Value,
                    Value=ua.DataValue(variant),
                )
            ]
        )
        (status,) = await self._call(self.client.uaclient.write(params))
        if not status.is_good():
            raise WriteFailed(f"{point.tag}: the server refused the write ({status.name})")

    async def input_types(self, method: ua.NodeId) -> list[ua.NodeId]:
        """The DataType of each input argument of a method (its InputArguments property)."""
        element = ua.RelativePathElement(
            ReferenceTypeId=ua.NodeId(ua.Int32(ua.ObjectIds.HasProperty)),
            TargetName=ua.QualifiedName("InputArguments", 0),
        )
        element.IsInverse = False  # type: ignore[assignment] # as in _browse_request
        path = ua.BrowsePath(StartingNode=method, RelativePath=ua.RelativePath(Elements=[element]))
        (found,) = await self._call(self.client.uaclient.translate_browsepaths_to_nodeids([path]))
        if not found.StatusCode.is_good() or not found.Targets:
            return []  # a method without inputs has no such property
        params = ua.ReadParameters(
            NodesToRead=[
                ua.ReadValueId(NodeId=found.Targets[0].TargetId, AttributeId=ua.AttributeIds.Value)
            ]
        )
        (value,) = await self._call(self.client.uaclient.read(params))
        arguments = value.Value.Value if value.Value is not None else None
        return [a.DataType for a in arguments or []]

    async def call(
        self, name: str, obj: ua.NodeId, method: ua.NodeId, args: list[ua.Variant]
    ) -> list[object]:
        """Call a method; its output values, or `WriteFailed` naming the server's refusal."""
        request = ua.CallMethodRequest(ObjectId=obj, MethodId=method, InputArguments=args)
        (result,) = await self._call(self.client.uaclient.call([request]))
        if not result.StatusCode.is_good():
            bad = [s.name for s in result.InputArgumentResults or [] if not s.is_good()]
            why = f"; arguments: {', '.join(bad)}" if bad else ""
            raise WriteFailed(
                f"{name}: the server refused the call ({result.StatusCode.name}{why})"
            )
        return [v.Value if isinstance(v, ua.Variant) else v for v in result.OutputArguments or []]

    def _node_of(self, point: OpcuaPoint) -> ua.NodeId:
        node = self.nodes.get(point.tag)
        if node is None:
            why = self.unresolved.get(point.tag, "not resolved")
            raise WriteFailed(f"{point.tag}: its node is unavailable ({why})")
        return node

    # -- polling -----------------------------------------------------------------------------

    async def read(self, points: Iterable[OpcuaPoint] | None = None) -> list[Sample]:
        """Read points once (all by default); unresolved points come back `bad`."""
        samples, _statuses = await self._read(points)
        return samples

    async def _read(
        self, points: Iterable[OpcuaPoint] | None = None
    ) -> tuple[list[Sample], list[int]]:
        """The samples, and the status codes of the items the server answered."""
        wanted = list(self.points if points is None else points)
        now_ms = self.options.clock_ms()
        samples = {p.tag: bad_sample(p.tag, now_ms) for p in wanted}
        statuses: list[int] = []
        readable = [p for p in wanted if p.tag in self.nodes]
        for chunk in _chunks(readable, _BATCH):
            params = ua.ReadParameters(
                MaxAge=0,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                NodesToRead=[
                    ua.ReadValueId(NodeId=self.nodes[p.tag], AttributeId=ua.AttributeIds.Value)
                    for p in chunk
                ],
            )
            values = await self._call(self.client.uaclient.read(params))
            for point, value in zip(chunk, values, strict=True):
                samples[point.tag] = sample_from_datavalue(point.tag, value, now_ms)
                statuses.append(_status(value))
        return [samples[p.tag] for p in wanted], statuses

    async def _poll_loop(self, interval_ms: int, points: list[OpcuaPoint]) -> None:
        period = max(interval_ms, 10) / 1000
        next_at = time.monotonic()
        while True:
            try:
                samples, statuses = await self._read(points)
            except DeviceUnavailable as exc:
                raise _SessionLost(f"poll failed: {exc}") from exc
            self._emit(samples)
            self._judge(statuses)
            # Fixed-rate schedule; after a stall skip the missed ticks instead of bursting.
            next_at = max(next_at + period, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())

    def _claim_publishing(self) -> bool:
        """Keep asyncua from starting its publish loop, so that `_publish_loop` runs instead:
        asyncua decodes every notification into dataclasses, three quarters of the agent's CPU
        at 30,000 values/s. False (asyncua's loop runs) when this asyncua version lacks what
        our loop uses."""
        session = getattr(self.client.uaclient, "session", None)
        if (
            session is None
            or getattr(session, "_publish_task", 1) is not None
            or not hasattr(session, "_send_request")
            or not hasattr(session, "_subscription_callbacks")
        ):
            return False
        # asyncua starts its loop unless a task is there (`ensure_publish_loop`) and cancels
        # that task when the session closes: a future that never completes stands in for it.
        session._publish_task = asyncio.get_running_loop().create_future()
        return True

    def _publish_loops(self) -> int:
        # One Publish request in flight means a round trip per response, while the server holds
        # the notifications of other subscriptions. More requests in flight (OPC 10000-4
        # §5.13.5 recommends it) keep data flowing.
        return min(len(self._subscriptions), self.options.publish_requests)

    def _start_publishing(self) -> None:
        """Our publish loops, for as long as the session is open (`aclose` ends them)."""
        if not self._own_publishing:
            return
        for n in range(self._publish_loops()):
            self._publishers.append(
                asyncio.create_task(self._publishing(), name=f"opcua-publish-{self.device}-{n}")
            )

    async def _publishing(self) -> None:
        try:
            await self._publish_loop()
        except _SessionLost as lost:
            self._mark_lost(str(lost))

    def _extra_asyncua_loops(self) -> int:
        # Without our loops, asyncua runs one of its own; run more of its loop body.
        if self._own_publishing or self._client is None:
            return 0
        if not hasattr(self._client.uaclient.session, "_publish_loop"):
            return 0
        return max(0, self._publish_loops() - 1)

    async def _asyncua_loop(self) -> None:
        assert self._client is not None
        # asyncua's own loop body, run again: it sends Publish, dispatches to our callbacks and
        # acknowledges; it returns when the session closes.
        await self._client.uaclient.session._publish_loop()

    async def _publish_loop(self) -> None:
        """Send Publish, hand what comes back to the subscription it is for, acknowledge it
        with the next Publish (OPC 10000-4 §5.13.5); until the session is lost."""
        session = self.client.uaclient.session
        acks: list[ua.SubscriptionAcknowledgement] = []
        while True:
            request = ua.PublishRequest()
            request.Parameters.SubscriptionAcknowledgements = acks
            acks = []
            try:
                # No timeout: the server answers when it has something, or a keep-alive.
                data = await session._send_request(request, timeout=0)
            except ua.UaStatusCodeError as exc:
                code = exc.code
                if code == ua.StatusCodes.BadTimeout:
                    continue
                if code == ua.StatusCodes.BadNoSubscription:
                    return  # nothing to publish: the subscriptions are gone
                if code == ua.StatusCodes.BadTooManyPublishRequests:
                    return  # the server keeps fewer in flight than we offered: one loop less
                raise _SessionLost(f"publish failed: {exc}") from exc
            except Exception as exc:  # a closed connection, or anything else: start afresh
                raise _SessionLost(f"publish failed: {exc!r}") from exc
            try:
                ack = self._dispatch(bytes(data))
            except Exception:  # as asyncua's loop: one bad response must not end the session
                _log.exception("%s: a publish response could not be handled", self.device)
                continue
            if ack is not None:
                acks.append(ack)

    def _dispatch(self, raw: bytes) -> ua.SubscriptionAcknowledgement | None:
        """Hand one PublishResponse to its subscription; the acknowledgement it needs."""
        changes = decode_publish(raw, self._data_handles, self.options.clock_ms())
        if changes is not None:
            self.fast_responses += 1
            sub = self._by_id[changes.subscription_id]
            self._on_data_changes(sub, changes)
            sid, seq, notified = changes.subscription_id, changes.sequence_number, changes.notified
        else:
            self.asyncua_responses += 1
            response = struct_from_binary(ua.PublishResponse, Buffer(raw))
            result = response.Parameters
            sid = result.SubscriptionId
            found = self._by_id.get(sid)
            if found is not None:
                found.on_publish(found, result)
            elif sid:
                _log.debug("%s: data for unknown subscription %s", self.device, sid)
            seq = result.NotificationMessage.SequenceNumber
            notified = bool(result.NotificationMessage.NotificationData)
        if not notified or not sid:
            return None
        return ua.SubscriptionAcknowledgement(SubscriptionId=sid, SequenceNumber=seq)

    def _on_data_changes(self, sub: _Subscription, changes: DataChanges) -> None:
        sub.watchdog.feed(time.monotonic())
        samples = changes.samples
        if not samples:
            return
        self._emit(samples)
        if len(changes.bad_statuses) < len(samples):
            self._report(None)
        else:
            self._judge(changes.bad_statuses)

    # -- loss detection ----------------------------------------------------------------------

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._mark_lost(f"connection lost: {exc!r}")

    def _mark_lost(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    async def _wait_lost(self) -> None:
        await self._lost.wait()
        raise _SessionLost(self._lost_reason)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for sub in self._subscriptions:
                if sub.watchdog.is_stale(now):
                    raise _SessionLost(
                        f"no data and no keep-alive for {sub.watchdog.limit_s:.1f} s "
                        f"(subscription {sub.subscription_id})"
                    )

    async def _call(self, awaitable: Awaitable[_T]) -> _T:
        """Await one service call with the session timeout, mapping failures to our errors."""
        try:
            async with asyncio.timeout(self.options.timeout_s):
                return await awaitable
        except (TimeoutError, OSError, ConnectionError, ua.UaError) as exc:
            raise map_error(exc, self.device, username=self.endpoint.username) from exc


def _poll_groups(points: Iterable[OpcuaPoint]) -> dict[int, list[OpcuaPoint]]:
    groups: dict[int, list[OpcuaPoint]] = {}
    for point in points:
        if point.mode == "poll":
            groups.setdefault(point.sampling_ms, []).append(point)
    return groups


def _chunks(items: Sequence[_T], size: int) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _endpoint_label(endpoint: ua.EndpointDescription) -> str:
    policy = endpoint.SecurityPolicyUri.rsplit("#", 1)[-1]
    mode = ua.MessageSecurityMode(endpoint.SecurityMode).name
    return "None" if policy == "None" else f"{mode}/{policy}"


def _browse_request(path: str) -> ua.BrowsePath:
    elements = []
    for ns, name in parse_browse_path(path):
        element = ua.RelativePathElement(
            ReferenceTypeId=ua.NodeId(ua.Int32(ua.ObjectIds.HierarchicalReferences)),
            TargetName=ua.QualifiedName(name, ns),
        )
        # The dataclass defaults IsInverse to True; browse paths walk forward, down the tree.
        element.IsInverse = False  # type: ignore[assignment]
        elements.append(element)
    return ua.BrowsePath(
        StartingNode=ua.NodeId(ua.Int32(ua.ObjectIds.RootFolder)),
        RelativePath=ua.RelativePath(Elements=elements),
    )


def _monitored_item(
    node: ua.NodeId, point: OpcuaPoint, handle: int
) -> ua.MonitoredItemCreateRequest:
    mfilter = None
    if point.deadband is not None:
        mfilter = ua.DataChangeFilter(
            Trigger=ua.DataChangeTrigger.StatusValue,
            DeadbandType=ua.DeadbandType.Absolute
            if point.deadband.kind == "absolute"
            else ua.DeadbandType.Percent,
            DeadbandValue=point.deadband.value,
        )
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=float(point.sampling_ms),
            Filter=mfilter,
            QueueSize=point.queue_size,
            DiscardOldest=True,
        ),
    )


def _is_filter_problem(status: ua.StatusCode) -> bool:
    return status.value in (
        ua.StatusCodes.BadMonitoredItemFilterUnsupported,
        ua.StatusCodes.BadMonitoredItemFilterInvalid,
        ua.StatusCodes.BadFilterNotAllowed,
        ua.StatusCodes.BadDeadbandFilterInvalid,
    )


def _status(data_value: Any) -> int:
    status = data_value.StatusCode
    return 0 if status is None else int(status.value)


def _plain(variant: Any) -> Any:
    """An event field's value (asyncua hands Variants; a field the server lacks is None)."""
    return variant.Value if isinstance(variant, ua.Variant) else variant
