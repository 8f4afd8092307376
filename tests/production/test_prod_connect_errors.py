"""MqttConnection's typed connect errors, each caused for real against Mosquitto: the agent
and the doctor tell what failed by the error's type and fields, never by its text."""

from __future__ import annotations

import errno
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import MqttConfig
from agent.errors import (
    BrokerNoConnack,
    BrokerRefused,
    BrokerUnreachable,
    MqttConnectError,
    TlsError,
    TlsStep,
)
from agent.link.mqtt_client import ConnectOptions, MqttConnection
from agent.link.session import tls_context
from tests.production.pki import make_ca, make_client_cert
from tests.production.tls_broker import TlsFiles, make_tls_files, running_tls_broker
from tests.support.broker import Broker, free_port, running_broker


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"), ["cutter-01"])


@pytest.fixture(scope="module")
def tls_broker(tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with running_tls_broker(tls, tmp_path_factory.mktemp("broker")) as b:
        yield b


def _context(tls: TlsFiles, cert: Path | None = None, key: Path | None = None
             ) -> ssl.SSLContext | None:
    return tls_context(MqttConfig.model_validate({"tls": {
        "ca_file": str(tls.ca_file), "cert_file": str(cert or tls.cert("cutter-01")),
        "key_file": str(key or tls.key("cutter-01"))}}))


async def _connect(port: int, tls: ssl.SSLContext | None = None) -> MqttConnectError:
    options = ConnectOptions(host="127.0.0.1", port=port, client_id="cutter-01-probe",
                             clean_start=True, tls=tls, connect_timeout_s=5)
    with pytest.raises(MqttConnectError) as caught:
        async with MqttConnection(options, lambda message: None):
            pass
    return caught.value


async def test_nothing_listening_is_unreachable() -> None:
    exc = await _connect(free_port())
    assert isinstance(exc, BrokerUnreachable)
    assert exc.errno == errno.ECONNREFUSED


async def test_anonymous_client_is_refused_with_the_reason_code(tmp_path: Path) -> None:
    with running_broker(tmp_path, anonymous=False) as broker:
        exc = await _connect(broker.port)
    assert isinstance(exc, BrokerRefused)
    assert exc.reason_code in (BrokerRefused.BAD_CREDENTIALS, BrokerRefused.NOT_AUTHORIZED)


async def test_tls_to_a_plain_port_fails_the_handshake(broker: Broker, tls: TlsFiles) -> None:
    exc = await _connect(broker.port, _context(tls))
    assert isinstance(exc, TlsError)
    assert exc.step is TlsStep.HANDSHAKE


async def test_plain_mqtt_to_a_tls_port_gets_no_connack(tls_broker: Broker) -> None:
    exc = await _connect(tls_broker.port)
    assert isinstance(exc, BrokerNoConnack)
    assert exc.closed


async def test_broker_certificate_from_another_ca_fails_verification(
        tls_broker: Broker, tmp_path: Path) -> None:
    other_ca = make_ca("Some Other CA").write(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(other_ca))
    exc = await _connect(tls_broker.port, ctx)
    assert isinstance(exc, TlsError)
    assert exc.step is TlsStep.VERIFY_BROKER


async def test_client_certificate_from_another_ca_is_refused_before_the_connack(
        tls_broker: Broker, tls: TlsFiles, tmp_path: Path) -> None:
    cert, key = make_client_cert(make_ca("Rogue CA"), "cutter-01").write(tmp_path, "rogue")
    exc = await _connect(tls_broker.port, _context(tls, cert, key))
    # With TLS 1.2 the broker's alert ends the handshake itself; with TLS 1.3 the client's
    # handshake is over before the broker checks its certificate, and the broker then hangs up.
    if isinstance(exc, TlsError):
        assert exc.step is TlsStep.HANDSHAKE
        assert exc.reason is not None
    else:
        assert isinstance(exc, BrokerNoConnack)
        assert exc.closed


async def test_the_stations_certificate_connects(tls_broker: Broker, tls: TlsFiles) -> None:
    options = ConnectOptions(host="127.0.0.1", port=tls_broker.port, client_id="cutter-01",
                             clean_start=True, tls=_context(tls), connect_timeout_s=5)
    async with MqttConnection(options, lambda message: None) as conn:
        assert conn.state.value == "connected"


def test_unreadable_tls_files_fail_at_loading(tls: TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(TlsError) as caught:
        _context(tls, key=tmp_path / "missing.key")
    assert caught.value.step is TlsStep.LOAD_FILES
    with pytest.raises(TlsError) as mismatch:
        _context(tls, key=tls.key("cutter-01").with_name("broker.key"))
    assert mismatch.value.step is TlsStep.LOAD_FILES
