"""Apache ActiveMQ Artemis (the binary distribution from Maven Central) as a test MQTT broker."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

from ._server import REPO, Server, ServerError
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
        port: int | None = None,
        workdir: Path | None = None,
        start_timeout: float = 90.0,
    ) -> None:
        super().__init__(port=port, workdir=workdir, start_timeout=start_timeout)
        self.user = user
        self.password = password
        self.heap = heap
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
        shutil.copyfile(BROKER_XML, self.instance / "etc" / "broker.xml")

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
        )
        return env

    def _probe(self, timeout: float) -> None:
        mqtt_connect(self.port, timeout, self.user, self.password)
