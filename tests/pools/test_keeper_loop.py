"""The keeper's dispatch loop with no broker: it must neither spin nor hold on to stale offers."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

from agent.config import KeeperConfig
from agent.pools.keeper import build_keeper
from tests.support.pool import POOL


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_offer_expiring_while_the_broker_is_away_does_not_make_the_keeper_spin(
        tmp_path: Path) -> None:
    config = KeeperConfig.model_validate({
        "keeper_id": "keeper-test",
        "mqtt": {"host": "127.0.0.1", "port": _closed_port(), "topic_prefix": "mf"},
        "storage": {"dir": str(tmp_path / "keeper")},
    })
    keeper = build_keeper(config)
    d = keeper.dispatcher
    d.on_info("knife-01", json.dumps({"station": "knife-01", "pools": [POOL],
                                      "job_kinds": ["gcode"]}).encode())
    d.on_status("knife-01", json.dumps({"station": "knife-01", "state": "idle"}).encode())
    d.take_job(POOL, json.dumps({"job_id": "front-1", "kind": "gcode",
                                 "program": "G0 X10 Y10"}).encode())
    # Offered just before the broker went away; its deadline has long passed.
    [(station, _)] = d.dispatch(time.monotonic() - 60).offers
    assert station == "knife-01"
    assert not keeper.link.connected.is_set()

    passes = 0
    next_deadline = d.next_deadline

    def counted() -> float | None:
        nonlocal passes
        passes += 1
        return next_deadline()

    d.next_deadline = counted  # type: ignore[method-assign]
    task = asyncio.create_task(keeper.run_dispatch())
    try:
        await asyncio.sleep(0.2)
        assert d.offers == {}, "the stale offer was kept while the broker was away"
        # One pass found the stale offer, the next found nothing to wait for: then it sleeps.
        assert passes <= 3, f"the dispatch loop spun {passes} times with no broker"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        keeper.db.close()
    assert task.cancelled()
