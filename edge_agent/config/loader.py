"""Load an agent config file and every profile it names; report every problem in one ConfigError.

This is the I/O shell around the pure models: it reads files, applies `MILLSTREAM_…`
overrides, finds profiles, and turns validation errors into located problems with hints.
Profile search order for `profile: NAME-or-PATH`:
  1. relative to the config file's folder (then its `device_profiles/` subfolder),
  2. the `device_profiles/` folder shipped with Millstream,
  3. each folder in `MILLSTREAM_PROFILE_PATH` (separated like PATH: `:` or `;` on Windows).
A bare name gets `.yaml` (or `.yml`) appended.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import edge_agent
from edge_agent.config.agent import AgentConfig, Device
from edge_agent.config.problems import closest, problems_from_validation
from edge_agent.config.profile import PROFILE_MODELS, AnyProfile, profile_model_for
from edge_agent.config.yamlfile import YamlDocument, read_yaml
from edge_agent.errors import ConfigError, ConfigProblem
from millstream_common.config import apply_env_overrides
from millstream_common.configbundle import (
    LOCAL_PROFILE_DIRS,
    PROFILE_SUFFIXES,
    profile_file_names,
)

__all__ = [
    "PROFILE_PATH_ENV",
    "LoadedConfig",
    "ResolvedDevice",
    "available_profiles",
    "buffer_path",
    "builtin_profile_dirs",
    "find_profile",
    "load_agent_config",
    "load_profile",
    "state_dir",
]

PROFILE_PATH_ENV = "MILLSTREAM_PROFILE_PATH"


@dataclass(frozen=True, slots=True)
class ResolvedDevice:
    """A device from the config with the profile it names, loaded and validated."""

    device: Device
    profile: AnyProfile
    profile_file: Path


def state_dir(config: AgentConfig, config_file: Path) -> Path:
    """The folder for files the agent keeps (relative paths are relative to the config file)."""
    return (config_file.parent / config.state_dir).resolve()


def buffer_path(config: AgentConfig, config_file: Path) -> Path:
    """Where the buffer database lives (relative paths are relative to the config file)."""
    return (config_file.parent / config.buffer.path).resolve()


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A valid agent config with every profile resolved; what the runtime starts from."""

    path: Path
    config: AgentConfig
    devices: tuple[ResolvedDevice, ...]

    @property
    def profiles(self) -> dict[str, AnyProfile]:
        """Profiles in use, by profile name."""
        return {d.profile.profile: d.profile for d in self.devices}

    @property
    def tag_count(self) -> int:
        """Tags read across all devices (a profile used twice counts twice)."""
        return sum(len(d.profile.tags) for d in self.devices)

    def device(self, machine: str) -> ResolvedDevice:
        """Return the device named `machine`; KeyError if there is none."""
        for resolved in self.devices:
            if resolved.device.machine == machine:
                return resolved
        raise KeyError(machine)


def builtin_profile_dirs() -> list[Path]:
    """Return the shipped `device_profiles/` folders that exist (wheel, then source checkout)."""
    package = Path(edge_agent.__file__).resolve().parent
    candidates = [package / "device_profiles", package.parent / "device_profiles"]
    return [path for path in candidates if path.is_dir()]


def _search_dirs(
    config_dir: Path, env: Mapping[str, str], base_dir: Path | None = None
) -> list[Path]:
    extra = [Path(p) for p in env.get(PROFILE_PATH_ENV, "").split(os.pathsep) if p]
    local = [config_dir] if base_dir is None else [config_dir, base_dir]
    own = [folder / sub for folder in local for sub in LOCAL_PROFILE_DIRS]
    return [*own, *builtin_profile_dirs(), *extra]


def find_profile(
    ref: str, config_dir: Path, env: Mapping[str, str], base_dir: Path | None = None
) -> Path | None:
    """Return the file `profile: ref` means, searching in the documented order (a config
    received from the hub also searches the folder of the agent's own config, `base_dir`)."""
    names = profile_file_names(ref)
    for folder in _search_dirs(config_dir, env, base_dir):
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def available_profiles(
    config_dir: Path, env: Mapping[str, str], base_dir: Path | None = None
) -> list[str]:
    """Return the profile names that `find_profile` can find by bare name."""
    names: set[str] = set()
    config_dirs = {config_dir} if base_dir is None else {config_dir, base_dir}
    for folder in _search_dirs(config_dir, env, base_dir):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            # The config folder also holds agent configs: only files that declare a protocol
            # are profiles.
            if path.suffix in PROFILE_SUFFIXES and (
                folder not in config_dirs or _looks_like_profile(path)
            ):
                names.add(path.stem)
    return sorted(names)


def _looks_like_profile(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.startswith("protocol:") for line in text.splitlines())


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_profile(path: Path, *, prefix: str = "") -> tuple[AnyProfile | None, list[ConfigProblem]]:
    """Load and validate one profile file; return it (None if invalid) and its problems."""
    shown = _shown(path)
    document, problems = read_yaml(path, shown_as=shown)
    if document is None:
        return None, [_prefixed(p, prefix) for p in problems]
    model = profile_model_for(document.data)
    if model is None:
        problems.append(_protocol_problem(document, shown, prefix))
        return None, problems
    try:
        profile = model.model_validate(document.data)
    except ValidationError as exc:
        problems += problems_from_validation(
            exc, root=model, file=shown, prefix=prefix, document=document
        )
        return None, problems
    if profile.profile != path.stem:
        problems.append(
            ConfigProblem(
                shown,
                prefix + "profile",
                f"profile name {profile.profile!r} differs from the file name {path.name!r}",
                f"use profile: {path.stem}, or rename the file to {profile.profile}.yaml",
                document.line_of(("profile",)),
            )
        )
    return (None if problems else profile), problems


