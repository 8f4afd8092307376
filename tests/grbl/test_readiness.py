"""One Readiness for every driver: its values are the reason codes already on the wire."""

from __future__ import annotations

import pytest

from agent.drivers.base import QuietListener, Readiness, StopReason
from agent.drivers.grbl import GrblDriver
from agent.errors import DeviceError
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile


def test_readiness_values_are_the_old_reason_codes() -> None:
    # Used as `reason` in machine_not_ready warnings and as `failed` codes: never renamed.
    assert {r.value for r in Readiness} == {
        "", "busy", "estop", "device_alarm", "machine_not_ready", "door_open", "device_timeout",
        "device_lost", "not_open", "device_killed", "lever_up", "device_paused", "device_busy",
    }
    assert [r for r in Readiness if r.ready] == [Readiness.READY]
    assert {s.value for s in StopReason} == {"canceled", "estop"}


class _WrittenBytes:
    """Only what ``estop`` touches: the writes (this is not a link, nothing is read)."""

    name = "unit"

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes, *, urgent: bool = False) -> None:
        self.data += data


async def test_an_estop_latches_until_reset_and_refuses_jobs_with_its_code() -> None:
    profile = load_profile("grbl-1.1")
    assert isinstance(profile, GrblProfile)
    link = _WrittenBytes()
    driver = GrblDriver(link, QuietListener(), profile)  # type: ignore[arg-type]
    before = driver.ready_for_job
    await driver.estop()
    assert link.data == b"!\x18"
    assert driver.estop_latched
    assert (before, driver.ready_for_job) == (Readiness.READY, Readiness.ESTOP)
    with pytest.raises(DeviceError) as caught:
        driver.require_ready()
    assert caught.value.code == "estop"
