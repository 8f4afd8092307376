"""``station-agent doctor``: check a station's set-up and say how to fix what is wrong.

Each check returns :class:`CheckResult` rows (ok, warn, fail or skip) with a fix hint for
anything not ok; the report is a table, and the exit status is 1 if any row failed.

Checks, in order: the config file and the firmware profile; the serial device (present,
permissions, opens, answers its firmware's hello); every broker address (an MQTT CONNECT with
the station's TLS files and login, through the agent's own TLS context builder and
:class:`~agent.link.mqtt_client.MqttConnection`, so the doctor cannot pass where the agent
fails; what failed is told by the error's type, never by its text); the TLS and login
settings themselves; signed-job keys (when required); storage (writable, free space); the
database (readable, not damaged, writable, and whether an agent holds it); GPIO pins. Run it
with the agent stopped (``systemctl stop station-agent``): the serial port is opened
exclusively.

The serial hello is the family driver's own handshake (``MachineDriver.open()``: a GRBL banner
or ``?`` status report, and so on), so the doctor checks exactly what the agent will do. A family
whose hello needs something else gives a ``serial_probe`` in its :mod:`agent.families` record.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import grp
import os
import pwd
import shutil
import sqlite3
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.config import AgentConfig, load_config
from agent.drivers.base import QuietListener
from agent.errors import (
    BrokerNoConnack,
    BrokerRefused,
    BrokerUnreachable,
    DeviceError,
    MqttConnectError,
    MqttError,
    SerialPortUnavailable,
    StationAgentError,
    SubscriptionRefused,
    TlsError,
    TlsStep,
)
from agent.families import create_driver, find_family, serial_handshake
from agent.instance_lock import holder_pid
from agent.migrations import AGENT_MIGRATIONS, UNVERSIONED, latest
from agent.profiles import Profile, load_profile
from agent.storage import storage_error

DEFAULT_TIMEOUT_S = 5.0
# Free space below this beyond the outbox cap is a failure; below 4x it a warning.
MIN_SPARE_BYTES = 50 * 1024 * 1024
CERT_EXPIRY_WARN = timedelta(days=30)
SYSTEMD_STATE_DIR = Path("/var/lib/station-agent")


class CheckStatus(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: CheckStatus
    detail: str
    hint: str = ""


def _ok(check: str, detail: str) -> CheckResult:
    return CheckResult(check, CheckStatus.OK, detail)


def _warn(check: str, detail: str, hint: str) -> CheckResult:
    return CheckResult(check, CheckStatus.WARN, detail, hint)


def _fail(check: str, detail: str, hint: str) -> CheckResult:
    return CheckResult(check, CheckStatus.FAIL, detail, hint)


def _skip(check: str, detail: str) -> CheckResult:
    return CheckResult(check, CheckStatus.SKIP, detail)


# -- config and profile ------------------------------------------------------------------------


def check_config(path: Path) -> tuple[CheckResult, AgentConfig | None]:
    try:
        config = load_config(path)
    except StationAgentError as exc:
        return _fail("config", exc.message,
                     "fix the key named above; every key is described in docs/deployment-pi.md"
                     ), None
    return _ok("config", f"{path}: station {config.station_id}"), config


def check_profile(config: AgentConfig) -> tuple[CheckResult, Profile | None]:
    try:
        profile = load_profile(config.profile)
    except StationAgentError as exc:
        return _fail("profile", exc.message,
                     "set `profile` to a shipped profile name or a readable TOML file"), None
    return _ok("profile", f"{profile.name} ({profile.family}, {profile.baud} baud)"), profile


# -- serial device -----------------------------------------------------------------------------


async def driver_hello(path: str, baud: int, profile: Profile, timeout_s: float) -> str:
    """Open the port as the agent does and run the family driver's handshake."""
    from agent.transport.serial_port import SerialLink

    rtscts, xonxoff = serial_handshake(profile)
    link = await SerialLink.open(path, baud, rtscts=rtscts, xonxoff=xonxoff)
    try:
        quick = profile.model_copy(update={"hello_timeout_s": timeout_s})
        try:
            driver = create_driver(quick, link, QuietListener())
        except NotImplementedError:
            return f"opened at {baud} baud (no {profile.family} driver to say hello)"
        info = await wait_within(driver.open(), timeout_s + 2)
        return f"answered: {info.firmware} {info.version}".rstrip()
    finally:
        await link.close()


