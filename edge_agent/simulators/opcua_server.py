"""OPC-UA shell: one asyncua server hosting every OPC-UA machine under /Objects/2:<machine>.

Variables live at browse paths like `/Objects/2:cnc-01/2:Spindle/2:Speed` with string node ids
`ns=2;s=cnc-01.Spindle.Speed`. A restart with `renumber` appends `~<generation>` to every node
id while the browse paths stay, as a PLC download does: clients must re-resolve browse paths.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import cast

from asyncua import Server, ua

from edge_agent.simulators.machines import Machine
from edge_agent.simulators.opcua_cert import APPLICATION_URI, ensure_server_certificate
from edge_agent.simulators.tags import OpcuaTag, Value

__all__ = ["NAMESPACE_URI", "OpcuaHost", "browse_path", "node_id"]

NAMESPACE_URI = "urn:millstream:simulator"
_VARIANT = {
    "Double": ua.VariantType.Double,
    "UInt32": ua.VariantType.UInt32,
    "String": ua.VariantType.String,
    "Boolean": ua.VariantType.Boolean,
}
_INITIAL: dict[str, Value] = {"Double": 0.0, "UInt32": 0, "String": "", "Boolean": False}
_WRITES_PER_YIELD = 50
_BAD = ua.StatusCode(ua.UInt32(ua.StatusCodes.BadSensorFailure))
_GOOD = ua.StatusCode(ua.UInt32(ua.StatusCodes.Good))


def _nid(idx: int, ident: str) -> ua.NodeId:
    return ua.NodeId(ua.String(ident), ua.Int16(idx))


def node_id(machine: str, tag: OpcuaTag, generation: int = 0) -> str:
    """The string node id of a tag (namespace index 2)."""
    suffix = f"~{generation}" if generation else ""
    return f"ns=2;s={machine}.{'.'.join(tag.path)}{suffix}"


def browse_path(machine: str, tag: OpcuaTag) -> str:
    """The browse path of a tag from the Objects folder."""
    return "/Objects/" + "/".join(f"2:{p}" for p in (machine, *tag.path))


class OpcuaHost:
    """The OPC-UA server of the simulated plant; `publish` writes values with source timestamps."""

    def __init__(
        self, machines: list[Machine], host: str, port: int, cert_dir: Path | None = None
    ) -> None:
        self.machines = machines
        self.host = host
        self.port = port
        # With a folder: also Sign and SignAndEncrypt (Basic256Sha256) with the certificate kept
        # there (opcua_cert.py); None: the unsecured endpoint only.
        self.cert_dir = cert_dir
        self.generation = 0
        self.restarts = 0
        self._server: Server | None = None
        self._nodes: dict[tuple[str, str], tuple[ua.NodeId, ua.VariantType]] = {}
        self._last: dict[tuple[str, str], tuple[Value, bool]] = {}
        self._served: dict[tuple[str, str], ua.DataValue] = {}
        self._serving = False
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        """Endpoint URL clients connect to."""
        return f"opc.tcp://{self.host}:{self.port}/millstream/sim"

    async def start(self) -> None:
        """Build the address space and start listening."""
        await self.build()
        await self.serve()

    async def build(self) -> None:
        """Build the address space, holding the values last served (not listening yet)."""
        # The asyncua server warns about its own defaults (no certificate for a None-only
        # endpoint); only its server side is quietened, an agent client in-process still logs.
        logging.getLogger("asyncua.server").setLevel(logging.ERROR)
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("Millstream simulated plant")
        if self.cert_dir is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            # Read again on every build: a restart after the files were deleted presents a new
            # certificate, as a replaced PLC does.
            cert_path, key_path = await asyncio.to_thread(
                ensure_server_certificate, self.cert_dir, self.host
            )
            await server.set_application_uri(APPLICATION_URI)
            await server.load_certificate(str(cert_path))
            await server.load_private_key(str(key_path))
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.NoSecurity,
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
        idx = await server.register_namespace(NAMESPACE_URI)
        self._nodes.clear()
        suffix = f"~{self.generation}" if self.generation else ""
        for machine in self.machines:
            root = await server.nodes.objects.add_object(
                _nid(idx, f"{machine.name}{suffix}"), ua.QualifiedName(machine.name, idx)
            )
            folders = {}
            for tag in machine.tags:
                assert isinstance(tag, OpcuaTag)
                parent = root
                for depth, part in enumerate(tag.path[:-1]):
                    key = tag.path[: depth + 1]
                    if key not in folders:
                        ident = f"{machine.name}.{'.'.join(key)}{suffix}"
                        folders[key] = await parent.add_object(
                            _nid(idx, ident), ua.QualifiedName(part, idx)
                        )
                    parent = folders[key]
                vtype = _VARIANT[tag.type]
                nid = _nid(idx, f"{machine.name}.{'.'.join(tag.path)}{suffix}")
                await parent.add_variable(
                    nid, ua.QualifiedName(tag.path[-1], idx), _INITIAL[tag.type], vtype
                )
                self._nodes[(machine.name, tag.name)] = (nid, vtype)
                # After a restart the server answers with the last values it served, never
                # with the placeholders, even before the next tick.
                if (served := self._served.get((machine.name, tag.name))) is not None:
                    await server.write_attribute_value(nid, served)
        self._server = server

    async def serve(self) -> None:
        """Start listening on the built address space."""
        if self._server is not None and not self._serving:
            await self._server.start()
            self._serving = True

    async def stop(self) -> None:
        """Stop the server; sessions are closed."""
        if self._server is not None:
            server, self._server = self._server, None
            if self._serving:
                self._serving = False
                await server.stop()

    def drop_connections(self) -> int:
        """Close every client's TCP connection now (sessions die with them); returns how many."""
        if self._server is None:
            return 0
        protocols = list(self._server.bserver.clients) if self._server.bserver else []
        for proto in protocols:
            if proto.transport is not None:
                proto.transport.close()
        return len(protocols)

    async def restart(self, downtime_s: float, renumber: bool = False) -> None:
        """Stop, stay down for `downtime_s`, start again (optionally with new node ids)."""
        async with self._lock:
            await self.stop()
            await asyncio.sleep(downtime_s)
            if renumber:
                self.generation += 1
            await self.start()
            self.restarts += 1

    async def publish(
        self,
        ts: dt.datetime,
        values: dict[str, dict[str, Value]],
        bad: frozenset[tuple[str, str]],
    ) -> list[tuple[str, str, Value, bool]]:
        """Write every changed value with source timestamp `ts`; returns what changed."""
        server = self._server
        if server is None or self._lock.locked():
            return []
        changed: list[tuple[str, str, Value, bool]] = []
        stamp = cast(ua.DateTime, ts)
        for (machine, tag), (nid, vtype) in self._nodes.items():
            value = values[machine][tag]
            is_bad = (machine, tag) in bad
            if self._last.get((machine, tag)) == (value, is_bad):
                continue
            self._last[(machine, tag)] = (value, is_bad)
            dv = ua.DataValue(
                ua.Variant(value, vtype),
                StatusCode=_BAD if is_bad else _GOOD,
                SourceTimestamp=stamp,
                ServerTimestamp=stamp,
            )
            await server.write_attribute_value(nid, dv)
            self._served[(machine, tag)] = dv
            changed.append((machine, tag, value, is_bad))
            if len(changed) % _WRITES_PER_YIELD == 0:
                # Writes feed subscriptions and are the costly part of a tick: let Modbus
                # requests in between batches instead of holding them for the whole tick.
                await asyncio.sleep(0)
        return changed
