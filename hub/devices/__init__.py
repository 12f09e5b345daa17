"""Broker identities of MQTT devices and agents, made through Mosquitto's dynamic security
plugin (docs/devices.md "Broker identities"): no hand-edited ACL, no broker restart.

    identities.py  who an identity is and the ACL it gets by construction (pure)
    dynsec.py      the plugin's command protocol over MQTT
    service.py     add / disable / enable / rotate / remove, broker and hub database together
"""

from hub.devices.dynsec import Dynsec, DynsecError
from hub.devices.identities import Identity, IdentityKind, role_name
from hub.devices.service import BrokerIdentities

__all__ = ["BrokerIdentities", "Dynsec", "DynsecError", "Identity", "IdentityKind", "role_name"]
