"""scripts/install.sh into a throwaway root: install, again (idempotent), uninstall, purge.

Never creates users or enables real units (``--root``), never reaches the network
(``--no-venv``, or ``--wheel-dir`` with a wheel built here).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agent.config import load_config

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "scripts" / "install.sh"


def install(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), *map(str, args)], capture_output=True,
                            text=True, timeout=300, check=False)


def ok(*args: str | Path) -> str:
    result = install(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def tree(root: Path) -> dict[str, str]:
    """Every path under root with what it is (file digest, link target, dir)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = f"dir {p.stat().st_mode & 0o777:o}"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()[:16] + \
                    f" {p.stat().st_mode & 0o777:o}"
    return out


def test_install_twice_then_uninstall(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    args = ("--root", root, "--no-venv", "--station-id", "cutter-01",
            "--broker", "mqtt.factory.lan", "--profile", "grbl-knife")
    first = ok(*args)
    assert "installed" in first

    unit = root / "etc/systemd/system/station-agent.service"
    assert unit.read_bytes() == (REPO / "systemd/station-agent.service").read_bytes()
    wants = root / "etc/systemd/system/multi-user.target.wants/station-agent.service"
    assert os.readlink(wants) == "../station-agent.service"
    config_path = root / "etc/station-agent/agent.toml"
    assert config_path.stat().st_mode & 0o777 == 0o640
    config = load_config(config_path)
    assert config.station_id == "cutter-01"
    assert config.profile == "grbl-knife"
    assert config.mqtt.host == "mqtt.factory.lan"
    assert config.mqtt.tls is not None
    assert (root / "opt/station-agent/docs/deployment-pi.md").is_file()
    assert (root / "opt/station-agent/share/udev/99-station-agent-serial.rules.example").is_file()
    assert (root / "etc/station-agent/keys").is_dir()

    # The operator edits the config; a second run changes nothing, the edit included.
    config_path.write_text(config_path.read_text().replace("grbl-knife", "grbl-laser"))
    before = tree(root)
    second = ok(*args)
    assert "nothing changed" in second
    assert tree(root) == before

    removed = ok("--root", root, "--uninstall")
    assert not unit.exists()
    assert not wants.is_symlink()
    assert not (root / "opt/station-agent").exists()
    assert "grbl-laser" in config_path.read_text()  # configuration kept
    assert "kept" in removed
    assert "nothing to remove" in ok("--root", root, "--uninstall")

    ok("--root", root, "--uninstall", "--purge")
    assert not (root / "etc/station-agent").exists()


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    out = ok("--root", tmp_path, "--no-venv", "--dry-run", "--station-id", "laser-02")
    assert "would run" in out
    assert "station-agent.service" in out
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    result = install("--root", tmp_path, "--frobnicate")
    assert result.returncode == 2
    assert "--frobnicate" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_root_directory_is_refused(tmp_path: Path) -> None:
    result = install("--root", tmp_path / "nowhere", "--no-venv")
    assert result.returncode == 2
    assert "no such directory" in result.stderr


def build_wheel(out: Path) -> Path:
    """A wheel of the agent package without dependencies: enough for pip to install offline."""
    dist = "station_agent-0.1.0.dist-info"
    files: dict[str, bytes] = {
        f"agent/{p.relative_to(REPO / 'agent')}": p.read_bytes()
        for p in sorted((REPO / "agent").rglob("*.py"))
    }
    files[f"{dist}/METADATA"] = b"Metadata-Version: 2.1\nName: station-agent\nVersion: 0.1.0\n"
    files[f"{dist}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: station-agent-tests\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{dist}/entry_points.txt"] = b"[console_scripts]\nstation-agent = agent.cli:main\n"
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / "station_agent-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel


@pytest.mark.timeout(300)
def test_venv_from_a_wheel_dir_offline(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    wheels = tmp_path / "wheels"
    build_wheel(wheels)
    args = ("--root", root, "--wheel-dir", wheels, "--python", sys.executable,
            "--station-id", "plotter-03")
    ok(*args)
    venv = root / "opt/station-agent/venv"
    assert (venv / "bin/station-agent").is_file()
    version = subprocess.run([str(venv / "bin/python"), "-c",
                              "import agent, sys; print(agent.__version__, sys.prefix)"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    assert version.split() == ["0.1.0", str(venv)]
    # Not the system interpreter's site-packages: the venv is isolated (PEP 668).
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()

    cfg_stat = (venv / "pyvenv.cfg").stat()
    assert "nothing changed" in ok(*args)
    assert (venv / "pyvenv.cfg").stat().st_mtime_ns == cfg_stat.st_mtime_ns  # not recreated

    ok("--root", root, "--uninstall")
    assert not venv.exists()
