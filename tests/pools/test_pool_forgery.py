"""A station's credentials do not let it answer for another station's pool job (issue 13).

Through Mosquitto with the shipped ACL: every party logs in as itself, the rogue with the
credentials of a real member of another pool.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.link.mqtt_client import ConnectOptions, MqttConnection, PublishRejected
from agent.pools.store import PoolJobState
from tests.pools.test_pool_acl import ACL
from tests.pools.test_pool_dispatch import label_job
from tests.support.broker import Broker, running_broker
from tests.support.pool import (
    POOL,
    FakeMember,
    PoolPlanner,
    PoolStation,
    keeper_config,
    running_keeper,
)

pytestmark = pytest.mark.timeout(120)

# The shipped ACL's users, and one more member of the laser pool.
USERS = ("controller", "pool-keeper", "cutter-01", "laser-02", "laser-03")
EXTRA_ACL = "\nuser laser-03\ntopic write mf/pools/laser/replies/laser-03\n"
MEMBERS = {"laser": {"members": ["laser-02", "laser-03"]}, "knife": {"members": ["cutter-01"]}}


def _login(user: str) -> dict[str, str]:
    return {"username": user, "password": f"{user}-secret"}


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"{u}:{u}-secret\n" for u in USERS))
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
    acl = tmp_path / "station-agent.acl"
    acl.write_text(ACL.read_text() + EXTRA_ACL)
    workdir = tmp_path / "broker"
    workdir.mkdir()
    with running_broker(workdir, extra_conf=f"password_file {passwd}\nacl_file {acl}",
                        anonymous=False) as broker:
        yield broker


def _handback(station: str, pool: str, job_id: str, token: str) -> bytes:
    return json.dumps({"v": 1, "station": station, "pool": pool, "job_id": job_id,
                       "answer": "handback", "token": token}).encode()


async def test_a_forged_handback_for_another_pools_job_is_ignored(
        tmp_path: Path, acl_broker: Broker) -> None:
    base = keeper_config(tmp_path, acl_broker)
    config = keeper_config(tmp_path, acl_broker, keeper_id="main", pools=MEMBERS,
                           mqtt={**base.mqtt.model_dump(), **_login("pool-keeper")})
    rogue = MqttConnection(ConnectOptions(host=acl_broker.host, port=acl_broker.port,
                                          client_id="rogue", username="cutter-01",
                                          password="cutter-01-secret"),
                           lambda msg: None)
    async with PoolPlanner(acl_broker, **_login("controller")) as planner, \
            running_keeper(config) as running, \
            FakeMember(acl_broker, "laser-02", ("laser",), **_login("laser-02")) as holder:
        keeper = running.keeper
        assert keeper is not None
        dispatcher = keeper.dispatcher
        # laser-02 claims the laser pool's job and holds it, not yet answering (it is still
        # checking the job, say).
        await planner.to_pool(label_job("laser-label-1"), pool="laser")
        offer = await holder.wait(holder.offers)
        await holder.reply("laser", "laser-label-1", "claim", offer["offer"])
        token = (await holder.wait(holder.assignments))["assignment"]
        assert len(token) == 32  # 128 random bits, not "<session>-<n>"

        async with FakeMember(acl_broker, "laser-03", ("laser",),
                              **_login("laser-03")) as second:
            # The second laser station is known to the keeper, idle and free.
            await planner.wait_for(lambda: "laser-03" in dispatcher.members and
                                   dispatcher.members["laser-03"].state == "idle" and
                                   "laser" in dispatcher.members["laser-03"].pools, 20,
                                   "the keeper to see laser-03 idle")
            async with rogue:
                own_topic = "mf/pools/knife/replies/cutter-01"
                forged = [
                    # Guessed tokens, in the keeper's old "<session>-<n>" form and the new one,
                    # on the rogue's own pool topic, posing as the holder or as itself.
                    *(_handback(station, pool, "laser-label-1", guess)
                      for guess in ("1-1", "1-2", "2-2", "0" * 32)
                      for station, pool in (("laser-02", "laser"), ("cutter-01", "knife"))),
                    # The right token, on the wrong pool's topic.
                    _handback("laser-02", "laser", "laser-label-1", token),
                    _handback("cutter-01", "knife", "laser-label-1", token),
                    _handback("cutter-01", "laser", "laser-label-1", token),
                ]
                read, ignored = dispatcher.replies, dispatcher.ignored_replies
                for payload in forged:
                    await rogue.publish(own_topic, payload)
                # The laser pool's topic under the holder's name is not the rogue's to write.
                with pytest.raises(PublishRejected):
                    await rogue.publish("mf/pools/laser/replies/laser-02",
                                        _handback("laser-02", "laser", "laser-label-1", token))
                await planner.wait_for(lambda: dispatcher.replies - read == len(forged), 20,
                                       "the keeper to read every forged handback")
            assert dispatcher.ignored_replies - ignored == len(forged)
            job = dispatcher.jobs["laser-label-1"]
            assert (job.state, job.station) == (PoolJobState.ASSIGNED, "laser-02")
            assert dispatcher.counts() == {"waiting": 0, "assigned": 1, "offers": 0}
            assert second.offers == [] and second.assignments == []

            # The holder's own handback, on its own topic, does count: and then (only then)
            # the second station is offered the job.
            await holder.reply("laser", "laser-label-1", "handback", token)
            offered: dict[str, Any] = await second.wait(second.offers)
            assert offered["job_id"] == "laser-label-1"
        assert planner.events_for("laser-label-1") == []


async def test_a_station_claiming_a_pool_the_keeper_does_not_list_it_in_gets_none_of_its_jobs(
        tmp_path: Path, broker: Broker) -> None:
    members = {POOL: {"members": ["knife-01"]}, "lasers": {"members": ["laser-01"]}}
    config = keeper_config(tmp_path, broker, pools=members)
    async with PoolPlanner(broker) as planner, running_keeper(config) as running, \
            FakeMember(broker, "knife-01", (POOL, "lasers")) as rogue:
        keeper = running.keeper
        assert keeper is not None
        dispatcher = keeper.dispatcher
        await planner.wait_for(lambda: "knife-01" in dispatcher.members and
                               dispatcher.members["knife-01"].state == "idle" and
                               dispatcher.members["knife-01"].kinds, 20,
                               "the keeper to see knife-01 idle")
        # The rogue's info claims the lasers pool: a laser job comes first, and waits.
        await planner.to_pool(label_job("laser-1"), pool="lasers")
        await planner.wait_for(lambda: dispatcher.counts()["waiting"] == 1, 20, "laser-1 held")
        # Then a job of its own pool. Jobs are offered oldest first to a free member, so had
        # the rogue counted as a laser member, laser-1 would have been its first offer.
        await planner.to_pool(label_job("knife-1"))
        first = await rogue.wait(rogue.offers)
        assert first["job_id"] == "knife-1"
        assert dispatcher.members["knife-01"].pools == frozenset({POOL})
        # A real member of the lasers pool is offered laser-1 at once.
        async with FakeMember(broker, "laser-01", ("lasers",)) as laser:
            offered = await laser.wait(laser.offers)
            assert offered["job_id"] == "laser-1"
        assert [o["job_id"] for o in rogue.offers] == ["knife-1"]
        # A pool the config does not have at all: rejected by the keeper, not held forever.
        await planner.to_pool(label_job("patch-1"), pool="embroidery")
        await planner.wait_for(lambda: planner.pool_events, 20, "the keeper's answer")
        [event] = planner.pool_events
        assert (event["event"], event["job_id"]) == ("rejected", "patch-1")
        assert event["detail"]["error"]["code"] == "unknown_pool"


async def test_a_member_of_a_configured_pool_still_runs_its_jobs(
        tmp_path: Path, broker: Broker) -> None:
    """The configured membership and the new reply topic, end to end with a real station."""
    config = keeper_config(tmp_path, broker, pools={POOL: {"members": ["knife-01"]}})
    async with PoolPlanner(broker) as planner, running_keeper(config), \
            PoolStation(tmp_path, broker, "knife-01", pools=(POOL, "lasers")) as station:
        await planner.to_pool(label_job("knife-2"))
        await planner.wait_event("knife-2", "succeeded", timeout=60)
        assert planner.accepted_by("knife-2") == [station.name]
        assert [r["answer"] for r in planner.replies] == ["claim", "taken"]
