"""`station-agent doctor` against a private broker, a GRBL-like device on a pty, and failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import parse_config
from agent.doctor import (
    CheckStatus,
    check_credentials,
    check_gpio,
    check_signing,
    doctor_main,
    run_checks,
)
from agent.emulators.pty import PtyEndpoint
from agent.safety.config import GpioConfig
from agent.signing import SigningConfig, keys_main
from tests.production.pki import make_ca, make_client_cert
from tests.production.tls_broker import TlsFiles, make_tls_files, running_tls_broker
from tests.support.broker import Broker, free_port, running_broker

GRBL_BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
GRBL_IDLE = b"<Idle|MPos:0.000,0.000,0.000|FS:0,0|WCO:0.000,0.000,0.000>\r\n"


async def _answer_like_grbl(device: PtyEndpoint) -> None:
    """A GRBL board that was already running: no banner on open, answers `?` and resets."""
    while True:
        data = await device.receive()
        if b"\x18" in data:
            device.send(GRBL_BANNER)
        if b"?" in data:
            device.send(GRBL_IDLE)


@contextlib.asynccontextmanager
async def fake_grbl(link: Path, *, answer: bool = True) -> AsyncIterator[PtyEndpoint]:
    async with PtyEndpoint(link, baud=None) as device:
        task = asyncio.create_task(_answer_like_grbl(device) if answer else asyncio.sleep(3600))
        try:
            yield device
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task


def write_config(tmp_path: Path, *, port: str, broker_port: int, extra: str = "") -> Path:
    storage = tmp_path / "state"
    storage.mkdir(exist_ok=True)
    path = tmp_path / "agent.toml"
    path.write_text(f"""
station_id = "cutter-01"
profile = "grbl-1.1"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
{extra}

[serial]
port = "{port}"

[storage]
dir = "{storage}"
""")
    return path


async def run_doctor(config: Path, capsys: pytest.CaptureFixture[str], wait_s: float = 3
                     ) -> tuple[int, str]:
    # The doctor is a blocking CLI with its own event loop; the fake device lives on ours.
    argv = ["--config", str(config), "--timeout", str(wait_s)]
    code = await asyncio.to_thread(doctor_main, argv)
    return code, capsys.readouterr().out


def row(report: str, check: str) -> str:
    lines = [line for line in report.splitlines() if line.startswith(check + " ")]
    assert lines, f"no {check!r} row in:\n{report}"
    return lines[0]


@contextlib.asynccontextmanager
async def grbl_emulator(link: Path) -> AsyncIterator[PtyEndpoint]:
    """agent.emulators.grbl: the banner at power-up, `?` answered with a status report."""
    from agent.emulators.grbl import GrblEmulator

    async with PtyEndpoint(link, baud=None) as device:
        task = asyncio.create_task(GrblEmulator(device).run())
        try:
            yield device
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task


@pytest.mark.parametrize("machine", [grbl_emulator, fake_grbl])
async def test_healthy_station_passes(tmp_path: Path, broker: Broker, machine: Any,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    async with machine(tmp_path / "ttyCutter") as device:
        config = write_config(tmp_path, port=device.path, broker_port=broker.port)
        code, report = await run_doctor(config, capsys)
    assert code == 0, report
    assert "ok" in row(report, "serial hello")
    assert "grbl" in row(report, "serial hello")
    assert "MQTT CONNECT accepted" in row(report, f"broker 127.0.0.1:{broker.port}")
    assert "writable" in row(report, "storage")
    # No TLS configured: a warning with a hint, not a failure.
    assert "warn" in row(report, "mqtt tls")
    assert "fix:" in report


async def test_missing_device_fails_with_a_hint(tmp_path: Path, broker: Broker,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, port=str(tmp_path / "ttyUSB-unplugged"),
                          broker_port=broker.port)
    code, report = await run_doctor(config, capsys)
    assert code == 1
    assert "FAIL" in row(report, "serial device")
    assert "does not exist" in row(report, "serial device")
    assert "udev" in report


async def test_unplugged_udev_name_is_reported(tmp_path: Path, broker: Broker,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_grbl(tmp_path / "ttyCutter") as device:
        path = device.path
        device.disconnect()
        (tmp_path / "ttyCutter").symlink_to("/dev/pts/does-not-exist")
        config = write_config(tmp_path, port=path, broker_port=broker.port)
        code, report = await run_doctor(config, capsys)
    assert code == 1
    assert "is gone" in row(report, "serial device")


async def test_silent_device_fails_the_hello(tmp_path: Path, broker: Broker,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_grbl(tmp_path / "ttyCutter", answer=False) as device:
        config = write_config(tmp_path, port=device.path, broker_port=broker.port)
        code, report = await run_doctor(config, capsys, wait_s=1)
    assert code == 1
    assert "FAIL" in row(report, "serial hello")
    assert "baud" in report


async def test_busy_port_says_to_stop_the_agent(tmp_path: Path, broker: Broker,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import serial

    async with fake_grbl(tmp_path / "ttyCutter") as device:
        holder = serial.Serial(device.path, 115200, exclusive=True)
        try:
            config = write_config(tmp_path, port=device.path, broker_port=broker.port)
            code, report = await run_doctor(config, capsys)
        finally:
            holder.close()
    assert code == 1
    assert "FAIL" in row(report, "serial hello")
    assert "systemctl stop station-agent" in report


async def test_broker_down_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_grbl(tmp_path / "ttyCutter") as device:
        config = write_config(tmp_path, port=device.path, broker_port=free_port())
        code, report = await run_doctor(config, capsys)
    assert code == 1
    assert "TCP connect failed" in report
    assert "ok" in row(report, "serial hello")


def test_invalid_config_fails_and_skips_the_rest(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('station_id = "cutter 01"\n[serial]\nbaud = 12\n')
    assert doctor_main(["--config", str(config)]) == 1
    report = capsys.readouterr().out
    assert "FAIL" in row(report, "config")
    assert "serial.baud" in report
    assert "skip" in row(report, "everything else")


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"), ["controller", "cutter-01", "laser-02"])


@pytest.fixture(scope="module")
def tls_broker(tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with running_tls_broker(tls, tmp_path_factory.mktemp("broker")) as b:
        yield b


def tls_section(ca: Path, cert: Path, key: Path) -> str:
    return f"""
