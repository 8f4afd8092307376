"""Shared fixtures: a private broker per test, and a check that no test leaves tasks behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.broker import Broker, running_broker


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run long fuzz and soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip)
        if item.get_closest_marker("asyncio") is not None:
            item.fixturenames.insert(0, "_no_leftover_tasks")  # type: ignore[attr-defined]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    with running_broker(workdir) as b:
        yield b


@pytest.fixture
async def _no_leftover_tasks() -> AsyncIterator[None]:
    """Fail any async test that leaves tasks running (aioesphomeapi does the same)."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    if leftover:
        # Give cancellation-in-progress a moment before calling it a leak.
        await asyncio.sleep(0.05)
        leftover = [t for t in leftover if not t.done()]
    for task in leftover:
        task.cancel()
    assert not leftover, f"test left tasks running: {[t.get_name() for t in leftover]}"
