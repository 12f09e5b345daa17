"""The agent's exception tree: one root, one class per thing the caller does next."""

from __future__ import annotations

import pytest

from edge_agent import errors
from edge_agent.errors import (
    ConfigError,
    ConfigProblem,
    DecodeError,
    DeviceUnavailable,
    MillstreamAgentError,
    PublishError,
)


@pytest.mark.parametrize("cls", [ConfigError, DeviceUnavailable, DecodeError, PublishError])
def test_every_error_has_the_one_root(cls: type[Exception]) -> None:
    assert issubclass(cls, MillstreamAgentError)
    assert cls.__name__ in (errors.__doc__ or "")  # the tree in the docstring stays complete


def test_config_error_carries_every_problem() -> None:
    problems = [
        ConfigProblem("agent.yaml", "mqtt.url", "required key 'url' is missing", "add url", 2),
        ConfigProblem("p.yaml", "devices[0].profile p: tags[0].address", "40001 looks odd"),
    ]
    error = ConfigError(problems)
    assert error.problems == tuple(problems)
    assert str(error).splitlines() == [
        "2 configuration problems",
        "  agent.yaml:2: mqtt.url: required key 'url' is missing (hint: add url)",
        "  p.yaml: devices[0].profile p: tags[0].address: 40001 looks odd",
    ]


def test_device_and_decode_errors_name_what_failed_and_chain() -> None:
    cause = TimeoutError("no answer in 1000 ms")
    with pytest.raises(DeviceUnavailable) as info:
        raise DeviceUnavailable("timed out", device="meter-01") from cause
    assert str(info.value) == "meter-01: timed out"
    assert info.value.device == "meter-01"
    assert info.value.__cause__ is cause
    assert str(DecodeError("NaN", point="voltage_l1")) == "voltage_l1: NaN"
    assert str(DecodeError("bad")) == "bad"
