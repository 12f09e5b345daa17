"""The agent config file: who this agent is, where it publishes, how it buffers, what it reads.

Keys are extended, never renamed: other tools and deployed configs depend on them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from edge_agent.config.issues import Issue, raise_issues, reraise_with
from edge_agent.config.modbus_profile import duplicate_issues
from edge_agent.config.names import RESERVED_SITES, Name
from edge_agent.config.units import Duration, parse_size
from edge_agent.drivers.opcua.security import parse_security
from millstream_common.tracing import TracingConfig

__all__ = [
    "AgentConfig",
    "AgentSection",
    "BufferSection",
    "ByteSize",
    "Device",
    "Duration",
    "ModbusConnection",
    "MqttSection",
    "OpcUaConnection",
]

ByteSize = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]

_SERIAL_ONLY = ("baudrate", "parity", "stopbits", "bytesize")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentSection(_Model):
    """Identity: the agent id and where its machines sit in the site/line/machine tree."""

    id: Name
    site: Name
    line: Name

    @field_validator("site")
    @classmethod
    def _not_reserved(cls, site: str) -> str:
        if site in RESERVED_SITES:
            raise_issues(
                "AgentSection",
                [
                    Issue(
                        (),
                        f"site {site!r} is reserved",
                        "`agents` and `receipts` are MQTT topic levels of their own (wire "
                        "contract v1); pick another site name, e.g. plant-a",
                        site,
                    )
                ],
            )
        return site


class SparkplugSection(_Model):
    """`mqtt.output: sparkplug`: this agent as a Sparkplug B edge node (docs/sparkplug.md)."""

    group_id: Name | None = None  # default: agent.site
    edge_node_id: Name | None = None  # default: agent.line
    # The primary host whose STATE the agent honours (sends nothing while it is offline);
    # None: publish whenever connected.
    host_id: Name | None = None


class MqttSection(_Model):
    """Where batches are published."""

    url: str
    # Publisher keys; see docs/agent.md.
    client_id: Name | None = None  # default: the agent id (persistent session key)
    username: str | None = Field(None, min_length=1)
    password_env: str | None = Field(None, min_length=1)  # name of the env var holding it
    password_file: str | None = Field(None, min_length=1)
    ca_file: str | None = Field(None, min_length=1)
    cert_file: str | None = Field(None, min_length=1)
    key_file: str | None = Field(None, min_length=1)
    keepalive: Duration = timedelta(seconds=30)
    inflight: int = Field(100, ge=1, le=65535)  # QoS 1 messages awaiting PUBACK
    receipts: bool = True  # false: delete on PUBACK (someone else's broker or namespace)
    receipt_timeout: Duration = timedelta(seconds=30)
    max_batch: int = Field(1000, ge=1, le=10_000)  # hub limit: 10,000 readings per batch
    max_delay_ms: int = Field(100, ge=1, le=60_000)
    backlog_rate: int = Field(200_000, ge=1)  # readings/s the backlog lane may send
    reconnect_min: Duration = timedelta(seconds=1)
    reconnect_max: Duration = timedelta(seconds=60)
    status_interval: Duration = timedelta(seconds=10)
    # millstream: the wire contract (docs/wire.md); sparkplug: Sparkplug B (docs/sparkplug.md).
    output: Literal["millstream", "sparkplug"] = "millstream"
    # mqttv5: a batch's trace context goes as a user property, not in the payload (docs/tracing.md).
    protocol: Literal["mqttv311", "mqttv5"] = "mqttv311"
    sparkplug: SparkplugSection = SparkplugSection()

    @field_validator("url")
    @classmethod
    def _broker_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise_issues(
                "MqttSection",
                [
                    Issue(
                        (),
                        f"{url!r} is not an MQTT broker URL",
                        'write mqtt://HOST:1883 or mqtts://HOST:8883, e.g. "mqtt://127.0.0.1:1883"',
                        url,
                    )
                ],
            )
        return url


class BufferSection(_Model):
    """The local SQLite store-and-forward buffer and its bounds."""

    path: str = "buffer.db"
    max_bytes: ByteSize = 1024**3
    max_age: Duration = timedelta(days=7)
    on_full: Literal["drop_oldest", "downsample_oldest"] = "drop_oldest"
    # Kept free on the buffer's disk (a file next to it) and given back when the disk fills,
    # so the agent can still send, delete on receipt and drop by its policy; 0 turns it off.
    disk_reserve: ByteSize = 16 * 1024**2
    # Group commit period: readings committed within it survive power loss (at most 200 ms).
    commit_interval: Duration = Field(
        timedelta(milliseconds=100), gt=timedelta(0), le=timedelta(milliseconds=200)
    )


class ModbusConnection(_Model):
    """How to reach a Modbus device: TCP (`host`) or RTU over a serial port (`serial`)."""

    host: str | None = Field(None, min_length=1)
    port: int = Field(502, ge=1, le=65535)
    serial: str | None = Field(None, min_length=1)
    baudrate: int = Field(9600, ge=300, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    # Modbus over serial line §2.2: 1..247 address slaves; TCP gateways also use 0 and 255.
    unit: int = Field(1, ge=0, le=255)
    timeout_ms: int = Field(1000, ge=10, le=600_000)

    @field_validator("parity", mode="before")
    @classmethod
    def _parity_letter(cls, value: Any) -> Any:
        names = {"none": "N", "even": "E", "odd": "O"}
        if isinstance(value, str):
            return names.get(value.lower(), value.upper())
        return value

    @property
    def transport(self) -> Literal["tcp", "serial"]:
        """`tcp` when a host is given, `serial` for RTU."""
        return "tcp" if self.host is not None else "serial"

    @model_validator(mode="after")
    def _one_transport(self) -> ModbusConnection:
        given = self.model_fields_set
        issues: list[Issue] = []
        if self.host is not None and self.serial is not None:
            issues.append(
                Issue(
                    ("serial",),
                    "both host and serial are given",
                    "Modbus TCP uses host (and port); Modbus RTU uses serial (and baudrate, "
                    "parity, stopbits, bytesize): keep one",
                    self.serial,
                )
            )
        elif self.host is None and self.serial is None:
            issues.append(
                Issue(
                    ("host",),
                    "neither host nor serial is given",
                    "add host: 192.168.1.20 for Modbus TCP, or serial: /dev/ttyUSB0 (COM3 on "
                    "Windows) for Modbus RTU",
                )
            )
        elif self.host is not None:
            issues.extend(
                Issue((key,), f"{key} applies to serial lines only", f"remove {key}")
                for key in _SERIAL_ONLY
                if key in given
            )
        else:
            if "port" in given:
                issues.append(Issue(("port",), "port applies to Modbus TCP only", "remove port"))
            if not 1 <= self.unit <= 247:
                issues.append(
                    Issue(
                        ("unit",),
                        f"unit {self.unit} cannot be read on a serial line",
                        "serial devices answer at unit 1..247 (Modbus over serial line §2.2)",
                        self.unit,
                    )
                )
        raise_issues("ModbusConnection", issues)
        return self


class OpcUaConnection(_Model):
    """How to reach an OPC-UA server (details grow with the OPC-UA issue)."""

    url: str
    security: str = "None"
    username: str | None = None
    password_env: str | None = None
    timeout_ms: int = Field(5000, ge=10, le=600_000)

    @field_validator("url")
    @classmethod
    def _endpoint_url(cls, url: str) -> str:
        if urlsplit(url).scheme != "opc.tcp":
            raise_issues(
                "OpcUaConnection",
                [Issue((), f"{url!r} is not an OPC-UA endpoint", 'write "opc.tcp://HOST:4840"')],
            )
        return url

    @field_validator("security")
    @classmethod
    def _security(cls, security: str) -> str:
        try:
            parse_security(security)
        except ValueError:
            raise_issues(
                "OpcUaConnection",
                [
                    Issue(
                        (),
                        f"unknown security {security!r}",
                        "write None, Sign/Basic256Sha256, SignAndEncrypt/Basic256Sha256, "
                        "Sign/Aes128_Sha256_RsaOaep or SignAndEncrypt/Aes128_Sha256_RsaOaep",
                        security,
                    )
                ],
            )
        return security


class S7Connection(_Model):
    """How to reach a Siemens S7 CPU over ISO-on-TCP: host, port, rack and slot (S7-300: rack 0,
    slot 2; S7-1200/1500: rack 0, slot 1 — what TIA Portal shows for the CPU)."""

    host: str = Field(min_length=1)
    port: int = Field(102, ge=1, le=65535)
    rack: int = Field(0, ge=0, le=7)
    slot: int = Field(1, ge=0, le=31)
    timeout_ms: int = Field(1000, ge=10, le=600_000)


class EnipConnection(_Model):
    """How to reach an Allen-Bradley Logix controller over EtherNet/IP: host, port and the
    slot of the CPU in its chassis (CompactLogix: 0)."""

    host: str = Field(min_length=1)
    port: int = Field(44818, ge=1, le=65535)
    slot: int = Field(0, ge=0, le=31)
    timeout_ms: int = Field(2000, ge=10, le=600_000)


class Device(_Model):
    """One machine: its name, its profile and how to reach it."""

    machine: Name
    profile: str = Field(min_length=1)
    modbus: ModbusConnection | None = None
    opcua: OpcUaConnection | None = None
    s7: S7Connection | None = None
    enip: EnipConnection | None = None

    @property
    def protocol(self) -> Literal["modbus", "opcua", "s7", "enip"]:
        """The protocol of the connection section given."""
        if self.modbus is not None:
            return "modbus"
        if self.opcua is not None:
            return "opcua"
        return "s7" if self.s7 is not None else "enip"

    @model_validator(mode="after")
    def _one_connection(self) -> Device:
        given = [s for s in (self.modbus, self.opcua, self.s7, self.enip) if s is not None]
        if len(given) != 1:
            raise_issues(
                "Device",
                [
                    Issue(
                        ("modbus",) if self.modbus is not None else (),
                        "a device needs exactly one of modbus, opcua, s7 and enip",
                        "add modbus: {host: ..., unit: 1}, opcua: {url: opc.tcp://...}, "
                        "s7: {host: ..., rack: 0, slot: 1} or enip: {host: ..., slot: 0}"
                        if not given
                        else "keep the section matching the profile's protocol",
                    )
                ],
            )
        return self


class AgentConfig(_Model):
    """The whole agent config file."""

    agent: AgentSection
    mqtt: MqttSection
    buffer: BufferSection = BufferSection()
    # Files the agent creates and keeps (OPC-UA certificate and pinned server certificates);
    # relative to the config file's folder.
    state_dir: str = Field("state", min_length=1)
    # Off by default; docs/tracing.md.
    tracing: TracingConfig = TracingConfig()
    devices: tuple[Device, ...]

    @field_validator("devices", mode="wrap")
    @classmethod
    def _unique_machines(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Checked on the raw list so duplicates are reported even when other devices are broken.
        duplicates = duplicate_issues(value, "machine", "machine name", "devices")
        try:
            devices = handler(value)
        except ValidationError as exc:
            reraise_with("AgentConfig", exc, duplicates)
        raise_issues("AgentConfig", duplicates)
        return devices