def check_serial(config: AgentConfig, profile: Profile | None, timeout_s: float
                 ) -> list[CheckResult]:
    path = config.serial.port
    results: list[CheckResult] = []
    if not os.path.lexists(path):
        return [_fail("serial device", f"{path} does not exist",
                      "plug in the machine's USB adapter and switch the machine on; list "
                      "adapters with `ls -l /dev/serial/by-id/`; give it a stable name with "
                      "udev/99-station-agent-serial.rules.example")]
    if not os.path.exists(path):
        target = os.readlink(path)
        return [_fail("serial device", f"{path} points to {target}, which is gone",
                      "the adapter was unplugged or renumbered: replug it, or fix the udev rule")]
    st = os.stat(path)
    if not stat.S_ISCHR(st.st_mode):
        return [_fail("serial device", f"{path} is not a character device",
                      "[serial] port must name the tty of the adapter, e.g. /dev/ttyUSB0")]
    results.append(_ok("serial device", f"{path} -> {os.path.realpath(path)}"))
    if not os.access(path, os.R_OK | os.W_OK):
        owner = _group_name(st.st_gid)
        results.append(_fail(
            "serial permissions",
            f"{_user_name()} cannot read and write {path} (group {owner}, mode "
            f"{stat.filemode(st.st_mode)})",
            f"add the agent's user to group {owner}: `sudo usermod -aG {owner} station-agent` "
            "(and run the doctor as that user: `sudo -u station-agent station-agent doctor ...`)",
        ))
        return results
    results.append(_ok("serial permissions", f"read/write as {_user_name()}"))
    if profile is None:
        results.append(_skip("serial hello", "no valid profile"))
        return results
    baud = config.serial.baud or profile.baud
    family = find_family(profile.family)
    probe = (family.serial_probe if family is not None else None) or driver_hello
    timeout = min(timeout_s, profile.hello_timeout_s)
    try:
        said = asyncio.run(probe(path, baud, profile, timeout))
    except (DeviceError, TimeoutError) as exc:
        message = exc.message if isinstance(exc, StationAgentError) else "no answer"
        if isinstance(exc, SerialPortUnavailable):
            hint = ("another program holds the port: stop the agent (`sudo systemctl stop "
                    "station-agent`) or the sender using it, then run the doctor again")
        else:
            hint = (f"check that the machine is on and the cable is the right one; the port is "
                    f"opened at {baud} baud: set [serial] baud if the firmware uses another rate")
        results.append(_fail("serial hello", message, hint))
        return results
    results.append(_ok("serial hello", said))
    return results


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# -- broker ------------------------------------------------------------------------------------


async def _connect_once(config: AgentConfig, host: str, port: int, timeout_s: float) -> str:
    from agent.link.mqtt_client import ConnectOptions, MqttConnection
    from agent.link.session import subscribe_all, tls_context
    from agent.link.topics import StationTopics

    mqtt = config.mqtt
    tls = tls_context(mqtt)
    # Never the agent's own client id: that would take over its persistent session.
    options = ConnectOptions(host=host, port=port, client_id=f"{config.station_id}-doctor",
                             keepalive_s=max(5, int(timeout_s) * 2), clean_start=True,
                             session_expiry_s=0, username=mqtt.username, password=mqtt.password,
                             tls=tls, connect_timeout_s=timeout_s)
    topics = StationTopics(mqtt.topic_prefix, config.station_id).subscriptions(
        pools=bool(config.pools))
    async with MqttConnection(options, lambda message: None) as conn:
        # The agent's own subscriptions: a broker ACL that refuses them fails the agent too.
        await subscribe_all(conn, topics)
    how = "TLS" if tls is not None else "plain TCP"
    who = f" as {mqtt.username}" if mqtt.username else ""
    return f"MQTT CONNECT accepted ({how}{who}), {len(topics)} subscriptions accepted"


def mqtt_connect(config: AgentConfig, host: str, port: int, timeout_s: float) -> str:
    """One MQTT 5 CONNECT with the station's credentials, through the agent's own TLS context
    builder and connection class; returns a description, raises :class:`MqttConnectError`
    (its subclass says which step failed)."""
    return asyncio.run(_connect_once(config, host, port, timeout_s))


