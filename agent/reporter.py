"""What the station tells the world: events (via the outbox), the retained status, telemetry."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from agent.link.outbox import Outbox, RowKind, dumps
from agent.link.topics import StationTopics
from agent.schemas.base import utc_now_rfc3339
from agent.schemas.event import LIFECYCLE_EVENTS, Event, EventType
from agent.schemas.pool import PoolReply
from agent.schemas.queue import QueueView
from agent.schemas.status import Info, StationState, Status
from agent.storage import StorageError

log = logging.getLogger(__name__)

PRESSURE_REPORT_INTERVAL_S = 5.0

# Publishes straight out while connected (topic, payload, qos); False when it could not.
LiveSink = Callable[[str, bytes, int], bool]
# The same for a retained QoS 1 message (the status while the disk cannot take it).
RetainedSink = Callable[[str, bytes], bool]


class Reporter:
    def __init__(self, outbox: Outbox, topics: StationTopics, session: int) -> None:
        self.outbox = outbox
        self.topics = topics
        self.session = session
        self.state = StationState.IDLE
        self.job_id: str | None = None
        self.device: dict[str, Any] = {}
        self._last_status: tuple[StationState, str | None, tuple[tuple[str, Any], ...]] | None
        self._last_status = None
        self._last_pressure = -PRESSURE_REPORT_INTERVAL_S
        # Set by the broker link: publishes telemetry and pool offers' answers directly.
        self.live: LiveSink | None = None
        self.live_retained: RetainedSink | None = None
        # Once the goodbye is queued, nothing may replace it as the retained status.
        self.closing = False

    def event(self, event: EventType, job_id: str | None,
              detail: dict[str, Any] | None = None) -> Event | None:
        """Queue an event. On a full or failing disk a lifecycle event raises StorageError (the
        caller decides: not acknowledge, keep the final state in memory...); a progress or
        warning event is skipped, as the outbox would drop it under pressure (None)."""
        try:
            ev = self.outbox.add_event(self.topics.events, event, job_id, detail)
        except StorageError:
            # Inside a caller's transaction the whole of it failed: that caller must know.
            if event in LIFECYCLE_EVENTS or self.outbox.db.in_transaction:
                raise
            log.info("%s event for %s not recorded: storage fault", event.value, job_id)
            return None
        self._report_pressure()
        return ev

    def _report_pressure(self) -> None:
        """At most one storage_pressure event every few seconds, counting everything dropped."""
        now = time.monotonic()
        if now - self._last_pressure < PRESSURE_REPORT_INTERVAL_S:
            return
        report = self.outbox.take_pressure_report()
        if report is None:
            return
        self._last_pressure = now
        try:
            self.outbox.add_event(self.topics.events, EventType.STORAGE_PRESSURE, None,
                                  {"dropped": report, "outbox_bytes": self.outbox.size,
                                   "outbox_max_bytes": self.outbox.max_bytes})
        except StorageError:
            for kind, n in report.items():
                self.outbox._note_dropped(kind, n)  # told with the next report

    def status(self, state: StationState, job_id: str | None, *, force: bool = False) -> None:
        if self.closing:
            return
        key = (state, job_id, tuple(sorted((k, str(v)) for k, v in self.device.items())))
        if key == self._last_status and not force:
            return
        self.state, self.job_id = state, job_id
        st = Status(station=self.topics.station, state=state, job_id=job_id,
                    ts=utc_now_rfc3339(), session=self.session, device=dict(self.device))
        payload = dumps(st.model_dump(mode="json"))
        if state is not StationState.STORAGE_ERROR and not self.outbox.hold_status:
            try:
                self.outbox.add_retained(RowKind.STATUS, self.topics.status, payload)
            except StorageError:
                pass  # the station learns of the fault from this write and says so
            else:
                self._last_status = key
                return
        # The disk cannot take it: straight to the broker, retained (again on reconnect).
        sink = self.live_retained
        if sink is not None and sink(self.topics.status, payload):
            self._last_status = key

    def going_offline(self) -> bool:
        """Queue the retained ``offline`` status behind everything already queued.

        Through the outbox, not around it: an older status still waiting there would otherwise
        be published after the goodbye and stay retained while the station is gone. On a full
        disk it goes straight out instead (False: nothing to wait for in the outbox).
        """
        self.closing = True
        try:
            self.outbox.add_retained(RowKind.STATUS, self.topics.status, self.offline_payload())
        except StorageError:
            if self.live_retained is not None:
                self.live_retained(self.topics.status, self.offline_payload())
            return False
        return True

    def offline_payload(self) -> bytes:
        """The Last Will and the clean-shutdown status."""
        return dumps({"v": 1, "station": self.topics.station, "state": StationState.OFFLINE.value,
                      "session": self.session, "job_id": None, "device": {}})

    def info(self, info: Info) -> None:
        payload = dumps(info.model_dump(mode="json"))
        try:
            self.outbox.add_retained(RowKind.INFO, self.topics.info, payload)
        except StorageError:
            log.info("info not recorded: storage fault (sent again when storage works)")

    def queue(self, view: QueueView) -> None:
        """The retained queue view; an older one not yet published is superseded."""
        try:
            self.outbox.add_retained(RowKind.QUEUE, self.topics.queue,
                                     dumps(view.model_dump(mode="json")))
        except StorageError:
            log.info("queue view not recorded: storage fault (sent with the next change)")

    def telemetry(self, data: dict[str, Any]) -> None:
        payload = dumps({"v": 1, "station": self.topics.station, "ts": utc_now_rfc3339(), **data})
        sink = self.live
        if sink is not None and sink(self.topics.telemetry, payload, 0):
            return
        try:
            self.outbox.add_telemetry(self.topics.telemetry, payload)
        except StorageError:
            return  # telemetry is the first thing to go anyway
        self._report_pressure()

    def pool_reply(self, reply: PoolReply, *, durable: bool) -> None:
        """Answer the pool keeper. Claims and declines only matter now: straight out (a lost
        one just makes the keeper wait out the offer). Taken, rejected and handback decide where
        a job is: through the outbox, never lost."""
        topic = self.topics.pool_replies(reply.pool)
        payload = dumps(reply.model_dump(mode="json", exclude_none=True))
        if durable:
            self.outbox.add_message(RowKind.POOL, topic, payload)
        elif self.live is not None:
            self.live(topic, payload, 1)
