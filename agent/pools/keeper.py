"""The pool keeper service: one per broker, beside it. Holds pool jobs until a free member has one.

Why a keeper and not a bare MQTT 5 shared subscription: Mosquitto drops a message published to a
shared subscription that has no connected member (every station busy), does not hand a message
to another member when the one it chose dies before acknowledging, and queues messages for a
member with a persistent session while it is away. Each of these loses a job or leaves it waiting
on a station that cannot run it. The keeper's persistent session makes the broker queue pool jobs
while the keeper is down; its database holds them until a station has taken each one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.aio import wait_event
from agent.config import KeeperConfig
from agent.instance_lock import InstanceLock
from agent.jobs.intake import Rejection
from agent.link.outbox import Outbox, RowKind, dumps
from agent.link.session import BrokerLink, Inbound
from agent.link.topics import KeeperTopics, PoolTopic, TopicName
from agent.migrations import KEEPER_MIGRATIONS
from agent.pools.dispatch import Dispatcher, Duplicate, Outgoing
from agent.pools.store import KEEPER_SCHEMA, PoolJob, PoolJobStore
from agent.schemas.event import EventType
from agent.schemas.pool import PoolAssignment
from agent.storage import Database

log = logging.getLogger(__name__)

Route = tuple[PoolTopic | TopicName, str]


@dataclass
class Keeper:
    """Handles to a running keeper (tests look inside)."""

    config: KeeperConfig
    db: Database
    dispatcher: Dispatcher
    link: BrokerLink[Route]
    outbox: Outbox
    topics: KeeperTopics
    wake: asyncio.Event

    async def handle(self, route: Route, payload: bytes) -> None:
        name, where = route
        now = time.monotonic()
        if name is PoolTopic.JOB:
            self._take_job(where, payload)
        elif name is PoolTopic.REPLIES:
            pool, _, station = where.partition("/")
            if station:
                self._send(self.dispatcher.on_reply(pool, station, payload, now))
            else:
                # No sender in the topic, so nothing the ACL pinned: not believed.
                self.dispatcher.replies += 1
                self.dispatcher.ignored_replies += 1
                log.warning("ignoring a reply for pool %s on a topic naming no station: "
                            "upgrade the station, it must answer on %s/<station>", pool,
                            self.topics.pool(pool, PoolTopic.REPLIES))
        elif name is TopicName.STATUS:
            self.dispatcher.on_status(where, payload)
        elif name is TopicName.INFO:
            self.dispatcher.on_info(where, payload)
        self.wake.set()

    def _take_job(self, pool: str, payload: bytes) -> None:
        events = self.topics.pool(pool, PoolTopic.EVENTS)
        try:
            result = self.dispatcher.take_job(pool, payload)
        except Exception as exc:
            log.exception("taking a pool job failed")
            result = Rejection("internal_error", f"the keeper failed to take this job: "
                                                 f"{type(exc).__name__}")
        if isinstance(result, Rejection):
            self.outbox.add_event(events, EventType.REJECTED, result.job_id,
                                  {"pool": pool, **result.detail()})
        elif isinstance(result, Duplicate):
            self.outbox.add_event(events, EventType.DUPLICATE, result.job_id,
                                  {"pool": pool, **result.detail})

    def _send(self, out: Outgoing) -> None:
        for station, offer in out.offers:
            payload = dumps(offer.model_dump(mode="json"))
            # Straight out, and only briefly valid: a station that is away must not find a
            # pile of stale offers when it comes back. A lost offer just expires here.
            self.link.publish_now(self.topics.station(station, TopicName.OFFER), payload, qos=1,
                                  expiry_s=max(1, round(self.config.offer_timeout_s)))
        for job in out.assignments:
            self._assign(job)

    def _assign(self, job: PoolJob) -> None:
        assert job.station is not None
        assert job.token is not None
        message = PoolAssignment(pool=job.pool, assignment=job.token,
                                 job=json.loads(job.payload))
        # Through the outbox: once assigned, the job must reach that station, across our
        # restarts and the broker's.
        self.outbox.add_message(RowKind.POOL, self.topics.station(job.station, TopicName.POOL_JOB),
                                dumps(message.model_dump(mode="json")))

    async def run_dispatch(self) -> None:
        """Offer waiting jobs whenever something changed, and expire unanswered offers."""
        while True:
            deadline = self.dispatcher.next_deadline()
            await wait_event(self.wake, None if deadline is None else deadline - time.monotonic())
            self.wake.clear()
            now = time.monotonic()
            # Expired even while the broker is away: an offer past its deadline left here would
            # make the deadline wait return at once, again and again, until the broker is back.
            self.dispatcher.expire_offers(now)
            if self.link.connected.is_set():
                self._send(self.dispatcher.dispatch(now))


def build_keeper(config: KeeperConfig) -> Keeper:
    db = Database(config.storage.dir / "keeper.db", extra_schema=KEEPER_SCHEMA,
                  migrations=KEEPER_MIGRATIONS)
    session = db.bump_counter("session")
    topics = KeeperTopics(config.mqtt.topic_prefix)
    dispatcher = Dispatcher(PoolJobStore(db), session, offer_timeout_s=config.offer_timeout_s,
                            max_payload_bytes=config.mqtt.max_payload_bytes,
                            membership=config.members())
    outbox = Outbox(db, config.keeper_id, max_bytes=64 * 1024 * 1024)
    keeper: Keeper
    wake = asyncio.Event()

    async def handle(route: Route, payload: bytes) -> None:
        await keeper.handle(route, payload)

    inbound = Inbound(topics.subscriptions(), topics.route, handle)
    link: BrokerLink[Route] = BrokerLink(config.mqtt, f"station-agent-keeper-{config.keeper_id}",
                                         inbound, db, outbox, will=None,
                                         on_connected=wake.set)
    keeper = Keeper(config, db, dispatcher, link, outbox, topics, wake)
    return keeper


async def run_keeper(config: KeeperConfig, *, stop: asyncio.Event | None = None,
                     on_ready: Callable[[Keeper], None] | None = None) -> None:
    """Run until ``stop`` is set (or the task is cancelled); one keeper per storage dir."""
    with InstanceLock(config.storage.dir, "keeper", "pool keeper"):
        await _run_keeper(config, stop or asyncio.Event(), on_ready)


async def _run_keeper(config: KeeperConfig, stop: asyncio.Event,
                      on_ready: Callable[[Keeper], None] | None) -> None:
    keeper = build_keeper(config)
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(keeper.link.run(), name="keeper-link"),
                     tg.create_task(keeper.run_dispatch(), name="keeper-dispatch")]
            if on_ready is not None:
                on_ready(keeper)
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        keeper.db.close()
