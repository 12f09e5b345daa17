"""`edge-agent validate`: exit codes and what a technician sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.cli import app

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "agent.yaml"

BROKEN_PROFILE = """\
profile: my-meter
vendor: Test
model: T1
protocol: modbus
source: test fixture
tags:
  - {name: voltage, table: holding, address: 40001, type: float32}
  - {name: voltage, table: holding, address: 2, type: string}
"""

BROKEN_CONFIG = """\
agent: {id: line3-pc, site: plant-a, line: line-3}
mqtt: {url: "mqtt://127.0.0.1:1883"}
devices:
  - machine: meter-01
    profile: my-meter
    modbus: {host: 127.0.0.1, serial: /dev/ttyUSB0}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_valid_config_exits_0_with_one_line_summary(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLE)], env={"MILLSTREAM_AGENT__ID": None})
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "ok: agent line3-pc (plant-a/line-3), 2 devices, 50 tags, "
        "profiles eastron-sdm630, eastron-sdm120"
    ]


def test_problems_exit_1_and_are_all_listed(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "my-meter.yaml").write_text(BROKEN_PROFILE, encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text(BROKEN_CONFIG, encoding="utf-8")
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].endswith(
        "agent.yaml:6: devices[0].modbus.serial: both host and serial are given"
    )
    assert lines[1].startswith("    hint: Modbus TCP uses host")
    assert lines[2].endswith(
        "my-meter.yaml:7: devices[0].profile my-meter: tags[0].address: "
        "40001 looks like a 4xxxx reference"
    )
    assert lines[3].startswith("    hint: use table: holding, address: 0; ")
    assert "addressing: offset" in lines[3]  # the way out for a map that really lives there
    assert any(
        "my-meter.yaml:8: devices[0].profile my-meter: tags[1].length: type string needs length"
        in line
        for line in lines
    )
    assert any("tags[1].name: duplicate tag name 'voltage'" in line for line in lines)
    assert lines[-1] == f"4 problems found in {config}"


def test_env_override_problem_names_the_variable(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["validate", str(EXAMPLE)], env={"MILLSTREAM_AGENT__SITE": "receipts"}
    )
    assert result.exit_code == 1
    assert result.output.startswith(
        "environment MILLSTREAM_AGENT__SITE: agent.site: site 'receipts' is reserved"
    )


def test_missing_file_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "nope.yaml: file not found" in result.output


def test_help_shows_an_example(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", "--help"])
    assert result.exit_code == 0
    assert "$ edge-agent validate examples/agent.yaml" in result.output
    assert "every problem at once" in result.output


def test_installed_command_runs_as_a_process() -> None:
    # The console script is what technicians type; run the module the way it is installed.
    result = subprocess.run(
        [sys.executable, "-c", "from edge_agent.cli import main; main()", "validate", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: agent line3-pc")


def test_a_config_asking_more_than_one_core_polls_is_valid_but_warned(
    runner: CliRunner, tmp_path: Path
) -> None:
    tags = "\n".join(
        f"  - {{name: r{i}, table: holding, address: {i}, type: uint16}}" for i in range(3000)
    )
    (tmp_path / "fast-plc.yaml").write_text(
        "profile: fast-plc\nvendor: Test\nmodel: T\nprotocol: modbus\nsource: test\n"
        f"defaults: {{poll_ms: 10}}\ntags:\n{tags}\n"
    )
    config = tmp_path / "agent.yaml"
    config.write_text(
        "agent: {id: a, site: s, line: l}\nmqtt: {url: 'mqtt://127.0.0.1:1883'}\ndevices:\n"
        "  - {machine: plc-01, profile: fast-plc, modbus: {host: 127.0.0.1}}\n"
    )
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert "asks for up to 300,000 readings/s" in result.output
    assert "poll less often (poll_ms)" in result.output
    # The shipped example is far below it: one line, no warning (test above).
