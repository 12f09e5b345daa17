"""Agent configuration: the agent config file, device profiles, and their loader.

`load_agent_config(path)` is the entry point: it returns a `LoadedConfig` (the validated
`AgentConfig` plus each device's resolved profile) or raises `ConfigError` listing every problem
with file, path and hint. `modbus_points(profile)` turns a Modbus profile into driver points.
"""

from edge_agent.config.agent import (
    AgentConfig,
    AgentSection,
    BufferSection,
    Device,
    EnipConnection,
    ModbusConnection,
    MqttSection,
    OpcUaConnection,
    S7Connection,
)
from edge_agent.config.loader import (
    PROFILE_PATH_ENV,
    LoadedConfig,
    ResolvedDevice,
    available_profiles,
    buffer_path,
    builtin_profile_dirs,
    find_profile,
    load_agent_config,
    load_profile,
    state_dir,
)
from edge_agent.config.modbus_profile import ModbusDefaults, ModbusProfile, ModbusTag
from edge_agent.config.opcua_profile import OpcUaDeadband, OpcUaDefaults, OpcUaProfile, OpcUaTag
from edge_agent.config.points import modbus_point, modbus_points, opcua_point, opcua_points
from edge_agent.config.profile import DeviceProfile
from edge_agent.config.s7_profile import S7Profile, S7Tag
from edge_agent.config.units import format_duration, format_size, parse_duration, parse_size
from millstream_common.config import apply_env_overrides, env_name

__all__ = [
    "PROFILE_PATH_ENV",
    "AgentConfig",
    "AgentSection",
    "BufferSection",
    "Device",
    "DeviceProfile",
    "EnipConnection",
    "LoadedConfig",
    "ModbusConnection",
    "ModbusDefaults",
    "ModbusProfile",
    "ModbusTag",
    "MqttSection",
    "OpcUaConnection",
    "OpcUaDeadband",
    "OpcUaDefaults",
    "OpcUaProfile",
    "OpcUaTag",
    "ResolvedDevice",
    "S7Connection",
    "S7Profile",
    "S7Tag",
    "apply_env_overrides",
    "available_profiles",
    "buffer_path",
    "builtin_profile_dirs",
    "env_name",
    "find_profile",
    "format_duration",
    "format_size",
    "load_agent_config",
    "load_profile",
    "modbus_point",
    "modbus_points",
    "opcua_point",
    "opcua_points",
    "parse_duration",
    "parse_size",
    "state_dir",
]