def check_brokers(config: AgentConfig, timeout_s: float) -> list[CheckResult]:
    rows: list[CheckResult] = []
    for addr in config.mqtt.brokers:
        name = f"broker {addr.host}:{addr.port}"
        try:
            rows.append(_ok(name, mqtt_connect(config, addr.host, addr.port, timeout_s)))
        except MqttConnectError as exc:
            rows.append(_fail(name, exc.message, connect_hint(exc, config)))
        except SubscriptionRefused as exc:
            rows.append(_fail(name, exc.message, "the broker's ACL does not let this station "
                              "read its own topics: the station id must be the certificate's "
                              "CN or the username, as the acl_file's patterns expect "
                              "(deploy/mosquitto/station-agent.acl)"))
        except MqttError as exc:
            rows.append(_fail(name, exc.message, "the broker accepted the connection but did "
                              "not answer in time: check its log (journalctl -u mosquitto)"))
    failed = [r for r in rows if r.status is CheckStatus.FAIL]
    if failed and len(failed) < len(rows):
        # A fallback answers: the station works, degraded.
        rows = [_warn(r.check, r.detail, r.hint) if r.status is CheckStatus.FAIL else r
                for r in rows]
    return rows


_CLIENT_CERT_HINT = ("the broker dropped the connection: it did not accept the client "
                     "certificate (signed by another CA, expired, or none given)")
_PLAIN_PORT_HINT = ("TLS to a plain MQTT port: use the broker's TLS port (8883) or remove "
                    "[mqtt.tls]")


def connect_hint(exc: MqttConnectError, config: AgentConfig) -> str:
    """What to do about a failed connect, chosen by the error's type and fields."""
    if isinstance(exc, BrokerUnreachable):
        return ("is the broker running (`systemctl status mosquitto` on its host)? check "
                "[mqtt] host/port, the network and any firewall")
    if isinstance(exc, TlsError):
        return _tls_hint(exc)
    if isinstance(exc, BrokerRefused):
        if exc.reason_code in (BrokerRefused.BAD_CREDENTIALS, BrokerRefused.NOT_AUTHORIZED):
            return "the broker refused these credentials: check [mqtt] username/password"
        if exc.reason_code == BrokerRefused.CLIENT_ID_NOT_VALID:
            return "the broker refused the client id: check station_id against its ACL"
    if isinstance(exc, BrokerNoConnack):
        if not exc.closed:
            return ("the port accepted TCP but nothing answered the MQTT CONNECT: is it the "
                    "broker's port? check the broker's log (journalctl -u mosquitto)")
        if config.mqtt.tls is None:
            return ("the broker dropped the connection: it may expect TLS (port 8883) - "
                    "configure [mqtt.tls]")
        return _CLIENT_CERT_HINT
    return "check the broker's log (journalctl -u mosquitto) for why it refused the client"


def _tls_hint(exc: TlsError) -> str:
    if exc.step is TlsStep.LOAD_FILES:
        return "fix the [mqtt.tls] files named in the tls rows"
    if exc.step is TlsStep.VERIFY_BROKER:
        return ("the broker's certificate is not signed by [mqtt.tls] ca_file or does not name "
                "[mqtt] host; use the broker's DNS name or set check_hostname = false for a lab "
                "broker addressed by IP")
    # OpenSSL's reason: a plain listener answers a ClientHello with MQTT bytes, or hangs up.
    if exc.reason in (None, "WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING"):
        return _PLAIN_PORT_HINT
    return _CLIENT_CERT_HINT


# -- TLS files and login -----------------------------------------------------------------------


