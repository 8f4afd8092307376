"""The shipped unit checked by systemd's own tools (no running systemd needed)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "station-agent.service"
KEEPER_UNIT = REPO / "systemd" / "station-agent-pool-keeper.service"
SHIPPED_EXEC = "/opt/station-agent/venv/bin/station-agent"
ANALYZE = shutil.which("systemd-analyze")

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


def unit_with_existing_exec(tmp_path: Path, text: str | None = None, unit: Path = UNIT) -> Path:
    """A copy of the unit whose ExecStart is an executable that exists (verify checks it)."""
    exe = tmp_path / "bin" / "station-agent"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    source = unit.read_text() if text is None else text
    assert f"ExecStart={SHIPPED_EXEC} " in source
    copy = tmp_path / unit.name
    copy.write_text(source.replace(f"ExecStart={SHIPPED_EXEC} ", f"ExecStart={exe} "))
    return copy


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)


@needs_analyze
def test_verify_prints_nothing(tmp_path: Path) -> None:
    result = verify(unit_with_existing_exec(tmp_path))
    assert result.returncode == 0
    assert result.stdout + result.stderr == ""


@needs_analyze
def test_pool_keeper_unit_verifies_and_is_locked_down(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = unit_with_existing_exec(tmp_path, unit=KEEPER_UNIT)
    result = verify(unit)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    security = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", str(unit)],
                              capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert match, security.stdout + security.stderr
    assert float(match.group(1)) <= 2.0, security.stdout


@needs_analyze
def test_verify_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    # verify exits 0 on unknown keys; this is why the test above checks the output.
    broken = UNIT.read_text().replace("WatchdogSec=", "WatchdogSecs=")
    result = verify(unit_with_existing_exec(tmp_path, broken))
    assert "WatchdogSecs" in result.stdout + result.stderr


@needs_analyze
def test_security_exposure_is_2_or_better(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = unit_with_existing_exec(tmp_path)
    result = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def service_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key}", []).append(value)
    return settings


def test_unit_has_what_the_agent_relies_on() -> None:
    s = service_settings()
    assert s["Service.Type"] == ["notify"]
    assert s["Service.Restart"] == ["on-failure"]
    assert s["Service.WatchdogSec"]
    assert s["Service.User"] == ["station-agent"]
    assert set(s["Service.SupplementaryGroups"][0].split()) >= {"dialout", "gpio"}
    for key in ("StateDirectory", "ConfigurationDirectory", "RuntimeDirectory"):
        assert s[f"Service.{key}"] == ["station-agent"]
    assert s["Service.DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in s["Service.DeviceAllow"]}
    assert {"char-ttyUSB", "char-ttyACM", "char-gpiochip"} <= allowed
    assert "LG_WD=/run/station-agent" in s["Service.Environment"]
    # gpiozero reads /proc to detect the board: the /proc subset must stay whole.
    assert "Service.ProcSubset" not in s
    # The network is wanted, never required: a broker down at boot must not block the start.
    assert "Unit.Requires" not in s
    assert s["Install.WantedBy"] == ["multi-user.target"]


def test_unit_parses_as_ini() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())
    assert parser.sections() == ["Unit", "Service", "Install"]
