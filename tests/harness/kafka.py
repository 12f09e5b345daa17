"""Apache Kafka 4 in KRaft mode: one node that is both broker and controller (`Kafka`), or a
cluster of such nodes with replicated topics (`KafkaCluster`)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from ._server import HOST, REPO, ProbeError, Server, ServerError, free_port
from ._wire import _recv_exact, kafka_api_versions

__all__ = ["Kafka", "KafkaCluster", "KafkaNode", "kafka_libs", "kafka_version"]

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
        return "".join(f"{key}={value}\n" for key, value in self._settings().items())

    def _settings(self) -> dict[str, str]:
        return {
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
        cluster_id = self._cluster_id()
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

    def _cluster_id(self) -> str:
        return _new_cluster_id()

    def _argv(self) -> list[str]:
        return [*self._jvm(), "kafka.Kafka", str(self.config_path)]

    def _probe(self, timeout: float) -> None:
        kafka_api_versions(self.port, timeout)


def _new_cluster_id() -> str:
    # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _metadata_brokers(port: int, timeout: float) -> set[int]:
    """The node ids a broker lists as live (Metadata v7, no topics): registered and unfenced."""
    client_id = b"millstream-probe"
    correlation = 8
    # Header v1: api key 3 (Metadata), version 7, correlation id, client id; body: an empty
    # topic array (v1+: no topics, not all) and allow_auto_topic_creation false.
    request = struct.pack("!hhih", 3, 7, correlation, len(client_id)) + client_id
    request += struct.pack("!ib", 0, 0)
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(struct.pack("!i", len(request)) + request)
        (size,) = struct.unpack("!i", _recv_exact(sock, 4))
        body = _recv_exact(sock, size)
    got_correlation, _throttle, count = struct.unpack_from("!iii", body)
    if got_correlation != correlation:
        raise ProbeError(f"Metadata answered correlation {got_correlation}")
    pos, nodes = 12, set()
    for _ in range(count):
        node_id, host_len = struct.unpack_from("!ih", body, pos)
        pos += 6 + host_len + 4  # node id, host, port
        (rack_len,) = struct.unpack_from("!h", body, pos)
        pos += 2 + max(rack_len, 0)  # rack: nullable (-1)
        nodes.add(node_id)
    return nodes


class KafkaNode(Kafka):
    """One node of a `KafkaCluster`: broker and controller with node id `node_id`; its ports are
    fixed by the cluster (every node's config names every controller)."""

    def __init__(self, cluster: KafkaCluster, node_id: int, *, workdir: Path) -> None:
        super().__init__(
            port=free_port(),
            controller_port=free_port(),
            workdir=workdir,
            start_timeout=cluster.start_timeout,
            heap=cluster.heap,
        )
        self.cluster = cluster
        self.node_id = node_id

    def _settings(self) -> dict[str, str]:
        replicas, isr = str(self.cluster.replication), str(self.cluster.min_insync)
        return {
            **super()._settings(),
            "node.id": str(self.node_id),
            # Static voters: every node is a controller, and a majority (2 of 3) keeps the quorum.
            "controller.quorum.voters": self.cluster.voters,
            "default.replication.factor": replicas,
            "min.insync.replicas": isr,
            # One partition each (start-up stays fast), replicated like the data: the group and
            # transaction coordinators move with their partition's leader when a node dies.
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": isr,
        }

    def _prepare(self) -> None:
        self.config_path.write_text(self._config())
        # Formatted per node (no template): the nodes share the cluster id, each has its own
        # node and directory id. About 1.5 s each, and the nodes format in parallel.
        if not (self.data_dir / "meta.properties").exists():
            self._format(self.data_dir)

    def _cluster_id(self) -> str:
        return self.cluster.cluster_id

    def _repick_ports(self) -> None:
        raise ServerError("a cluster node keeps its ports (the others' configs name them)")


class KafkaCluster:
    """`nodes` KRaft nodes on 127.0.0.1, each broker and controller (combined mode), with
    replicated internal topics: `default.replication.factor` = `replication`,
    `min.insync.replicas` = `min_insync`. A context manager; `.bootstrap` lists every node.

        with KafkaCluster() as cluster:
            cluster.kill(2)          # SIGKILL node 2, as a crash would
            cluster.start_node(2)    # back on the same ports and data directory
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        replication: int = 3,
        min_insync: int = 2,
        start_timeout: float = 90.0,
        heap: str = "512m",
    ) -> None:
        if not 1 <= min_insync <= replication <= nodes:
            raise ValueError(
                f"need 1 <= min_insync <= replication <= nodes, got {min_insync}, {replication}, "
                f"{nodes}"
            )
        self.replication = replication
        self.min_insync = min_insync
        self.start_timeout = start_timeout
        self.heap = heap
        self.cluster_id = _new_cluster_id()
        self.workdir = Path(tempfile.mkdtemp(prefix="millstream-kafka-cluster-"))
        self.nodes = {
            n: KafkaNode(self, n, workdir=self.workdir / f"node{n}") for n in range(1, nodes + 1)
        }

    @property
    def voters(self) -> str:
        """`controller.quorum.voters`: id@host:controller-port of every node."""
        return ",".join(f"{n}@{node.host}:{node.controller_port}" for n, node in self.nodes.items())

    @property
    def bootstrap(self) -> str:
        """Every node's host:port, for bootstrap.servers (clients skip a dead one)."""
        return ",".join(node.bootstrap for node in self.nodes.values())

    def node(self, node_id: int) -> KafkaNode:
        """The node with this node id."""
        return self.nodes[node_id]

    def start(self) -> None:
        """Start every node at once (none is ready before a majority of controllers is up) and
        return when each lists all of them as live brokers; ServerError otherwise."""
        for attempt in range(3):
            offsets = {n: _size(node.log_path) for n, node in self.nodes.items()}
            try:
                self._parallel([node.start for node in self.nodes.values()])
                self._await_brokers()
            except ServerError:
                self.kill_all()
                clash = any(
                    "address already in use" in _tail_from(node.log_path, offsets[n]).lower()
                    for n, node in self.nodes.items()
                )
                if not clash or attempt == 2:
                    raise
                # Another run took a port between free_port() and bind: new ports for all.
                for node in self.nodes.values():
                    node.port, node.controller_port = free_port(), free_port()
                continue
            return

    def start_node(self, node_id: int) -> None:
        """Start one stopped or killed node again (same ports, same data); return once every
        running node lists it as a live broker."""
        self.nodes[node_id].start()
        self._await_brokers()

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a crash or power cut would; returns once it is dead."""
        self.nodes[node_id].kill()

    def stop_node(self, node_id: int) -> None:
        """Stop one node gracefully (controlled shutdown: its leaderships move first)."""
        self.nodes[node_id].stop()

    def running(self) -> list[int]:
        """Node ids of the nodes whose process is alive."""
        return [n for n, node in self.nodes.items() if node.running]

    def stop(self) -> None:
        """Stop every node gracefully, in parallel."""
        self._parallel([node.stop for node in self.nodes.values()])

    def kill_all(self) -> None:
        """SIGKILL every node."""
        for node in self.nodes.values():
            node.kill()

    def cleanup(self) -> None:
        """Kill every node (its data is thrown away, so no need to shut down) and delete the
        cluster's directory."""
        self.kill_all()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tails(self, lines: int = 20) -> str:
        """The last lines of every node's log, for assertion messages."""
        return "\n".join(
            f"--- node {n}: {node.log_path} ---\n{node.log_tail(lines)}"
            for n, node in self.nodes.items()
        )

    def _parallel(self, calls: list[Callable[[], None]]) -> None:
        errors: list[Exception] = []

        def run(call: Callable[[], None]) -> None:
            try:
                call()
            except Exception as exc:  # re-raised in the calling thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(call,)) for call in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _await_brokers(self) -> None:
        """Until every running node's metadata lists every running node as a live broker."""
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while True:
            wanted = set(self.running())
            try:
                seen = {n: _metadata_brokers(self.nodes[n].port, 2.0) for n in wanted}
            except (OSError, ProbeError, struct.error) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if all(brokers == wanted for brokers in seen.values()):
                    return
                last = f"live brokers per node: {seen}"
            if time.monotonic() > deadline:
                raise ServerError(
                    f"Kafka cluster: not every node lists {sorted(wanted)} as live within "
                    f"{self.start_timeout:.0f} s ({last})\n{self.log_tails()}"
                )
            time.sleep(0.1)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<KafkaCluster {self.bootstrap} running {self.running()}>"


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _tail_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
