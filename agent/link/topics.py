"""Every topic is ``<topic_prefix>/<station_id>/<name>``; payloads are UTF-8 JSON."""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass

from agent.schemas.pool import POOLS

__all__ = ["POOLS", "KeeperTopics", "PoolTopic", "StationTopics", "TopicName", "pool_topic"]


class TopicName(enum.StrEnum):
    JOB = "job"
    CMD = "cmd"
    EVENTS = "events"
    STATUS = "status"
    TELEMETRY = "telemetry"
    INFO = "info"
    QUEUE = "queue"
    # Pool dispatch (see agent.schemas.pool): offers and jobs from the pool keeper.
    OFFER = "offer"
    POOL_JOB = "pool_job"


@dataclass(frozen=True)
class StationTopics:
    prefix: str
    station: str

    def topic(self, name: TopicName) -> str:
        return f"{self.prefix}/{self.station}/{name.value}"

    @property
    def job(self) -> str:
        return self.topic(TopicName.JOB)

    @property
    def cmd(self) -> str:
        return self.topic(TopicName.CMD)

    @property
    def events(self) -> str:
        return self.topic(TopicName.EVENTS)

    @property
    def status(self) -> str:
        return self.topic(TopicName.STATUS)

    @property
    def telemetry(self) -> str:
        return self.topic(TopicName.TELEMETRY)

    @property
    def info(self) -> str:
        return self.topic(TopicName.INFO)

    @property
    def queue(self) -> str:
        return self.topic(TopicName.QUEUE)

    def subscriptions(self, *, pools: bool) -> list[tuple[str, int]]:
        names = [TopicName.JOB, TopicName.CMD]
        if pools:
            names += [TopicName.OFFER, TopicName.POOL_JOB]
        return [(self.topic(n), 1) for n in names]

    def incoming(self, topic: str) -> TopicName | None:
        """Which of our inbound topics ``topic`` is, or None for anything else."""
        prefix = f"{self.prefix}/{self.station}/"
        if not topic.startswith(prefix):
            return None
        try:
            name = TopicName(topic[len(prefix):])
        except ValueError:
            return None
        return name if name in _INBOUND else None

    def pool_replies(self, pool: str) -> str:
        """``<prefix>/pools/<pool>/replies/<station>``: the ACL pins the last level to us."""
        return f"{pool_topic(self.prefix, pool, PoolTopic.REPLIES)}/{self.station}"


_INBOUND = frozenset({TopicName.JOB, TopicName.CMD, TopicName.OFFER, TopicName.POOL_JOB})


class PoolTopic(enum.StrEnum):
    """``<prefix>/pools/<pool>/<name>``."""

    JOB = "job"  # in: from the planner
    EVENTS = "events"  # out: the keeper's own events (a malformed pool job, a duplicate)
    REPLIES = "replies"  # in: the members' answers, on replies/<station>


def pool_topic(prefix: str, pool: str, name: PoolTopic) -> str:
    return f"{prefix}/{POOLS}/{pool}/{name.value}"


@dataclass(frozen=True)
class KeeperTopics:
    """What the pool keeper subscribes to and how it tells the topics apart."""

    prefix: str

    def pool(self, pool: str, name: PoolTopic) -> str:
        return pool_topic(self.prefix, pool, name)

    def station(self, station: str, name: TopicName) -> str:
        return StationTopics(self.prefix, station).topic(name)

    def subscriptions(self) -> list[tuple[str, int]]:
        return [
            (f"{self.prefix}/{POOLS}/+/{PoolTopic.JOB.value}", 1),
            (f"{self.prefix}/{POOLS}/+/{PoolTopic.REPLIES.value}/+", 1),
            # The topic of stations from before replies named their sender: only to say so.
            (f"{self.prefix}/{POOLS}/+/{PoolTopic.REPLIES.value}", 1),
            (f"{self.prefix}/+/{TopicName.STATUS.value}", 1),
            (f"{self.prefix}/+/{TopicName.INFO.value}", 1),
        ]

    def route(self, topic: str) -> tuple[PoolTopic | TopicName, str] | None:
        """(which topic, pool or station name) for a topic we subscribe to, else None.

        A reply's is ``<pool>/<station>``; one on the old ``replies`` topic, which names no
        sender, is ``<pool>`` alone."""
        parts = topic.split("/")
        if parts[0] != self.prefix:
            return None
        if len(parts) == 5 and parts[1] == POOLS and parts[3] == PoolTopic.REPLIES.value:
            return PoolTopic.REPLIES, f"{parts[2]}/{parts[4]}"
        if len(parts) == 4 and parts[1] == POOLS:
            with contextlib.suppress(ValueError):
                name = PoolTopic(parts[3])
                if name is not PoolTopic.EVENTS:
                    return name, parts[2]
            return None
        if len(parts) == 3 and parts[1] != POOLS and parts[2] in (TopicName.STATUS,
                                                                   TopicName.INFO):
            return TopicName(parts[2]), parts[1]
        return None
