"""Wire contract v1 shared by agents, MQTT devices and the hub."""

__all__: list[str] = []
