"""One rooted exception tree.

Every error the agent raises on purpose derives from :class:`StationAgentError`; timeouts also
derive from the built-in :class:`TimeoutError` so ``except TimeoutError`` keeps working.
Errors that end in a ``rejected`` or ``failed`` event carry a machine-readable ``code``.
"""

from __future__ import annotations


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


class JobStopped(StationAgentError):
    """A running job was stopped on purpose (cancel or e-stop)."""

    code = "canceled"
