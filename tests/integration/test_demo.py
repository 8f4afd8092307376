"""`station-agent demo`, the README's first command, runs a real job to success and cleans up."""

from __future__ import annotations

import pytest

from agent.demo import run_demo

pytestmark = pytest.mark.timeout(180)


async def test_demo_cuts_a_tshirt_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    # Without simulated motion the same job streams in seconds instead of a minute or two.
    code = await run_demo(motion=False)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "private Mosquitto broker on 127.0.0.1:" in out
    assert ": succeeded" in out
    assert "receive-buffer overflows: 0" in out
    assert "demo: job succeeded" in out
