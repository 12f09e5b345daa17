"""REST API v1: auth, machines, series and history, agents/devices, dead letters; `/ws`."""

from hub.api.v1.app import build_v1, mount_api
from hub.api.v1.deps import requires
from hub.api.v1.services import ApiServices, open_api_services

__all__ = ["ApiServices", "build_v1", "mount_api", "open_api_services", "requires"]
