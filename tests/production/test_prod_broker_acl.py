"""The shipped Mosquitto config (deploy/mosquitto/) run as is: TLS client certificates and the ACL.

Only paths and the port are substituted; a throwaway CA is made per module.
"""

from __future__ import annotations

import queue
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.production.pki import make_ca, make_client_cert
from tests.production.tls_broker import TlsFiles, make_tls_files, running_tls_broker
from tests.support.broker import Broker

WAIT_S = 15.0

# A T-shirt front cut on the knife cutter, and the laser's care label job.
KNIFE_JOB = b'{"job_id":"tee-front-M-0412","kind":"toolpaths","pieces":["front"]}'
LASER_JOB = b'{"job_id":"care-label-SS27-0412","kind":"gcode"}'


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"), ["controller", "laser-02", "cutter-01",
                                                                  "pool-keeper"])


@pytest.fixture(scope="module")
def tls_broker(tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with running_tls_broker(tls, tmp_path_factory.mktemp("broker")) as b:
        yield b


class Client:
    """A paho 2 MQTTv5 client with TLS, whose callbacks feed queues the test reads."""

    def __init__(self, broker: Broker, ca_file: Path, cert: Path | None, key: Path | None,
                 client_id: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.pubacks: dict[int, ReasonCode] = {}
        self.puback_seen = threading.Condition()
        self.connected: queue.Queue[ReasonCode] = queue.Queue()
        self.outcomes: queue.Queue[str] = queue.Queue()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(ca_file), certfile=str(cert) if cert else None,
                  keyfile=str(key) if key else None, cert_reqs=ssl.CERT_REQUIRED)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        self.mqtt = c
        self.broker = broker

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    rc: ReasonCode, props: Properties | None) -> None:
        self.connected.put(rc)
        self.outcomes.put("refused" if rc.is_failure else "connected")

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       rc: ReasonCode, props: Properties | None) -> None:
        self.outcomes.put("disconnected")

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.outcomes.put("failed")

    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        self.messages.put((msg.topic, bytes(msg.payload)))

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      rcs: list[ReasonCode], props: Properties | None) -> None:
        self.subacks.put(rcs)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode,
                    props: Properties | None) -> None:
        with self.puback_seen:
            self.pubacks[mid] = rc
            self.puback_seen.notify_all()

    def connect(self) -> None:
        self.mqtt.connect(self.broker.host, self.broker.port, keepalive=30)
        self.mqtt.loop_start()
        rc = self.connected.get(timeout=WAIT_S)
        assert not rc.is_failure, f"connect refused: {rc}"

    def subscribe(self, topic: str) -> ReasonCode:
        self.mqtt.subscribe(topic, qos=1)
        (rc,) = self.subacks.get(timeout=WAIT_S)
        return rc

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.mqtt.publish(topic, payload, qos=1)
        with self.puback_seen:
            assert self.puback_seen.wait_for(lambda: info.mid in self.pubacks, WAIT_S)
            return self.pubacks[info.mid]

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=WAIT_S)

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


@pytest.fixture
def connect(tls_broker: Broker, tls: TlsFiles) -> Iterator[object]:
    clients: list[Client] = []
    counter = iter(range(1_000_000))

    def make(cn: str) -> Client:
        c = Client(tls_broker, tls.ca_file, tls.dir / f"{cn}.crt", tls.dir / f"{cn}.key",
                   client_id=f"{cn}-test-{next(counter)}")
        c.connect()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


NOT_AUTHORIZED = 0x87


def test_station_receives_its_own_job(connect: object) -> None:
    station = connect("laser-02")  # type: ignore[operator]
    controller = connect("controller")  # type: ignore[operator]
    assert not station.subscribe("mf/laser-02/job").is_failure
    assert not controller.publish("mf/laser-02/job", LASER_JOB).is_failure
    assert station.next_message() == ("mf/laser-02/job", LASER_JOB)


def test_station_cannot_receive_another_stations_jobs(connect: object) -> None:
    station = connect("laser-02")  # type: ignore[operator]
    controller = connect("controller")  # type: ignore[operator]
    # Mosquitto 2.0 grants a subscription and filters each delivery against the ACL; a broker
    # that refuses the SUBACK instead is just as good. Either way nothing may arrive.
    station.subscribe("mf/cutter-01/job")
    station.subscribe("mf/cutter-01/cmd")
    wide = station.subscribe("mf/#")
    assert not station.subscribe("mf/laser-02/job").is_failure
    controller.publish("mf/cutter-01/job", KNIFE_JOB)
    controller.publish("mf/cutter-01/cmd", b'{"cmd":"estop"}')
    # Sentinel, published last by the same client: anything let through would arrive first.
    controller.publish("mf/laser-02/job", LASER_JOB)
    received = [station.next_message()]
    if not wide.is_failure:
        received.append(station.next_message())  # the sentinel again, through mf/#
    assert received[0] == ("mf/laser-02/job", LASER_JOB)
    assert all(topic == "mf/laser-02/job" for topic, _ in received)
    assert station.messages.empty()