def _prefixed(problem: ConfigProblem, prefix: str) -> ConfigProblem:
    path = prefix + problem.path if problem.path else prefix.removesuffix(": ")
    return ConfigProblem(problem.file, path, problem.message, problem.hint, problem.line)


def _protocol_problem(document: YamlDocument, shown: str, prefix: str) -> ConfigProblem:
    data = document.data
    known = ", ".join(PROFILE_MODELS)
    if not isinstance(data, dict):
        return ConfigProblem(
            shown, prefix.removesuffix(": "), "a profile must be a mapping of keys", ""
        )
    protocol = data.get("protocol")
    if protocol is None:
        message, hint = "required key 'protocol' is missing", f"add protocol: one of {known}"
    else:
        guess = closest(str(protocol), PROFILE_MODELS)
        message = f"unknown protocol {protocol!r}"
        hint = f"did you mean {guess}?" if guess else f"use one of {known}"
    return ConfigProblem(shown, prefix + "protocol", message, hint, document.line_of(("protocol",)))


def load_agent_config(
    path: str | Path, env: Mapping[str, str] = os.environ, *, base_dir: Path | None = None
) -> LoadedConfig:
    """Load, apply `env` overrides, resolve profiles, validate; ConfigError lists every problem.

    `base_dir` is for a config received from the hub (edge_agent/config/remote.py): its relative
    paths mean what they would beside the agent's own config file, in `base_dir`."""
    config_path = Path(path)
    shown = _shown(config_path)
    document, problems = read_yaml(config_path, shown_as=shown)
    if document is None:
        raise ConfigError(problems)
    if not isinstance(document.data, dict):
        problems.append(
            ConfigProblem(
                shown,
                "",
                "the config file must be a mapping with agent, mqtt, buffer and devices",
                "start from examples/agent.yaml",
                1,
            )
        )
        raise ConfigError(problems)
    data, origins, env_problems = apply_env_overrides(
        document.data, env, AgentConfig.model_fields.keys()
    )
    problems += env_problems
    config: AgentConfig | None = None
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems += problems_from_validation(
            exc, root=AgentConfig, file=shown, document=document, env_origins=origins
        )
    profiles, profile_problems = _resolve_profiles(
        data, config_path.parent, env, shown, document, base_dir=base_dir
    )
    problems += profile_problems
    if problems or config is None:
        raise ConfigError(_in_reading_order(problems))
    # Relative paths are relative to the config file, so a service started from any folder
    # finds the same files; made absolute here so no consumer has to know the rule.
    folder = config_path.parent if base_dir is None else base_dir
    buffer = config.buffer.model_copy(update={"path": str((folder / config.buffer.path).resolve())})
    config = config.model_copy(
        update={"buffer": buffer, "state_dir": str((folder / config.state_dir).resolve())}
    )
    devices = tuple(
        ResolvedDevice(device, *profiles[index]) for index, device in enumerate(config.devices)
    )
    return LoadedConfig(config_path, config, devices)


def _in_reading_order(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Group by file (in order of first mention), then by line, so the list reads top-down."""
    files = {p.file: n for n, p in reversed(list(enumerate(problems)))}
    return sorted(problems, key=lambda p: (files[p.file], p.line or 0))


def _resolve_profiles(
    data: dict[str, Any],
    config_dir: Path,
    env: Mapping[str, str],
    shown: str,
    document: YamlDocument,
    *,
    base_dir: Path | None,
) -> tuple[dict[int, tuple[AnyProfile, Path]], list[ConfigProblem]]:
    """Load the profile of every device entry, each file once; problems are named by device."""
    resolved: dict[int, tuple[AnyProfile, Path]] = {}
    problems: list[ConfigProblem] = []
    loaded: dict[Path, AnyProfile | None] = {}
    devices = data.get("devices")
    for index, raw in enumerate(devices if isinstance(devices, list) else []):
        ref = raw.get("profile") if isinstance(raw, dict) else None
        if not isinstance(ref, str) or not ref:
            continue  # the model reports the missing or malformed key
        file = find_profile(ref, config_dir, env, base_dir)
        where = f"devices[{index}].profile"
        if file is None:
            names = available_profiles(config_dir, env, base_dir)
            guess = closest(ref, names)
            hint = (f"did you mean {guess}? " if guess else "") + (
                f"available profiles: {', '.join(names)}" if names else "no profiles found"
            )
            hint += f"; or give a path to a .yaml file, or add a folder to {PROFILE_PATH_ENV}"
            problems.append(
                ConfigProblem(
                    shown,
                    where,
                    f"no profile {ref!r} found",
                    hint,
                    document.line_of(("devices", index, "profile")),
                )
            )
            continue
        key = file.resolve()
        if key not in loaded:
            profile, found = load_profile(file, prefix=f"{where} {ref}: ")
            loaded[key] = profile
            problems += found
        profile = loaded[key]
        if profile is None:
            continue
        if isinstance(raw, dict):
            connection = next((c for c in PROFILE_MODELS if c in raw), None)
            if connection is not None and connection != profile.protocol:
                problems.append(
                    ConfigProblem(
                        shown,
                        f"devices[{index}].{connection}",
                        f"profile {ref} speaks {profile.protocol}, but the device has a "
                        f"{connection} section",
                        f"replace {connection}: with {profile.protocol}: {{...}}, or pick a "
                        f"{connection} profile",
                        document.line_of(("devices", index, connection)),
                    )
                )
                continue
        resolved[index] = (profile, file)
    return resolved, problems
