"""Whatever a file contains, loading it gives a valid config or a ConfigError, nothing else."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config import load_agent_config
from edge_agent.errors import ConfigError, ConfigProblem

KEYS = st.sampled_from(
    [
        "agent", "mqtt", "buffer", "devices", "id", "site", "line", "url", "path", "max_bytes",
        "max_age", "machine", "profile", "modbus", "opcua", "host", "serial", "port", "unit",
        "baudrate", "parity", "stopbits", "bytesize", "timeout_ms", "tags", "name", "table",
        "address", "type", "bit", "order", "length", "protocol", "x",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(string.printable, max_size=12),
    st.sampled_from(["1GiB", "7d", "agents", "holding", "float32", "eastron-sdm630", "ABCD"]),
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)


def _problems(path: Path, env: dict[str, str]) -> list[ConfigProblem] | None:
    try:
        load_agent_config(path, env=env)
    except ConfigError as exc:
        return list(exc.problems)
    return None


def _check(text: str, env: dict[str, str] | None = None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "agent.yaml"
        path.write_text(text, encoding="utf-8")
        problems = _problems(path, env or {})
    if problems is not None:
        assert problems, "a ConfigError always lists at least one problem"
        for problem in problems:
            assert problem.message
            assert str(problem)


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(DATA)
def test_arbitrary_yaml_data_gives_config_or_config_error(data: Any) -> None:
    _check(yaml.safe_dump(data))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_gives_config_or_config_error(text: str) -> None:
    _check(text)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(
            r"MILLSTREAM_(AGENT|MQTT|BUFFER|DEVICES)(__[A-Z0-9_]{0,6}){1,3}", fullmatch=True
        ),
        st.text(string.printable, max_size=10),
        max_size=4,
    )
)
def test_arbitrary_overrides_give_config_or_config_error(env: dict[str, str]) -> None:
    text = Path(__file__).resolve().parents[3].joinpath("examples", "agent.yaml").read_text()
    _check(text, env)


TAGS = st.lists(
    st.dictionaries(
        st.sampled_from(
            ["name", "table", "address", "type", "length", "order", "bit", "scale", "offset",
             "unit", "deadband", "poll_ms", "node", "browse_path", "mode", "x"]
        ),
        st.one_of(
            SCALARS,
            st.sampled_from(["t", "holding", "coil", "input", "bool", "string", "int16", "uint64"]),
            st.integers(min_value=-2, max_value=70000),
        ),
        max_size=8,
    ),
    max_size=5,
)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["modbus", "opcua", "x"]), TAGS)
def test_arbitrary_profile_gives_config_or_config_error(protocol: str, tags: list[Any]) -> None:
    profile = {
        "profile": "p",
        "vendor": "v",
        "model": "m",
        "protocol": protocol,
        "source": "s",
        "tags": tags,
    }
    config = {
        "agent": {"id": "a", "site": "s", "line": "l"},
        "mqtt": {"url": "mqtt://h"},
        "devices": [{"machine": "m", "profile": "p.yaml", "modbus": {"host": "h"}}],
    }
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "p.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
        path = Path(folder) / "agent.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        problems = _problems(path, {})
    for problem in problems or []:
        assert problem.message