def test_station_cannot_publish_as_another_station(connect: object) -> None:
    station = connect("laser-02")  # type: ignore[operator]
    controller = connect("controller")  # type: ignore[operator]
    assert not controller.subscribe("mf/+/events").is_failure
    forged = station.publish("mf/cutter-01/events", b'{"event":"completed","job_id":"x"}')
    assert forged.value == NOT_AUTHORIZED
    own = station.publish("mf/laser-02/events", b'{"event":"started"}')
    assert not own.is_failure
    assert controller.next_message() == ("mf/laser-02/events", b'{"event":"started"}')
    assert controller.messages.empty()


def test_station_cannot_write_its_own_job_or_read_its_reports(connect: object) -> None:
    station = connect("laser-02")  # type: ignore[operator]
    assert station.publish("mf/laser-02/job", LASER_JOB).value == NOT_AUTHORIZED
    assert station.publish("mf/laser-02/cmd", b'{"cmd":"resume"}').value == NOT_AUTHORIZED
    station.subscribe("mf/laser-02/events")
    for name in ("events", "status", "telemetry", "info", "queue"):
        assert not station.publish(f"mf/laser-02/{name}", b"{}").is_failure
    # Its own reports are write-only for it: nothing comes back on the subscription.
    assert not station.subscribe("mf/laser-02/cmd").is_failure
    connect("controller").publish("mf/laser-02/cmd", b'{"cmd":"pause"}')  # type: ignore[operator]
    assert station.next_message() == ("mf/laser-02/cmd", b'{"cmd":"pause"}')
    assert station.messages.empty()


def test_only_the_keeper_reads_pool_jobs_and_stations_answer_only_their_own_pools(
        connect: object) -> None:
    laser = connect("laser-02")  # type: ignore[operator]
    keeper = connect("pool-keeper")  # type: ignore[operator]
    controller = connect("controller")  # type: ignore[operator]
    laser.subscribe("mf/pools/laser/job")
    laser.subscribe("mf/laser-02/offer")
    keeper.subscribe("mf/pools/+/job")
    keeper.subscribe("mf/pools/+/replies/+")
    controller.publish("mf/pools/laser/job", LASER_JOB)
    assert keeper.next_message() == ("mf/pools/laser/job", LASER_JOB)
    claim = b'{"station":"laser-02","answer":"claim"}'
    assert laser.publish("mf/pools/knife/replies/laser-02", claim).is_failure  # not its pool
    assert laser.publish("mf/pools/laser/replies/cutter-01", claim).is_failure  # not its name
    assert not laser.publish("mf/pools/laser/replies/laser-02", claim).is_failure
    assert keeper.next_message() == ("mf/pools/laser/replies/laser-02", claim)
    assert not keeper.publish("mf/laser-02/offer", b'{"job_id":"care-label"}').is_failure
    assert laser.next_message() == ("mf/laser-02/offer", b'{"job_id":"care-label"}')
    assert laser.messages.empty()
    assert keeper.messages.empty()


def test_controller_reads_and_writes_everything(connect: object) -> None:
    controller = connect("controller")  # type: ignore[operator]
    cutter = connect("cutter-01")  # type: ignore[operator]
    assert not controller.subscribe("mf/#").is_failure
    assert not cutter.subscribe("mf/cutter-01/cmd").is_failure
    assert not controller.publish("mf/cutter-01/cmd", b'{"cmd":"pause"}').is_failure
    assert cutter.next_message() == ("mf/cutter-01/cmd", b'{"cmd":"pause"}')
    assert not cutter.publish("mf/cutter-01/status", b'{"state":"paused"}').is_failure
    got = {controller.next_message(), controller.next_message()}
    assert got == {("mf/cutter-01/cmd", b'{"cmd":"pause"}'),
                   ("mf/cutter-01/status", b'{"state":"paused"}')}


def _tls_connect_fails(tls_broker: Broker, ca_file: Path, cert: Path | None,
                       key: Path | None) -> None:
    c = Client(tls_broker, ca_file, cert, key, client_id="intruder")
    try:
        c.mqtt.connect(tls_broker.host, tls_broker.port, keepalive=30)
    except (ssl.SSLError, OSError):
        return  # the handshake failed at once (TLS 1.2)
    # With TLS 1.3 the broker checks the client certificate after the client's side of the
    # handshake is done: the rejection arrives as a closed connection instead of a CONNACK.
    c.mqtt.loop_start()
    try:
        outcome = c.outcomes.get(timeout=WAIT_S)
    finally:
        c.mqtt.loop_stop()
    assert outcome in {"disconnected", "failed", "refused"}
    assert c.connected.empty() or c.connected.get().is_failure


def test_certificate_from_another_ca_cannot_connect(tls_broker: Broker, tls: TlsFiles,
                                                    tmp_path: Path) -> None:
    rogue_ca = make_ca("Rogue CA")
    cert, key = make_client_cert(rogue_ca, "laser-02").write(tmp_path, "rogue")
    _tls_connect_fails(tls_broker, tls.ca_file, cert, key)


def test_client_without_certificate_cannot_connect(tls_broker: Broker, tls: TlsFiles) -> None:
    _tls_connect_fails(tls_broker, tls.ca_file, None, None)