def check_credentials(config: AgentConfig, now: datetime | None = None) -> list[CheckResult]:
    mqtt = config.mqtt
    when = now or datetime.now(UTC)
    rows: list[CheckResult] = []
    if mqtt.password is not None and mqtt.username is None:
        rows.append(_fail("mqtt login", "password set without username",
                          "set [mqtt] username (the station id) or remove the password"))
    if mqtt.tls is None:
        if mqtt.password is not None:
            rows.append(_warn("mqtt tls", "password sent in clear text: no [mqtt.tls]",
                              "configure [mqtt.tls] ca_file (and the broker's TLS listener)"))
        else:
            rows.append(_warn("mqtt tls", "no [mqtt.tls]: traffic is neither encrypted nor "
                              "authenticated", "see docs/deployment-pi.md, 'Broker security'"))
        return rows
    tls = mqtt.tls
    files = {"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file}
    if tls.key_file is not None and tls.cert_file is None:
        rows.append(_fail("tls key_file", "key_file without cert_file",
                          "set [mqtt.tls] cert_file to the station's certificate"))
    readable: dict[str, Path] = {}
    for key, path in files.items():
        if path is None:
            continue
        if not path.is_file():
            rows.append(_fail(f"tls {key}", f"{path} does not exist",
                              f"copy the file there or fix [mqtt.tls] {key}"))
        elif not os.access(path, os.R_OK):
            rows.append(_fail(f"tls {key}", f"{path} is not readable by {_user_name()}",
                              f"`sudo chown root:station-agent {path} && sudo chmod 0640 {path}`"))
        else:
            readable[key] = path
    if "key_file" in readable:
        mode = readable["key_file"].stat().st_mode
        if mode & 0o004:
            rows.append(_warn("tls key_file", f"{readable['key_file']} is world-readable",
                              f"`sudo chmod 0640 {readable['key_file']}`"))
    try:
        from cryptography import x509
    except ImportError:
        rows.append(_skip("tls certificates", "install 'cryptography' to check expiry"))
        return rows
    for key in ("ca_file", "cert_file"):
        if key in readable:
            rows.extend(_check_cert(key, readable[key], when, config, x509))
    if "cert_file" in readable and "key_file" in readable:
        rows.append(_check_key_matches(readable["cert_file"], readable["key_file"], x509))
    return rows


def _check_cert(key: str, path: Path, now: datetime, config: AgentConfig, x509: Any
                ) -> list[CheckResult]:
    name = f"tls {key}"
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as exc:
        return [_fail(name, f"{path} is not a PEM certificate: {exc}",
                      "convert it with `openssl x509 -in FILE -out FILE.pem`")]
    end: datetime = cert.not_valid_after_utc
    start: datetime = cert.not_valid_before_utc
    rows: list[CheckResult] = []
    if end <= now:
        rows.append(_fail(name, f"{path} expired {end:%Y-%m-%d}",
                          "issue a new certificate from the factory CA (docs/deployment-pi.md)"))
    elif start > now:
        rows.append(_fail(name, f"{path} is valid only from {start:%Y-%m-%d %H:%M} UTC",
                          "the Pi's clock may be wrong: check `timedatectl`"))
    elif end - now < CERT_EXPIRY_WARN:
        rows.append(_warn(name, f"{path} expires {end:%Y-%m-%d}",
                          "issue a new certificate before then"))
    else:
        rows.append(_ok(name, f"{path} valid until {end:%Y-%m-%d}"))
    if key == "cert_file":
        cns = [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
        if cns != [config.station_id]:
            rows.append(_fail("tls identity",
                              f"certificate CN {cns[0] if cns else None!r} is not the station id "
                              f"{config.station_id!r}",
                              "the broker's ACL maps the CN to the station's topics: issue the "
                              "certificate with CN = station_id"))
    return rows


def _check_key_matches(cert_path: Path, key_path: Path, x509: Any) -> CheckResult:
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        return _fail("tls key pair", f"{key_path}: {exc}",
                     "the key must be an unencrypted PEM private key")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    if cert.public_key().public_bytes(pem, spki) != key.public_key().public_bytes(pem, spki):
        return _fail("tls key pair", f"{key_path} does not belong to {cert_path}",
                     "point key_file at the key the certificate was issued for")
    return _ok("tls key pair", "key matches certificate")


# -- signed jobs -------------------------------------------------------------------------------


def check_signing(config: AgentConfig) -> list[CheckResult]:
    # The agent config gains its [signing] table (agent.signing.SigningConfig) with the MQTT
    # core; until then there is nothing to check.
    signing = getattr(config, "signing", None)
    if signing is None or not signing.enabled:
        return [_skip("signing", "signed jobs not required")]
    from agent.signing import JobVerifier

    try:
        verifier = JobVerifier.from_config(signing)
    except StationAgentError as exc:
        hint = ("install it: `sudo /opt/station-agent/venv/bin/pip install cryptography`"
                if "cryptography" in exc.message else
                "copy each controller's <kid>.pub (from `station-agent keys generate`) into "
                f"{signing.public_keys_dir}")
        return [_fail("signing", exc.message, hint)]
    results = [_ok("signing", f"trusted keys: {', '.join(sorted(verifier.keys))}")]
    if signing.allow_untargeted:
        # A signature that names no station can be replayed to every station trusting the key.
        results.append(_warn(
            "signing target", "allow_untargeted is on: a job signed for no station runs here, "
            "and on every other station that trusts the same key",
            "re-sign jobs with `station-agent sign --station ID` (or --pool NAME), then set "
            "[signing] allow_untargeted = false"))
    return results


# -- storage -----------------------------------------------------------------------------------


def check_storage(config: AgentConfig) -> list[CheckResult]:
    directory = config.storage.dir
    if not directory.exists():
        if directory == SYSTEMD_STATE_DIR:
            return [_warn("storage", f"{directory} does not exist yet",
                          "systemd creates it (StateDirectory=) when the service first starts")]
        return [_fail("storage", f"{directory} does not exist",
                      f"`sudo install -d -o station-agent -m 0750 {directory}`")]
    rows: list[CheckResult] = []
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as exc:
        rows.append(_fail("storage", f"{directory} is not writable by {_user_name()}: "
                          f"{exc.strerror}",
                          f"`sudo chown -R station-agent: {directory}`"))
    else:
        rows.append(_ok("storage", f"{directory} writable"))
    free = shutil.disk_usage(directory).free
    need = config.storage.outbox_max_bytes + MIN_SPARE_BYTES
    cap = config.storage.outbox_max_bytes
    detail = f"{free / 2**20:,.0f} MiB free (outbox cap {cap / 2**20:,.0f} MiB)"
    if free < MIN_SPARE_BYTES // 10:
        rows.append(_fail("disk space", f"{detail}: full", "a running agent reports "
                          "storage_error and takes no new jobs until there is room: free space "
                          "on the SD card (`du -xh / | sort -h | tail`); it recovers by itself"))
    elif free < need:
        rows.append(_fail("disk space", detail,
                          "free space on the SD card or lower [storage] outbox_max_bytes"))
    elif free < 4 * need:
        rows.append(_warn("disk space", detail, "free space is getting low"))
    else:
        rows.append(_ok("disk space", detail))
    return rows


def check_database(config: AgentConfig) -> list[CheckResult]:
    """The agent's database: not damaged, writable, and whether an agent is running on it."""
    directory = config.storage.dir
    path = directory / "agent.db"
    rows: list[CheckResult] = []
    pid = holder_pid(directory, "agent")
    if pid is not None:
        rows.append(_ok("agent lock", f"an agent is running on {directory} (PID "
                        f"{pid if pid > 0 else 'unknown'}); a second one would exit"))
    if not path.exists():
        rows.append(_skip("database", f"{path} does not exist yet (made on the first start)"))
        return rows
    try:
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only or not os.access(path, os.W_OK) or not os.access(directory, os.W_OK):
        rows.append(_fail("database", f"{path} is not writable"
                          f"{' (read-only file system)' if read_only else ''}",
                          f"`sudo chown -R station-agent: {directory}`, or remount the file "
                          "system read-write (after I/O errors: check `dmesg`, replace the card)"))
    found: int | None = None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        err = storage_error(exc, path)
        result = [f"{err.reason if err else 'error'}: {exc}"]
    if found is not None:
        rows.append(_schema_version(path, found))
    if result == ["ok"]:
        rows.append(_ok("database", f"{path} readable, not damaged"))
    else:
        rows.append(_fail("database", f"{path} is damaged: {'; '.join(result)[:200]}",
                          f"stop the agent, move {path.name} (and its -wal, -shm) aside, e.g. "
                          f"`mv {path} {path}.damaged`, and start it: it makes a new one"))
    return rows


def _schema_version(path: Path, found: int) -> CheckResult:
    known = latest(AGENT_MIGRATIONS)
    if found > known:
        return _fail("schema version", f"{path} has schema version {found}, newer than this "
                     f"release knows ({known}): the agent refuses to start on it",
                     "install the release that wrote it again, or move the file aside (see "
                     "docs/deployment.md, \"Upgrades and downgrades\")")
    shown = f"{found}" if found else f"{UNVERSIONED} (unversioned, release fb328ab)"
    if (found or UNVERSIONED) < known:
        return _ok("schema version", f"{shown}: migrated to {known} at the next start")
    return _ok("schema version", f"{found}, the latest")


# -- GPIO --------------------------------------------------------------------------------------

# On the 40-pin header; 0/1 are the HAT ID EEPROM bus, 14/15 the Pi's own UART.
HEADER_PINS = range(2, 28)
UART_PINS = {14: "TXD", 15: "RXD"}
I2C_PINS = {2: "SDA", 3: "SCL"}
PI_UART_DEVICES = ("/dev/serial0", "/dev/serial1", "/dev/ttyAMA0", "/dev/ttyS0")


def check_gpio(config: AgentConfig, chips: Iterable[Path] | None = None) -> list[CheckResult]:
    gpio = getattr(config, "gpio", None)
    assigned: list[tuple[str, int]] = list(gpio.assigned_pins()) if gpio is not None else []
    if not assigned:
        return [_skip("gpio", "no GPIO pins configured")]
    rows: list[CheckResult] = []
    uart_in_use = os.path.realpath(config.serial.port) in {
        os.path.realpath(p) for p in PI_UART_DEVICES
    } or config.serial.port in PI_UART_DEVICES
    for key, pin in assigned:
        name = f"gpio {key}"
        if pin not in HEADER_PINS:
            rows.append(_fail(name, f"GPIO{pin} is not on the 40-pin header (GPIO2-GPIO27)",
                              "choose a header pin; see `pinout`"))
        elif pin in UART_PINS and uart_in_use:
            rows.append(_fail(name, f"GPIO{pin} is the UART {UART_PINS[pin]} the machine is on",
                              "move this input or output to another pin"))
        elif pin in I2C_PINS:
            rows.append(_warn(name, f"GPIO{pin} is I2C {I2C_PINS[pin]} with a fixed 1.8 kΩ "
                              "pull-up to 3.3 V",
                              "an input there reads high when open whatever its pull setting"))
        else:
            rows.append(_ok(name, f"GPIO{pin}"))
    found = sorted(chips if chips is not None else Path("/dev").glob("gpiochip*"))
    if not found:
        rows.append(_fail("gpio chip", "no /dev/gpiochip* on this machine",
                          "GPIO needs a Raspberry Pi (or remove the [gpio] pins from the config)"))
    elif not any(os.access(c, os.R_OK | os.W_OK) for c in found):
        rows.append(_fail("gpio chip", f"{_user_name()} cannot open {found[0]}",
                          "add the agent's user to group gpio: "
                          "`sudo usermod -aG gpio station-agent`"))
    else:
        rows.append(_ok("gpio chip", ", ".join(str(c) for c in found)))
    return rows


# -- putting it together -----------------------------------------------------------------------


def run_checks(config_path: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[CheckResult]:
    result, config = check_config(config_path)
    rows = [result]
    if config is None:
        rows.append(_skip("everything else", "needs a valid config"))
        return rows
    profile_row, profile = check_profile(config)
    rows.append(profile_row)
    checks: list[tuple[str, Callable[[], list[CheckResult]]]] = [
        ("serial", lambda: check_serial(config, profile, timeout_s)),
        ("broker", lambda: check_brokers(config, timeout_s)),
        ("credentials", lambda: check_credentials(config)),
        ("signing", lambda: check_signing(config)),
        ("storage", lambda: check_storage(config)),
        ("database", lambda: check_database(config)),
        ("gpio", lambda: check_gpio(config)),
    ]
    for name, check in checks:
        try:
            rows.extend(check())
        except Exception as exc:  # noqa: BLE001 - a diagnosis tool reports, it does not crash
            rows.append(_fail(name, f"the check itself failed: {type(exc).__name__}: {exc}",
                              "report this with the output of the doctor"))
    return rows


def format_report(rows: Sequence[CheckResult]) -> str:
    width = max(len(r.check) for r in rows)
    lines = [f"{'CHECK':<{width}}  RESULT  DETAIL"]
    for r in rows:
        lines.append(f"{r.check:<{width}}  {r.status.value:<6}  {r.detail}")
        if r.hint and r.status in (CheckStatus.FAIL, CheckStatus.WARN):
            lines.append(f"{'':<{width}}          fix: {r.hint}")
    failed = sum(r.status is CheckStatus.FAIL for r in rows)
    warned = sum(r.status is CheckStatus.WARN for r in rows)
    lines.append("")
    lines.append(f"{failed} failed, {warned} warnings" if failed or warned else "all checks passed")
    return "\n".join(lines)


def doctor_main(argv: list[str]) -> int:
    """``station-agent doctor --config FILE [--timeout S]``; 1 if any check failed."""
    parser = argparse.ArgumentParser(prog="station-agent doctor",
                                     description="check a station's set-up")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="seconds to wait for the machine and each broker")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    rows = run_checks(args.config, timeout_s=args.timeout)
    sys.stdout.write(format_report(rows) + "\n")
    return 1 if any(r.status is CheckStatus.FAIL for r in rows) else 0