[mqtt.tls]
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
"""


async def test_station_certificate_connects_over_tls(
    tmp_path: Path, tls: TlsFiles, tls_broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    async with fake_grbl(tmp_path / "ttyCutter") as device:
        config = write_config(tmp_path, port=device.path, broker_port=tls_broker.port,
                              extra=tls_section(tls.ca_file, tls.cert("cutter-01"),
                                                tls.key("cutter-01")))
        code, report = await run_doctor(config, capsys)
    assert code == 0, report
    assert "TLS" in row(report, f"broker 127.0.0.1:{tls_broker.port}")
    assert "ok" in row(report, "tls key pair")


async def test_certificate_from_another_ca_is_refused(
    tmp_path: Path, tls: TlsFiles, tls_broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = make_client_cert(make_ca("Rogue CA"), "cutter-01").write(tmp_path, "rogue")
    config = write_config(tmp_path, port="/dev/null-serial", broker_port=tls_broker.port,
                          extra=tls_section(tls.ca_file, cert, key))
    code, report = await run_doctor(config, capsys)
    assert code == 1
    broker_row = row(report, f"broker 127.0.0.1:{tls_broker.port}")
    assert "FAIL" in broker_row
    assert "client certificate" in report


async def test_missing_key_file_is_reported_not_a_crash(
    tmp_path: Path, tls: TlsFiles, tls_broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, port="/dev/null-serial", broker_port=tls_broker.port,
                          extra=tls_section(tls.ca_file, tls.cert("cutter-01"),
                                            tmp_path / "station.key"))
    code, report = await run_doctor(config, capsys)
    assert code == 1
    assert "cannot load the TLS files" in row(report, f"broker 127.0.0.1:{tls_broker.port}")
    assert "does not exist" in row(report, "tls key_file")


def test_expired_mismatched_and_missing_tls_files(tmp_path: Path, tls: TlsFiles) -> None:
    past = datetime.now(UTC) - timedelta(days=400)
    expired_cert, _ = make_client_cert(tls.ca, "cutter-01", not_before=past,
                                       not_after=past + timedelta(days=365)).write(tmp_path, "old")
    config = parse_config({
        "station_id": "cutter-01",
        "mqtt": {"tls": {"ca_file": str(tls.ca_file), "cert_file": str(expired_cert),
                         "key_file": str(tls.key("laser-02"))}},
    })
    rows = {r.check: r for r in check_credentials(config)}
    assert rows["tls cert_file"].status is CheckStatus.FAIL
    assert "expired" in rows["tls cert_file"].detail
    assert rows["tls key pair"].status is CheckStatus.FAIL

    wrong_cn = parse_config({
        "station_id": "cutter-01",
        "mqtt": {"tls": {"ca_file": str(tls.ca_file), "cert_file": str(tls.cert("laser-02")),
                         "key_file": str(tmp_path / "nowhere.key")}},
    })
    rows = {r.check: r for r in check_credentials(wrong_cn)}
    assert rows["tls identity"].status is CheckStatus.FAIL
    assert "laser-02" in rows["tls identity"].detail
    assert rows["tls key_file"].status is CheckStatus.FAIL


def test_password_without_tls_is_a_warning() -> None:
    config = parse_config({"station_id": "cutter-01",
                           "mqtt": {"username": "cutter-01", "password": "hunter2"}})
    (only,) = check_credentials(config)
    assert only.status is CheckStatus.WARN
    assert "clear text" in only.detail


# -- signing ------------------------------------------------------------------------------------


def _with_signing(keys_dir: Path, *, allow_untargeted: bool = False) -> object:
    config = parse_config({"station_id": "cutter-01"})
    # The agent config gains its [signing] table in the MQTT-core change; the check reads it.
    object.__setattr__(config, "signing", SigningConfig(enabled=True, public_keys_dir=keys_dir,
                                                        allow_untargeted=allow_untargeted))
    return config


def test_signing_without_trusted_keys_fails(tmp_path: Path) -> None:
    (only,) = check_signing(_with_signing(tmp_path))  # type: ignore[arg-type]
    assert only.status is CheckStatus.FAIL
    assert "keys generate" in only.hint


def test_signing_with_a_trusted_key_passes(tmp_path: Path) -> None:
    assert keys_main(["generate", "--out", str(tmp_path), "--kid", "planner-2026"]) == 0
    (tmp_path / "planner-2026.key").unlink()  # a station holds public keys only
    (only,) = check_signing(_with_signing(tmp_path))  # type: ignore[arg-type]
    assert only.status is CheckStatus.OK
    assert "planner-2026" in only.detail


def test_signing_that_accepts_untargeted_jobs_warns(tmp_path: Path) -> None:
    """A signature naming no station replays to every station trusting the key: doctor says so."""
    assert keys_main(["generate", "--out", str(tmp_path), "--kid", "planner-2026"]) == 0
    keys, target = check_signing(_with_signing(tmp_path, allow_untargeted=True))  # type: ignore[arg-type]
    assert keys.status is CheckStatus.OK
    assert target.status is CheckStatus.WARN
    assert "--station" in target.hint


# -- GPIO --------------------------------------------------------------------------------------


def _with_gpio(serial_port: str, gpio: dict[str, object]) -> object:
    config = parse_config({"station_id": "cutter-01", "serial": {"port": serial_port}})
    # The agent config gains its [gpio] table in the MQTT-core change; the check reads it.
    object.__setattr__(config, "gpio", GpioConfig.model_validate(gpio))
    return config


def test_gpio_pins_are_checked_against_the_header(tmp_path: Path) -> None:
    chip = tmp_path / "gpiochip0"
    chip.write_text("")
    config = _with_gpio("/dev/serial0", {"estop": {"pin": 17}, "door": {"pin": 14},
                                         "light_red": {"pin": 2}, "buzzer": {"pin": 40}})
    rows = {r.check: r for r in check_gpio(config, chips=[chip])}  # type: ignore[arg-type]
    assert rows["gpio estop"].status is CheckStatus.OK
    assert rows["gpio door"].status is CheckStatus.FAIL  # the UART the machine is on
    assert rows["gpio light_red"].status is CheckStatus.WARN  # I2C pull-up
    assert rows["gpio buzzer"].status is CheckStatus.FAIL  # not on the header
    assert rows["gpio chip"].status is CheckStatus.OK


def test_gpio_without_a_chip_fails(tmp_path: Path) -> None:
    config = _with_gpio("/dev/ttyUSB0", {"estop": {"pin": 17}})
    rows = {r.check: r for r in check_gpio(config, chips=[])}  # type: ignore[arg-type]
    assert rows["gpio chip"].status is CheckStatus.FAIL


def test_no_gpio_is_skipped(tmp_path: Path) -> None:
    config = parse_config({"station_id": "cutter-01"})
    (only,) = check_gpio(config, chips=[])
    assert only.status is CheckStatus.SKIP


def test_run_checks_lists_every_area(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=str(tmp_path / "none"), broker_port=free_port())
    checks = {r.check.split()[0] for r in run_checks(config, timeout_s=1)}
    assert {"config", "profile", "serial", "broker", "mqtt", "signing", "storage", "disk",
            "gpio"} <= checks


async def test_tls_to_a_plain_port_says_so(tmp_path: Path, tls: TlsFiles, broker: Broker,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, port="/dev/null-serial", broker_port=broker.port,
                          extra=tls_section(tls.ca_file, tls.cert("cutter-01"),
                                            tls.key("cutter-01")))
    code, report = await run_doctor(config, capsys)
    assert code == 1
    assert "TLS handshake" in row(report, f"broker 127.0.0.1:{broker.port}")
    assert "plain MQTT port" in report


async def test_refused_login_points_at_the_credentials(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    (tmp_path / "broker").mkdir()
    with running_broker(tmp_path / "broker", anonymous=False) as strict:
        config = write_config(tmp_path, port="/dev/null-serial", broker_port=strict.port,
                              extra='username = "cutter-01"\npassword = "not-this-one"')
        code, report = await run_doctor(config, capsys)
    assert code == 1
    assert "refused the connection" in row(report, f"broker 127.0.0.1:{strict.port}")
    assert "check [mqtt] username/password" in report


DYNSEC_DENY_JOBS = {
    "defaultACLAccess": {"publishClientSend": True, "publishClientReceive": True,
                         "subscribe": True, "unsubscribe": True},
    "clients": [], "groups": [{"groupname": "anonymous", "roles": [{"rolename": "no-jobs"}]}],
    "roles": [{"rolename": "no-jobs", "acls": [
        {"acltype": "subscribePattern", "topic": "mf/+/job", "allow": False}]}],
    "anonymousGroup": "anonymous",
}


def _dynsec_plugins() -> list[Path]:
    return sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so"))


async def test_refused_subscriptions_fail_the_broker_row(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    # Mosquitto's acl_file filters at delivery; its dynamic-security plugin refuses the
    # SUBSCRIBE itself (0x87), as other brokers do: the agent would then get no jobs.
    plugins = _dynsec_plugins()
    if not plugins:
        pytest.skip("mosquitto's dynamic security plugin is not installed")
    workdir = tmp_path / "broker"
    workdir.mkdir()
    (workdir / "dynsec.json").write_text(json.dumps(DYNSEC_DENY_JOBS))
    with running_broker(workdir, extra_conf=f"plugin {plugins[0]}\n"
                        f"plugin_opt_config_file {workdir / 'dynsec.json'}") as strict:
        config = write_config(tmp_path, port="/dev/null-serial", broker_port=strict.port)
        code, report = await run_doctor(config, capsys)
    assert code == 1
    broker_row = row(report, f"broker 127.0.0.1:{strict.port}")
    assert "refused the subscription to mf/cutter-01/job (0x87)" in broker_row
    assert "mf/cutter-01/cmd" not in broker_row
    assert "ACL" in report
