"""The station's TOML configuration, validated; an unknown key or a bad value names the key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import Field, ValidationError, model_validator

from agent.errors import ConfigError
from agent.safety.config import GpioConfig
from agent.schemas.pool import POOLS, PoolName
from agent.signing import SigningConfig
from agent.strict import StrictModel, format_validation_error

StationId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
TopicLevel = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Port = Annotated[int, Field(ge=1, le=65_535)]
_C = TypeVar("_C", bound=StrictModel)


class BrokerAddress(StrictModel):
    host: str
    port: Port = 1883


class TlsConfig(StrictModel):
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    # Hostname verification can be turned off only for brokers addressed by IP in a lab.
    check_hostname: bool = True


class MqttConfig(StrictModel):
    host: str = "127.0.0.1"
    port: Port = 1883
    # Further brokers (a cluster behind several addresses), tried in turn after host:port.
    fallback: tuple[BrokerAddress, ...] = ()
    topic_prefix: TopicLevel = "mf"
    username: str | None = None
    password: str | None = None
    tls: TlsConfig | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 15
    # Persistent session: the broker keeps our subscriptions and queued jobs this long.
    session_expiry_s: Annotated[int, Field(ge=0, le=365 * 86_400)] = 7 * 86_400
    # Largest job or command payload accepted; larger ones are rejected unread.
    max_payload_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 16 * 1024 * 1024
    reconnect_min_s: Annotated[float, Field(gt=0, le=60)] = 0.2
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0

    @property
    def brokers(self) -> tuple[BrokerAddress, ...]:
        return (BrokerAddress(host=self.host, port=self.port), *self.fallback)


class SerialConfig(StrictModel):
    port: str = "/dev/ttyUSB0"
    # None: take the profile's baud rate.
    baud: Annotated[int, Field(ge=300, le=4_000_000)] | None = None
    # How often to look for the device again after it went away.
    reopen_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0


class StorageConfig(StrictModel):
    dir: Path = Path("/var/lib/station-agent")
    # Cap on the outbox; when full telemetry goes first, lifecycle events never.
    outbox_max_bytes: Annotated[int, Field(ge=64 * 1024, le=16 * 1024**3)] = 64 * 1024 * 1024


class LimitsConfig(StrictModel):
    # Jobs waiting to run; past this a new job is rejected with queue_full.
    max_queued_jobs: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # Program lines in one job.
    max_program_lines: Annotated[int, Field(ge=1, le=50_000_000)] = 2_000_000


class OperatorConfig(StrictModel):
    # After an e-stop is released and reset, the next job waits for an operator's start (the
    # station's start button or the `start` command) instead of starting by itself. Turn off
    # only where nobody can be in the machine's reach when it restarts (a fenced, interlocked
    # cell whose restart the planner owns).
    start_after_estop: bool = True


class AgentConfig(StrictModel):
    station_id: StationId
    profile: str = "grbl-1.1"
    mqtt: MqttConfig = MqttConfig()
    serial: SerialConfig = SerialConfig()
    storage: StorageConfig = StorageConfig()
    limits: LimitsConfig = LimitsConfig()
    operator: OperatorConfig = OperatorConfig()
    # The station's safety I/O (e-stop, door, start button, stack light); None: no GPIO.
    gpio: GpioConfig | None = None
    # Ed25519-signed jobs from the planner; off by default.
    signing: SigningConfig = SigningConfig()
    # Pools this station takes jobs from (<prefix>/pools/<pool>/job, via the pool keeper).
    pools: tuple[PoolName, ...] = Field(default=(), max_length=32)

    @model_validator(mode="after")
    def _check(self) -> AgentConfig:
        _check_backoff(self.mqtt)
        if self.station_id == POOLS:
            raise ValueError(f"station_id {POOLS!r} is reserved for pool topics")
        if len(set(self.pools)) != len(self.pools):
            raise ValueError("pools: a pool is listed twice")
        return self


class KeeperStorageConfig(StrictModel):
    dir: Path = Path("/var/lib/station-agent-keeper")


class KeeperPoolConfig(StrictModel):
    """``[pools.<name>]`` in the keeper's config: who may take this pool's jobs."""

    members: tuple[StationId, ...] = Field(min_length=1, max_length=1000)


class KeeperConfig(StrictModel):
    """The pool keeper: one per broker, holds pool jobs until a free member takes each."""

    keeper_id: StationId = "pool-keeper"
    mqtt: MqttConfig = MqttConfig()
    storage: KeeperStorageConfig = KeeperStorageConfig()
    # How long a member has to claim an offered job before it is offered elsewhere.
    offer_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    # Pool membership. Given: the only pools and members there are (a station's info claiming
    # more is ignored; a job for another pool is rejected). Empty: a station is a member of a
    # pool whose reply topic the broker's ACL lets it write, as its retained info says.
    pools: dict[PoolName, KeeperPoolConfig] = Field(default_factory=dict, max_length=1000)

    def members(self) -> dict[str, frozenset[str]] | None:
        """Each configured pool's members; None when membership is left to the broker's ACL."""
        if not self.pools:
            return None
        return {name: frozenset(pool.members) for name, pool in self.pools.items()}

    @model_validator(mode="after")
    def _check(self) -> KeeperConfig:
        _check_backoff(self.mqtt)
        return self


def _check_backoff(mqtt: MqttConfig) -> None:
    if mqtt.reconnect_min_s > mqtt.reconnect_max_s:
        raise ValueError("mqtt.reconnect_min_s must not exceed mqtt.reconnect_max_s")


def parse_config(data: dict[str, object], *, source: str = "<config>") -> AgentConfig:
    return _parse(AgentConfig, data, source)


def _parse(model: type[_C], data: dict[str, object], source: str) -> _C:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def load_config(path: Path) -> AgentConfig:
    return _parse(AgentConfig, _read_toml(path), str(path))


def load_keeper_config(path: Path) -> KeeperConfig:
    return _parse(KeeperConfig, _read_toml(path), str(path))


def _read_toml(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return data
