"""An agent configuration as a set of files: its config file and the device profiles beside it.

Shared because both sides need the same rule: `millstream-hub agents config push` gathers the
files to send (the hub machine has no agent installed), and the agent looks for a profile named
by `profile: NAME-or-PATH` in the same places first (edge_agent/config/loader.py): the config
file's folder, then its `device_profiles/` subfolder. Profiles found only elsewhere (shipped with
Millstream, or in `MILLSTREAM_PROFILE_PATH`) are not sent: the agent has its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = [
    "LOCAL_PROFILE_DIRS",
    "PROFILE_SUFFIXES",
    "BundleError",
    "GatheredConfig",
    "gather_config_files",
    "local_profile",
    "profile_file_names",
]

PROFILE_SUFFIXES = (".yaml", ".yml")
# Searched, in this order, relative to the config file's folder.
LOCAL_PROFILE_DIRS = (".", "device_profiles")
MAIN_FILE = "agent.yaml"  # as wire.commands.CONFIG_MAIN_FILE: what the agent loads
_SECRET_KEYS = ("password", "secret", "token", "private_key")


class BundleError(ValueError):
    """The config cannot be sent as it is; the message says what to change."""


@dataclass(frozen=True, slots=True)
class GatheredConfig:
    """Files to send (relative path → text) and the profiles the agent must find itself."""

    files: dict[str, str]
    not_sent: tuple[str, ...]


def profile_file_names(ref: str) -> list[str]:
    """File names `profile: ref` may mean: as given with a suffix, else with each suffix."""
    return [ref] if ref.endswith(PROFILE_SUFFIXES) else [ref + s for s in PROFILE_SUFFIXES]


def local_profile(ref: str, config_dir: Path) -> Path | None:
    """The profile file `ref` names in the config's own folders, if there is one."""
    for folder in LOCAL_PROFILE_DIRS:
        for name in profile_file_names(ref):
            candidate = config_dir / folder / name
            if candidate.is_file():
                return candidate
    return None


def gather_config_files(config_file: Path) -> GatheredConfig:
    """The files of the configuration in `config_file`, as the agent will receive them."""
    try:
        text = config_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"cannot read {config_file}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BundleError(f"{config_file} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{config_file} is not an agent config (agent, mqtt, devices)")
    _refuse_secrets(data, config_file.name)
    files = {MAIN_FILE: text}
    not_sent: list[str] = []
    folder = config_file.parent.resolve()
    devices = data.get("devices")
    for device in devices if isinstance(devices, list) else []:
        ref = device.get("profile") if isinstance(device, dict) else None
        if not isinstance(ref, str) or not ref:
            continue  # the agent's validation names it
        found = local_profile(ref, folder)
        if found is None:
            not_sent.append(ref)
            continue
        try:
            name = found.resolve().relative_to(folder).as_posix()
        except ValueError:
            raise BundleError(
                f"profile {ref!r} is outside the config's folder: copy it beside {config_file}"
            ) from None
        files[name] = found.read_text(encoding="utf-8")
    return GatheredConfig(files, tuple(dict.fromkeys(not_sent)))


def _refuse_secrets(node: object, where: str) -> None:
    # A secret written inline would travel to the broker and the hub's database; the agent
    # reads its own (`password_file`, `password_env`), which are names, not secrets.
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}: {key}"
            if isinstance(key, str) and key.lower() in _SECRET_KEYS and value not in (None, ""):
                raise BundleError(
                    f"{here} holds a secret, and secrets are never sent to an agent: remove it "
                    "and give the agent a password_file (or password_env) of its own"
                )
            _refuse_secrets(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _refuse_secrets(item, f"{where}[{index}]")
