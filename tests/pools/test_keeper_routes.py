"""The keeper's reading of reply topics: the sender is the topic's last level, or nobody."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from agent.config import KeeperConfig
from agent.link.topics import KeeperTopics, PoolTopic, StationTopics
from agent.pools.keeper import build_keeper
from agent.pools.store import PoolJobState
from tests.support.pool import POOL


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_station_answers_on_its_own_reply_topic_which_the_keeper_reads_as_its_name() -> None:
    topic = StationTopics("mf", "knife-01").pool_replies(POOL)
    assert topic == f"mf/pools/{POOL}/replies/knife-01"
    keeper = KeeperTopics("mf")
    assert keeper.route(topic) == (PoolTopic.REPLIES, f"{POOL}/knife-01")
    assert keeper.route(f"mf/pools/{POOL}/replies") == (PoolTopic.REPLIES, POOL)
    assert keeper.route(f"mf/pools/{POOL}/events/knife-01") is None
    assert ("mf/pools/+/replies/+", 1) in keeper.subscriptions()


async def test_a_reply_on_the_old_topic_naming_no_station_is_ignored(tmp_path: Path) -> None:
    config = KeeperConfig.model_validate({
        "keeper_id": "keeper-test",
        "mqtt": {"host": "127.0.0.1", "port": _closed_port(), "topic_prefix": "mf"},
        "storage": {"dir": str(tmp_path / "keeper")},
    })
    keeper = build_keeper(config)
    try:
        d = keeper.dispatcher
        d.on_info("knife-01", json.dumps({"pools": [POOL], "job_kinds": ["gcode"]}).encode())
        d.on_status("knife-01", b'{"state": "idle"}')
        d.take_job(POOL, b'{"job_id": "front-1", "kind": "gcode", "program": "G0 X1"}')
        [(_, offer)] = d.dispatch(0.0).offers
        claim = {"station": "knife-01", "pool": POOL, "job_id": "front-1", "answer": "claim",
                 "token": offer.offer}
        await keeper.handle((PoolTopic.REPLIES, POOL), json.dumps(claim).encode())
        assert (d.replies, d.ignored_replies) == (1, 1)
        assert d.jobs["front-1"].state is PoolJobState.WAITING
        assert d.offers  # still open, for an answer on the right topic
        await keeper.handle((PoolTopic.REPLIES, f"{POOL}/knife-01"), json.dumps(claim).encode())
        assert d.jobs["front-1"].state.value == PoolJobState.ASSIGNED.value
    finally:
        keeper.db.close()
