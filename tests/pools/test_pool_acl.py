"""The shipped Mosquitto ACL lets a pool job through, with every party logged in as itself."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pools.test_pool_dispatch import label_job
from tests.support.broker import Broker, running_broker
from tests.support.pool import PoolPlanner, PoolStation, keeper_config, running_keeper

pytestmark = pytest.mark.timeout(120)

ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "station-agent.acl"
USERS = ("controller", "pool-keeper", "cutter-01", "laser-02")


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"{u}:{u}-secret\n" for u in USERS))
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
    workdir = tmp_path / "broker"
    workdir.mkdir()
    conf = f"password_file {passwd}\nacl_file {ACL}"
    with running_broker(workdir, extra_conf=conf, anonymous=False) as broker:
        yield broker


def _login(user: str) -> dict[str, str]:
    return {"username": user, "password": f"{user}-secret"}


async def test_a_pool_job_runs_through_the_shipped_acl(tmp_path: Path, acl_broker: Broker) -> None:
    keeper = keeper_config(tmp_path, acl_broker, keeper_id="main",
                           mqtt={**keeper_config(tmp_path, acl_broker).mqtt.model_dump(),
                                 **_login("pool-keeper")})
    async with PoolPlanner(acl_broker, **_login("controller")) as planner, \
            running_keeper(keeper), \
            PoolStation(tmp_path, acl_broker, "cutter-01", pools=("knife",),
                        mqtt=_login("cutter-01")) as station:
        await planner.to_pool(label_job("front-acl"), pool="knife")
        done = await planner.wait_event("front-acl", "succeeded", timeout=60)
        assert done["station"] == station.name
        assert planner.accepted_by("front-acl") == ["cutter-01"]
