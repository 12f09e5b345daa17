"""Apache ActiveMQ Artemis (the binary distribution from Maven Central) as a test MQTT broker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import ClassVar

from ._server import REPO, Server, ServerError, free_port
from ._wire import mqtt_connect

__all__ = ["Artemis", "artemis_home", "artemis_version"]

DISTRIBUTION = REPO / "packaging" / "artemis" / "distribution.txt"
BROKER_XML = REPO / "packaging" / "artemis" / "broker.xml"


def artemis_version() -> str:
    """The Artemis version pinned in packaging/artemis/distribution.txt."""
    for line in DISTRIBUTION.read_text().splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0] == "artemis":
            return fields[2]
    raise ServerError(f"{DISTRIBUTION} names no artemis version")


def artemis_home() -> Path:
    """The unpacked distribution: $MILLSTREAM_ARTEMIS_HOME, else the cache `scripts/services
    install` fills."""
    if env := os.environ.get("MILLSTREAM_ARTEMIS_HOME"):
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "millstream" / "tools" / f"artemis-{artemis_version()}"


class Artemis(Server):
    """An Artemis broker on 127.0.0.1 with only an MQTT acceptor; `.url` is mqtt://127.0.0.1:PORT.

    The instance (`artemis create`, with login required for `user`/`password`) lives in the
    server's work directory, its journal in instance/data; the broker runs on
    packaging/artemis/broker.xml, the port set by system property. Persistence is always on:
    stop() and kill() keep the journal, start() resumes from it.
    """

    name: ClassVar[str] = "artemis"

    def __init__(
        self,
        *,
        user: str = "millstream",
        password: str = "millstream-test",
        heap: str = "384m",
        clustered: bool = False,
        peers: tuple[int, ...] = (),
        port: int | None = None,
        workdir: Path | None = None,
        start_timeout: float = 90.0,
    ) -> None:
        super().__init__(port=port, workdir=workdir, start_timeout=start_timeout)
        self.user = user
        self.password = password
        self.heap = heap
        self.clustered = clustered
        self.peers = peers
        self.cluster_port = free_port()
        self.instance = self.workdir / "instance"

    @property
    def url(self) -> str:
        """mqtt://127.0.0.1:PORT."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """Same as `.url`."""
        return self.url

    @property
    def journal(self) -> Path:
        """The broker's data directory (journal, bindings, paging)."""
        return self.instance / "data"

    def _prepare(self) -> None:
        home = artemis_home()
        tool = home / "bin" / "artemis"
        if not tool.exists():
            raise ServerError(
                f"Apache ActiveMQ Artemis {artemis_version()} is not installed in {home}; "
                "run scripts/services install"
            )
        if not (self.instance / "bin" / "artemis").exists():
            done = subprocess.run(
                [
                    str(tool), "create", str(self.instance),
                    "--user", self.user, "--password", self.password, "--role", "amq",
                    "--require-login", "--silent", "--no-web", "--nio", "--no-autotune",
                    "--host", self.host, "--name", f"millstream-{self.port}",
                ],
                capture_output=True, text=True, check=False, timeout=120, env=self._env(),
            )  # fmt: skip
            if done.returncode != 0:
                raise ServerError(f"artemis create failed:\n{done.stdout}\n{done.stderr}")
        # The shipped config, not a test-only one: the tests vouch for what operators copy.
        config = BROKER_XML.read_text()
        if self.clustered:
            config = self._cluster(config)
        (self.instance / "etc" / "broker.xml").write_text(config)

    def _cluster(self, config: str) -> str:
        """broker.xml with a CORE acceptor and a static cluster connection to `peers`."""
        core = (
            f'<acceptor name="core">tcp://{self.host}:{self.cluster_port}?protocols=CORE</acceptor>'
        )
        connectors = "".join(
            f'<connector name="peer{i}">tcp://{self.host}:{port}</connector>'
            for i, port in enumerate(self.peers)
        )
        refs = "".join(f"<connector-ref>peer{i}</connector-ref>" for i in range(len(self.peers)))
        cluster = f"""
      <connectors>
         <connector name="self">tcp://{self.host}:{self.cluster_port}</connector>{connectors}
      </connectors>
      <cluster-user>{self.user}</cluster-user>
      <cluster-password>{self.password}</cluster-password>
      <cluster-connections>
         <cluster-connection name="millstream">
            <connector-ref>self</connector-ref>
            <retry-interval>500</retry-interval>
            <reconnect-attempts>-1</reconnect-attempts>
            <message-load-balancing>ON_DEMAND</message-load-balancing>
            <max-hops>1</max-hops>
            <static-connectors>{refs}</static-connectors>
         </cluster-connection>
      </cluster-connections>
   </core>"""
        config = config.replace("</acceptors>", f"   {core}\n      </acceptors>", 1)
        config = config.replace(
            "<auto-create-queues>", "<redistribution-delay>0</redistribution-delay>\n"
            "            <auto-create-queues>", 1,
        )  # fmt: skip
        return config.replace("   </core>", cluster, 1)

    def _repick_ports(self) -> None:
        self.port = free_port()
        self.cluster_port = free_port()

    def _argv(self) -> list[str]:
        return [str(self.instance / "bin" / "artemis"), "run"]

    def _env(self) -> dict[str, str]:
        env = super()._env()
        # JAVA_ARGS replaces the instance profile's (2 GB heap, G1): a test broker lives for
        # seconds to minutes, so a small heap and the serial collector, as for Kafka.
        env["JAVA_ARGS"] = (
            f"-Xms64m -Xmx{self.heap} -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
            " -Djava.awt.headless=true -Dlog4j2.disableJmx=true"
            " --add-opens java.base/jdk.internal.misc=ALL-UNNAMED"
        )
        env["JAVA_ARGS_APPEND"] = (
            f"-Dmillstream.mqtt.host={self.host} -Dmillstream.mqtt.port={self.port}"
            f" -Dmillstream.broker.name=millstream-{self.cluster_port}"
        )
        return env

    def _probe(self, timeout: float) -> None:
        mqtt_connect(self.port, timeout, self.user, self.password)
