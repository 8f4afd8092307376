"""Every topic is ``<topic_prefix>/<station_id>/<name>``; payloads are UTF-8 JSON."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TopicName(enum.StrEnum):
    JOB = "job"
    CMD = "cmd"
    EVENTS = "events"
    STATUS = "status"
    TELEMETRY = "telemetry"
    INFO = "info"


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

    def incoming(self, topic: str) -> TopicName | None:
        """Which of our inbound topics ``topic`` is, or None for anything else."""
        if topic == self.job:
            return TopicName.JOB
        if topic == self.cmd:
            return TopicName.CMD
        return None
