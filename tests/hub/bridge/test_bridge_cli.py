"""`kafka init` / `kafka-relay` command line and the bridge config sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from bridgetest import kafka_config
from typer.testing import CliRunner

from hub.cli import app
from hub.config import load_config
from hub.errors import ConfigError


def test_kafka_needs_postgresql_and_sections_are_optional(tmp_path: Path) -> None:
    assert load_config(None, {}).kafka is None
    assert load_config(None, {}).redis is None
    with pytest.raises(ConfigError, match="needs PostgreSQL"):
        load_config(None, {"MILLSTREAM_KAFKA__BOOTSTRAP": "127.0.0.1:9092"})
    cfg = load_config(
        None,
        {
            "MILLSTREAM_STORAGE": "postgresql://u@127.0.0.1:5432/db",
            "MILLSTREAM_KAFKA__BOOTSTRAP": "k1:9092,k2:9092",
            "MILLSTREAM_REDIS__URL": "redis://127.0.0.1:6379/0",
        },
    )
    assert cfg.kafka is not None
    assert cfg.kafka.transactional_id == "millstream-relay"
    assert cfg.redis is not None
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap"):
        load_config(
            None,
            {"MILLSTREAM_STORAGE": "postgresql://u@h/db", "MILLSTREAM_KAFKA__BOOTSTRAP": "nope"},
        )


def test_kafka_init_creates_topics_once_and_relay_refuses_without_them(
    kafka: Any, pg_dsn: str, tmp_path: Path
) -> None:
    cfg = kafka_config(kafka.bootstrap)
    config = tmp_path / "hub.yaml"
    config.write_text(
        yaml.safe_dump({"storage": pg_dsn, "kafka": cfg.model_dump(exclude_none=True)})
    )
    runner = CliRunner()
    missing = runner.invoke(app, ["kafka-relay", "--config", str(config)])
    assert missing.exit_code == 1
    first = runner.invoke(app, ["kafka", "init", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert f"{cfg.telemetry_topic}: created" in first.output
    again = runner.invoke(app, ["kafka", "init", "--config", str(config)])
    assert f"{cfg.state_topic}: exists" in again.output

    plain = tmp_path / "plain.yaml"
    plain.write_text("storage: sqlite:///x.db\n")
    no_kafka = runner.invoke(app, ["kafka", "init", "--config", str(plain)])
    assert no_kafka.exit_code == 1
    assert "no `kafka:` section" in no_kafka.output
