"""A device profile of any protocol, chosen by its `protocol` key."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from edge_agent.config.modbus_profile import ModbusProfile
from edge_agent.config.opcua_profile import OpcUaProfile

__all__ = ["PROFILE_MODELS", "DeviceProfile", "profile_model_for"]

DeviceProfile = Annotated[ModbusProfile | OpcUaProfile, Field(discriminator="protocol")]

# Adding a protocol = one more profile model here and one more connection section in Device.
PROFILE_MODELS: dict[str, type[ModbusProfile] | type[OpcUaProfile]] = {
    "modbus": ModbusProfile,
    "opcua": OpcUaProfile,
}


def profile_model_for(raw: Any) -> type[ModbusProfile] | type[OpcUaProfile] | None:
    """Return the profile model for raw data's `protocol`, or None if it names none we know."""
    protocol = raw.get("protocol") if isinstance(raw, dict) else None
    return PROFILE_MODELS.get(protocol) if isinstance(protocol, str) else None
