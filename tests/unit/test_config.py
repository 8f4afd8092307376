from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.errors import ConfigError
from agent.profiles import load_profile

EXAMPLE = """
station_id = "cutter-01"
profile = "grbl-1.1"
[mqtt]
host = "127.0.0.1"
port = 1883
topic_prefix = "mf"
[serial]
port = "/dev/ttyUSB0"
baud = 115200
[storage]
dir = "/var/lib/station-agent"
"""


def test_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(EXAMPLE)
    cfg = load_config(path)
    assert cfg.station_id == "cutter-01"
    assert cfg.mqtt.max_payload_bytes == 16 * 1024 * 1024
    assert cfg.serial.baud == 115200


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(EXAMPLE.replace('port = 1883', 'port = 1883\nhots = "x"'))
    with pytest.raises(ConfigError, match=r"mqtt\.hots"):
        load_config(path)


def test_bad_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(EXAMPLE.replace('"cutter-01"', '"cutter 01!"'))
    with pytest.raises(ConfigError, match="station_id"):
        load_config(path)


def test_profile_unknown_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    text = (Path(__file__).parents[2] / "firmware_profiles" / "grbl-1.1.toml").read_text()
    path.write_text(text.replace("[grbl]", "[grbl]\nbuffer_size = 3"))
    with pytest.raises(ConfigError, match=r"grbl\.buffer_size"):
        load_profile(str(path))


def test_every_shipped_profile_loads() -> None:
    for path in sorted((Path(__file__).parents[2] / "firmware_profiles").glob("*.toml")):
        profile = load_profile(str(path))
        assert profile.name == path.stem
