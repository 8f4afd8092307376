"""One rooted exception tree.

Every error the agent raises on purpose derives from :class:`StationAgentError`; timeouts also
derive from the built-in :class:`TimeoutError` so ``except TimeoutError`` keeps working.
Errors that end in a ``rejected`` or ``failed`` event carry a machine-readable ``code``.
"""

from __future__ import annotations

from enum import StrEnum


class StationAgentError(Exception):
    """Root of every error the agent raises on purpose."""

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(StationAgentError):
    """The configuration or a firmware profile is invalid."""

    code = "config_error"


class ProgramError(StationAgentError):
    """A job's program cannot be run on this machine; nothing of it was sent."""

    code = "invalid_program"

    def __init__(self, message: str, *, code: str | None = None, line: int | None = None) -> None:
        super().__init__(message, code=code)
        self.line = line


class DeviceError(StationAgentError):
    """The machine answered with an error, or broke its protocol."""

    code = "device_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        line: int | None = None,
        device_code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.line = line
        self.device_code = device_code


class DeviceAlarm(DeviceError):
    """The machine went into an alarm state; it stays locked until an operator clears it."""

    code = "device_alarm"


class DeviceTimeout(DeviceError, TimeoutError):
    """The machine did not answer in time."""

    code = "device_timeout"


class DeviceLost(DeviceError):
    """The serial device went away (unplugged, closed, I/O error)."""

    code = "device_lost"


class SerialPortUnavailable(DeviceLost):
    """The serial port could not be opened (missing, held by another program, no permission)."""


class JobStopped(StationAgentError):
    """A running job was stopped on purpose (cancel or e-stop)."""

    code = "canceled"


# -- the broker connection (agent.link.mqtt_client raises these; the doctor reads them) -------


class MqttError(StationAgentError):
    """Anything that went wrong talking to the MQTT broker."""

    code = "mqtt_error"


class MqttConnectError(MqttError):
    """A connection to the broker could not be set up; the subclass says at which step."""

    code = "mqtt_connect_failed"


class BrokerUnreachable(MqttConnectError):
    """No TCP connection: refused, no route, unknown host name, or no answer in time."""

    code = "broker_unreachable"

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class TlsStep(StrEnum):
    LOAD_FILES = "load_files"  # the [mqtt.tls] files could not be read or do not fit together
    VERIFY_BROKER = "verify_broker"  # the broker's certificate is not trusted or names another host
    HANDSHAKE = "handshake"  # any other TLS failure while connecting (a plain port, an alert)


class TlsError(MqttConnectError):
    """TLS failed at ``step``; ``reason`` is OpenSSL's own code when it gave one (for example
    ``WRONG_VERSION_NUMBER``: TLS spoken to a plain MQTT port)."""

    code = "tls_error"

    def __init__(self, message: str, *, step: TlsStep, reason: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.reason = reason


class BrokerRefused(MqttConnectError):
    """The broker answered CONNECT with a failure reason code (MQTT 5 CONNACK)."""

    code = "broker_refused"

    # MQTT 5 CONNACK reason codes a station's set-up can cause (MQTT 5.0, 3.2.2.2).
    BAD_CREDENTIALS = 0x86
    NOT_AUTHORIZED = 0x87
    CLIENT_ID_NOT_VALID = 0x85

    def __init__(self, reason: str, reason_code: int) -> None:
        super().__init__(f"broker refused the connection: {reason} (0x{reason_code:02x})")
        self.reason = reason
        self.reason_code = reason_code


class BrokerNoConnack(MqttConnectError):
    """The connection was set up but no CONNACK came: the broker closed it (``closed``), or
    said nothing in time."""

    code = "broker_no_connack"

    def __init__(self, message: str, *, closed: bool) -> None:
        super().__init__(message)
        self.closed = closed


class SubscriptionRefused(MqttError):
    """The broker refused some of the subscriptions (SUBACK reason codes of 0x80 and up, for
    example 0x87 when its ACL does not let this client read the topic)."""

    code = "subscription_refused"

    def __init__(self, refused: dict[str, int]) -> None:
        super().__init__("the broker refused the subscription to " + ", ".join(
            f"{topic} (0x{reason:02x})" for topic, reason in refused.items()))
        self.refused = refused


class MqttDisconnected(MqttError):
    code = "mqtt_disconnected"


class MqttTimeout(MqttError, TimeoutError):
    code = "mqtt_timeout"


class PublishRejected(MqttError):
    """The broker answered a QoS 1 publish with a failure reason code (MQTT 5)."""

    code = "publish_rejected"

    def __init__(self, reason: str, value: int) -> None:
        super().__init__(f"broker rejected the publish: {reason} (0x{value:02x})")
        self.reason = reason
        self.value = value
