"""Apache Kafka 4 in KRaft mode, one node that is both broker and controller."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import ClassVar

from ._server import REPO, Server, ServerError, free_port
from ._wire import kafka_api_versions

__all__ = ["Kafka", "kafka_libs", "kafka_version"]

POM = REPO / "packaging" / "kafka" / "pom.xml"
LOG4J2 = REPO / "packaging" / "kafka" / "log4j2.properties"


def kafka_version() -> str:
    """The Kafka version pinned in packaging/kafka/pom.xml."""
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if found is None:
        raise ServerError(f"{POM} has no <kafka.version>")
    return found.group(1).strip()


def kafka_libs() -> Path:
    """The broker's jars: $MILLSTREAM_KAFKA_LIBS, else the cache scripts/services install fills."""
    if env := os.environ.get("MILLSTREAM_KAFKA_LIBS"):
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "millstream" / f"kafka-{kafka_version()}" / "libs"


def _java() -> str:
    if home := os.environ.get("JAVA_HOME"):
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise ServerError("java is not on PATH (Kafka needs Java 17)")
    return found


class Kafka(Server):
    """A single-node KRaft Kafka on 127.0.0.1; `.bootstrap` is 127.0.0.1:PORT.

    Sized for one node: every internal topic has replication factor 1, and consumer groups start
    at once instead of waiting for more members.
    """

    name: ClassVar[str] = "kafka"

    def __init__(
        self,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        workdir: Path | None = None,
        start_timeout: float = 60.0,
        heap: str = "512m",
    ) -> None:
        super().__init__(port=port, workdir=workdir, start_timeout=start_timeout)
        self.controller_port = controller_port if controller_port is not None else free_port()
        self.heap = heap
        self.config_path = self.workdir / "server.properties"
        self.data_dir = self.workdir / "data"

    @property
    def bootstrap(self) -> str:
        """host:port for bootstrap.servers."""
        return f"{self.host}:{self.port}"

    def _repick_ports(self) -> None:
        self.port = free_port()
        self.controller_port = free_port()

    def _config(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _jvm(self) -> list[str]:
        libs = kafka_libs()
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise ServerError(f"Kafka jars not found in {libs}; run scripts/services install")
        return [
            _java(),
            f"-Xmx{self.heap}",
            # A test broker lives for seconds to minutes: C1-only JIT and the serial collector
            # cut its start-up by about a quarter on a 2-core machine (fewer compiler/GC threads).
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2}",
            f"-Dkafka.logs.dir={self.workdir}",
            "-cp",
            f"{libs}/*",
        ]

    def _prepare(self) -> None:
        self.config_path.write_text(self._config())
        if not (self.data_dir / "meta.properties").exists():
            # Instances share the template's cluster id; each is its own cluster all the same.
            self._from_template(self.data_dir, self._format)

    def _format(self, data_dir: Path) -> None:
        config = data_dir.parent / "server.properties"
        config.write_text(self._config().replace(str(self.data_dir), str(data_dir)))
        # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        argv = [
            *self._jvm(),
            "kafka.tools.StorageTool",
            "format",
            # "=": a random id may start with "-", which argparse would take for an option.
            f"--cluster-id={cluster_id}",
            "--config", str(config),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                timeout=self.start_timeout,
                check=False,
            )
        if done.returncode != 0:
            raise ServerError(
                f"kafka storage format failed with code {done.returncode}\n"
                f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
            )

    def _argv(self) -> list[str]:
        return [*self._jvm(), "kafka.Kafka", str(self.config_path)]

    def _probe(self, timeout: float) -> None:
        kafka_api_versions(self.port, timeout)
