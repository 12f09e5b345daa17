"""MILLSTREAM_… overrides, as the agent and the hub both apply them (millstream_common.config)."""

from __future__ import annotations

from millstream_common.config import apply_env_overrides


def test_overrides_set_keys_switch_sections_off_and_refuse_to_write_a_section() -> None:
    data = {"mqtt": {"url": "mqtt://a"}, "kafka": {"bootstrap": "k:9092"}, "devices": [{"x": 1}]}
    env = {
        "MILLSTREAM_MQTT__URL": "mqtts://b:8883",
        "MILLSTREAM_FLUSH_MS": "100",
        "MILLSTREAM_KAFKA": "null",
        "MILLSTREAM_DEVICES__0__X": "2",
        "MILLSTREAM_PROFILE_PATH": "/opt/profiles",  # not a config key: left alone
    }
    keys = {"mqtt", "kafka", "flush_ms", "devices"}
    out, origins, problems = apply_env_overrides(data, env, keys)
    assert problems == []
    assert out == {
        "mqtt": {"url": "mqtts://b:8883"},
        "kafka": None,
        "flush_ms": 100,
        "devices": [{"x": 2}],
    }
    assert origins[("mqtt", "url")] == "MILLSTREAM_MQTT__URL"
    assert data["kafka"] == {"bootstrap": "k:9092"}  # the caller's document is not changed

    _, _, problems = apply_env_overrides(
        data, {"MILLSTREAM_MQTT": "x", "MILLSTREAM_DEVICES__3__X": "1"}, keys
    )
    assert [p.path for p in problems] == ["devices[3].x", "mqtt"]
    assert "a variable sets one key of it" in str(problems[1])
    assert "there is no [3]" in problems[0].message
