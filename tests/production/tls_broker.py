"""Mosquitto running deploy/mosquitto/ as shipped (paths and port substituted), for TLS tests.

    tls = make_tls_files(tmp_path / "pki", ["controller", "laser-02"])
    with running_tls_broker(tls, tmp_path / "broker") as broker:
        ...  # broker.host, broker.port; tls.cert("laser-02"), tls.key("laser-02"), tls.ca_file
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.production.pki import CertificateAuthority, make_ca, make_client_cert, make_server_cert
from tests.support.broker import Broker, free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "mosquitto"


@dataclass(frozen=True)
class TlsFiles:
    ca: CertificateAuthority
    dir: Path
    ca_file: Path

    def cert(self, cn: str) -> Path:
        return self.dir / f"{cn}.crt"

    def key(self, cn: str) -> Path:
        return self.dir / f"{cn}.key"


def make_tls_files(directory: Path, client_cns: Iterable[str]) -> TlsFiles:
    """A fresh CA, a broker certificate for 127.0.0.1/localhost, one client cert per CN."""
    ca = make_ca("Factory Test CA")
    ca_file = ca.write(directory)
    make_server_cert(ca).write(directory, "broker")
    for cn in client_cns:
        make_client_cert(ca, cn).write(directory, cn)
    return TlsFiles(ca, directory, ca_file)


def tls_broker_conf(tls: TlsFiles, port: int, workdir: Path) -> str:
    """deploy/mosquitto/station-agent.conf with this test's port and files."""
    text = (DEPLOY / "station-agent.conf").read_text()
    acl = workdir / "station-agent.acl"
    acl.write_text((DEPLOY / "station-agent.acl").read_text())
    replacements = {
        "listener 8883\n": f"listener {port} 127.0.0.1\n",
        "/etc/mosquitto/ca_certificates/factory-ca.crt": str(tls.ca_file),
        "/etc/mosquitto/certs/broker.crt": str(tls.dir / "broker.crt"),
        "/etc/mosquitto/certs/broker.key": str(tls.dir / "broker.key"),
        "/etc/mosquitto/station-agent.acl": str(acl),
    }
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"deploy config no longer contains {old!r}")
        text = text.replace(old, new)
    # Debian's main mosquitto.conf supplies logging and persistence around the conf.d file;
    # run as whoever runs the tests (as root mosquitto would switch to a user that cannot read
    # the test's temporary files).
    return text + f"log_dest stderr\nlog_type all\npersistence false\nuser {getpass.getuser()}\n"


@contextlib.contextmanager
def running_tls_broker(tls: TlsFiles, workdir: Path) -> Iterator[Broker]:
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Broker(workdir, port=free_port())
    broker.conf_path.write_text(tls_broker_conf(tls, broker.port, workdir))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
