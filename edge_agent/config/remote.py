"""Configurations received from the hub, kept in the state folder, and which one the agent runs.

`edge-agent run agent.yaml` runs the local file unless a configuration from the hub is active:

    STATE/remote-config/v7/agent.yaml, …   each received version, as its files
    STATE/remote-config/active.json        {"version": 7, "local_digest": …, "trial": …}

A received configuration is loaded with the agent's own loader, its relative paths meaning what
they would beside the local file (the buffer and the state stay where they are), and the local
broker password (`password_file`/`password_env`) in place of whatever it names: secrets are
never sent. It may not change the agent id, the buffer or the state folder — readings buffered
there would be stranded.

The local file stays the technician's: `local_digest` is the SHA-256 of agent.yaml when the
received version became active; if agent.yaml has been edited since, the local file wins again
(the last edit is the one that counts) and the log says so.

While a new version is on trial (`trial`), the previous active state is kept in it, so the
agent can return to it by itself (edge_agent/commands/reconfigure.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import wire
from edge_agent.config.loader import LoadedConfig, load_agent_config
from edge_agent.errors import ConfigError, ConfigProblem

__all__ = ["ActiveConfig", "RemoteConfigs", "Trial", "local_digest", "select_config"]

log = logging.getLogger(__name__)

FOLDER = "remote-config"
_ACTIVE = "active.json"


@dataclass(frozen=True, slots=True)
class Trial:
    """A version being proven: kept only if every watched device and the broker answer."""

    command_id: str
    version: int
    deadline: float  # wall-clock seconds; the trial fails when it passes
    rollback_after: float
    watch: tuple[str, ...]  # devices online before the switch (and still configured)
    before: ActiveConfig | None  # what to return to: None is the local file


@dataclass(frozen=True, slots=True)
class ActiveConfig:
    """The received version the agent runs instead of its local file."""

    version: int
    local_digest: str
    trial: Trial | None = None

    def to_json(self) -> dict[str, Any]:
        """As kept in active.json."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ActiveConfig:
        """From active.json (its own `trial.before` nested the same way)."""
        trial = doc.get("trial")
        return cls(
            version=int(doc["version"]),
            local_digest=str(doc["local_digest"]),
            trial=None
            if trial is None
            else Trial(
                command_id=str(trial["command_id"]),
                version=int(trial["version"]),
                deadline=float(trial["deadline"]),
                rollback_after=float(trial["rollback_after"]),
                watch=tuple(trial["watch"]),
                before=None if trial["before"] is None else cls.from_json(trial["before"]),
            ),
        )


def local_digest(config_file: Path) -> str:
    """SHA-256 of the local config file as it is now."""
    return hashlib.sha256(config_file.read_bytes()).hexdigest()


class RemoteConfigs:
    """The received versions and the active one, under the agent's state folder."""

    def __init__(self, state: Path) -> None:
        self.folder = state / FOLDER

    def version_dir(self, version: int) -> Path:
        """Where a version's files are kept."""
        return self.folder / f"v{version}"

    def stage(self, bundle: wire.ConfigBundle) -> Path:
        """Write a version's files (replacing an earlier copy of the same version)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.version_dir(bundle.version)
        staging = Path(tempfile.mkdtemp(prefix=f".v{bundle.version}-", dir=self.folder))
        for name, text in bundle.files.items():
            file = staging / name  # relative plain names: the wire contract checked them
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        return target

    def load(
        self, version: int, local: LoadedConfig, env: Mapping[str, str] = os.environ
    ) -> LoadedConfig:
        """A kept version, validated as `edge-agent validate` would, with the local password;
        ConfigError names every problem (file names as sent: agent.yaml, profiles)."""
        folder = self.version_dir(version)
        try:
            loaded = load_agent_config(
                folder / wire.CONFIG_MAIN_FILE, env, base_dir=local.path.parent
            )
        except ConfigError as exc:
            raise ConfigError([_as_sent(p, folder) for p in exc.problems]) from None
        problems = _kept_local(loaded, local)
        if problems:
            raise ConfigError(problems)
        mqtt = loaded.config.mqtt.model_copy(
            update={
                "password_file": local.config.mqtt.password_file,
                "password_env": local.config.mqtt.password_env,
            }
        )
        # Shown as the local file: status, logs and relative paths name the file a technician knows.
        return LoadedConfig(
            local.path, loaded.config.model_copy(update={"mqtt": mqtt}), loaded.devices
        )

    def active(self) -> ActiveConfig | None:
        """The active version, or None (the local file)."""
        try:
            doc = json.loads((self.folder / _ACTIVE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning(
                "ignoring %s (%s): running the local config file", self.folder / _ACTIVE, exc
            )
            return None
        try:
            return ActiveConfig.from_json(doc)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning(
                "ignoring %s (%r): running the local config file", self.folder / _ACTIVE, exc
            )
            return None

    def save(self, active: ActiveConfig | None) -> None:
        """Make `active` the active version (None: the local file), durably."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / _ACTIVE
        if active is None:
            target.unlink(missing_ok=True)
            _sync_dir(self.folder)
            return
        fd, tmp = tempfile.mkstemp(prefix=".active-", dir=self.folder)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(active.to_json(), out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(target)
        _sync_dir(self.folder)


def select_config(
    local: LoadedConfig, state: Path, env: Mapping[str, str] = os.environ
) -> tuple[LoadedConfig, ActiveConfig | None]:
    """The configuration to run now, and the active received version if it is that one."""
    store = RemoteConfigs(state)
    active = store.active()
    if active is None:
        return local, None
    if active.trial is None and active.local_digest != local_digest(local.path):
        log.warning(
            "%s was edited after config version %d came from the hub: running the local file "
            "(push it from the hub again to switch back)",
            local.path,
            active.version,
        )
        store.save(None)
        return local, None
    try:
        return store.load(active.version, local, env), active
    except ConfigError as exc:
        # Checked before it became active; this is a file lost or a profile removed since.
        log.warning(
            "config version %d from the hub no longer loads (%s): running the local file",
            active.version,
            "; ".join(map(str, exc.problems)),
        )
        if active.trial is None:
            store.save(None)
            return local, None
        return local, active  # the trial's watcher reports it failed and rolls back


def _kept_local(loaded: LoadedConfig, local: LoadedConfig) -> list[ConfigProblem]:
    """What a received config may not change, as problems."""
    problems: list[ConfigProblem] = []
    new, old = loaded.config, local.config
    for path, now, before, why in (
        ("agent.id", new.agent.id, old.agent.id, "it names this agent on the broker"),
        ("buffer.path", new.buffer.path, old.buffer.path,
         "readings buffered there would be left behind"),
        ("state_dir", new.state_dir, old.state_dir,
         "the agent's certificates and command journal live there"),
    ):  # fmt: skip
        if now != before:
            problems.append(
                ConfigProblem(
                    wire.CONFIG_MAIN_FILE,
                    path,
                    f"is {now!r} here but {before!r} on the agent: a config from the hub cannot "
                    f"change it ({why})",
                    f"keep {path}: {before}, or change it in the agent's own file on the line PC",
                )
            )
    return problems


def _as_sent(problem: ConfigProblem, folder: Path) -> ConfigProblem:
    """A problem naming the file as the hub sent it, not where the agent keeps it."""
    file = Path(problem.file)
    try:
        shown = (
            (file if file.is_absolute() else Path.cwd() / file)
            .resolve()
            .relative_to(folder.resolve())
        )
    except ValueError:
        return problem
    return ConfigProblem(
        shown.as_posix(), problem.path, problem.message, problem.hint, problem.line
    )


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
