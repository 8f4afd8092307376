"""Fixtures for the safety I/O tests: a fresh MockFactory per test, and a recording listener.

Nothing here sets gpiozero's process-wide ``Device.pin_factory``; the fixture checks that no
test did either, so pins and reservations never leak from one test into the next.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from tests.safety.helpers import RecordingListener


@pytest.fixture
def pin_factory() -> Iterator[MockFactory]:
    global_before = Device.pin_factory
    factory = MockFactory()
    yield factory
    # Every device a test opened must have been closed (its pin reservation released).
    still_reserved = [pin for pin, holders in factory._reservations.items() if holders]
    factory.reset()
    factory.close()
    assert Device.pin_factory is global_before, "a test changed gpiozero's global pin factory"
    assert not still_reserved, f"devices left open on {still_reserved}"


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()
