"""A device profile of any protocol, chosen by its `protocol` key."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from edge_agent.config.enip_profile import EnipProfile
from edge_agent.config.modbus_profile import ModbusProfile
from edge_agent.config.opcua_profile import OpcUaProfile
from edge_agent.config.s7_profile import S7Profile

__all__ = ["PROFILE_MODELS", "AnyProfile", "DeviceProfile", "profile_model_for"]

AnyProfile = ModbusProfile | OpcUaProfile | S7Profile | EnipProfile
DeviceProfile = Annotated[AnyProfile, Field(discriminator="protocol")]

# Adding a protocol = one more profile model here and one more connection section in Device.
ProfileModel = type[ModbusProfile] | type[OpcUaProfile] | type[S7Profile] | type[EnipProfile]
PROFILE_MODELS: dict[str, ProfileModel] = {
    "modbus": ModbusProfile,
    "opcua": OpcUaProfile,
    "s7": S7Profile,
    "enip": EnipProfile,
}


def profile_model_for(raw: Any) -> ProfileModel | None:
    """Return the profile model for raw data's `protocol`, or None if it names none we know."""
    protocol = raw.get("protocol") if isinstance(raw, dict) else None
    return PROFILE_MODELS.get(protocol) if isinstance(protocol, str) else None
