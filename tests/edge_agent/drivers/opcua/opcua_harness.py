"""Test harness: real asyncua servers on free loopback ports, with a PLC's policies and users."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_agent.drivers.opcua import OpcuaEndpoint

NS_URI = "urn:millstream:test:cnc"
ALL_POLICIES = [
    ua.SecurityPolicyType.NoSecurity,
    ua.SecurityPolicyType.Basic256Sha256_Sign,
    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
]


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1 only)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_server_cert(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed server certificate + key, as a PLC would generate."""
    folder.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    uri = f"urn:millstream:test:{name}"
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        uri,
        {},
        [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


class _Users:
    """Accepts exactly one user name and password, like a PLC with one operator account."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is None:
            return None
        return User(role=UserRole.User) if self.users.get(username) == password else None


@dataclass
class CncServer:
    """A small CNC address space: Machine/Spindle/{Speed,Load}, Machine/Axis/X, Machine/State."""

    port: int
    cert: tuple[Path, Path]
    policies: Sequence[ua.SecurityPolicyType] = field(default_factory=lambda: list(ALL_POLICIES))
    users: dict[str, str] | None = None
    validator: Callable[..., Any] | None = None
    speed_node: str = "Spindle.Speed"
    server: Server | None = None
    ns: int = 0
    nodes: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        server = Server(user_manager=_Users(self.users) if self.users is not None else None)
        await server.init()
        server.set_endpoint(self.url)
        server.set_security_policy(list(self.policies))
        if self.users is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        await server.load_certificate(str(self.cert[0]))
        await server.load_private_key(str(self.cert[1]))
        if self.validator is not None:
            server.set_certificate_validator(self.validator)
        self.ns = await server.register_namespace(NS_URI)
        ns = self.ns
        machine = await server.nodes.objects.add_object(_id("Machine", ns), _qn("Machine", ns))
        spindle = await machine.add_object(_id("Spindle", ns), _qn("Spindle", ns))
        axis = await machine.add_object(_id("Axis", ns), _qn("Axis", ns))
        self.nodes = {
            "speed": await spindle.add_variable(_id(self.speed_node, ns), _qn("Speed", ns), 1200.0),
            "load": await spindle.add_variable(_id("Spindle.Load", ns), _qn("Load", ns), 35),
            "x": await axis.add_variable(_id("Axis.X", ns), _qn("X", ns), 10.5),
            "state": await machine.add_variable(_id("Machine.State", ns), _qn("State", ns), "RUN"),
            "door": await machine.add_variable(_id("Machine.Door", ns), _qn("DoorOpen", ns), False),
        }
        await server.start()
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def write(self, name: str, value: Any, status: int = ua.StatusCodes.Good) -> None:
        node = self.nodes[name]
        variant_type = await node.read_data_type_as_variant_type()
        await node.write_value(
            ua.DataValue(ua.Variant(value, variant_type), StatusCode=ua.StatusCode(status))
        )


def endpoint(server: CncServer, security: str = "None", **kw: Any) -> OpcuaEndpoint:
    return OpcuaEndpoint(url=server.url, security=security, **kw)


def _id(name: str, ns: int) -> ua.NodeId:
    return ua.NodeId(name, ns)


def _qn(name: str, ns: int) -> ua.QualifiedName:
    return ua.QualifiedName(name, ns)


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for a condition driven by real server traffic; the timeout only bounds a broken test."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 -- the condition is fed by another task's I/O
            await asyncio.sleep(0.02)


class FlakyLink:
    """A TCP proxy on loopback that can go silent without closing sockets (a pulled cable).

    While cut, bytes in both directions are swallowed and new connections hang; `restore()` resets
    the connections that lived through the outage, as a router reboot or TCP timeout would.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._up = asyncio.Event()
        self._up.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._reset_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    def cut(self) -> None:
        self._up.clear()

    def restore(self) -> None:
        self._reset_all()
        self._up.set()

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        await self._up.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst), name="flaky-link-pipe")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if self._up.is_set():
                    dst.write(data)
        except (ConnectionError, OSError):
            pass
        finally:
            dst.transport.abort()
