"""A station's side of pool dispatch: answer the keeper's offers, take or hand back its jobs.

The station claims an offer only when it could start the job at once; it answers an
assignment exactly once (the answer is stored with the assignment's token, in the same
transaction as the job itself), so a redelivered assignment is answered again, never run again,
and a job handed back can never start here from a stale delivery.

What it uses of its station is :class:`agent.pools.host.PoolHost`, and nothing else; its rows
are kept by :class:`agent.pools.store.AnsweredAssignments`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from pydantic import ValidationError

from agent.jobs.intake import AcceptedJob, Rejection
from agent.link.outbox import dumps
from agent.pools.host import PoolHost
from agent.pools.store import AnsweredAssignments
from agent.schemas.event import EventType
from agent.schemas.pool import Answer, PoolAssignment, PoolOffer, PoolReply
from agent.schemas.status import StationState

log = logging.getLogger(__name__)


class PoolMember:
    def __init__(self, station: PoolHost, answers: AnsweredAssignments, *, station_id: str,
                 pools: Iterable[str]) -> None:
        self.station = station
        self.answers = answers
        self.station_id = station_id
        self.pools = frozenset(pools)

    def busy_reason(self) -> str | None:
        """Why this station could not start a job right now (None: it could)."""
        st = self.station
        state, _ = st.derive_state()
        if state is not StationState.IDLE:
            return state.value
        if st.runner.current is not None or st.store.count_waiting() > 0:
            return "busy"
        return st.start_blocker()

    # -- offers ----------------------------------------------------------------------------

    def on_offer(self, payload: bytes) -> None:
        try:
            offer = PoolOffer.model_validate_json(payload)
        except ValidationError as exc:
            # Only the keeper writes offers: a bad one is its bug, not the planner's input.
            log.warning("ignoring a malformed pool offer: %s", exc.errors()[0]["msg"])
            return
        reason = self._offer_refusal(offer)
        answer = Answer.CLAIM if reason is None else Answer.DECLINE
        self._reply(offer.pool, offer.job_id, answer, offer.offer, reason, durable=False)

    def _offer_refusal(self, offer: PoolOffer) -> str | None:
        if offer.pool not in self.pools:
            return "not_a_member"
        if offer.kind not in self.station.job_kinds:
            return "kind_not_supported"
        if self.station.store.get(offer.job_id) is not None:
            return "already_known"
        return self.busy_reason()

    # -- assignments -----------------------------------------------------------------------

    async def on_assignment(self, payload: bytes) -> None:
        st = self.station
        # A pool job can be as large as any job: parsed off the event loop, as handle_job does.
        unwrapped = await asyncio.to_thread(_unwrap, payload)
        if unwrapped is None:
            return
        assignment, job_payload = unwrapped
        job_id = str(assignment.job.get("job_id", ""))[:128]
        earlier = self.answers.answer_to(assignment.assignment)
        if earlier is not None:
            self._reply(assignment.pool, job_id, earlier.answer, assignment.assignment,
                        earlier.reason, durable=True)
            return
        if assignment.pool not in self.pools:
            self._answer(assignment, job_id, Answer.HANDBACK, "not_a_member")
            return
        if st.store.get(job_id) is not None:
            # Already here (sent straight to this station too): it runs once, here.
            st.reporter.event(EventType.DUPLICATE, job_id, {"pool": assignment.pool})
            self._answer(assignment, job_id, Answer.TAKEN, "duplicate")
            return
        if (reason := self.busy_reason()) is not None:
            self._answer(assignment, job_id, Answer.HANDBACK, reason)
            return
        result = await asyncio.to_thread(st.validate_job, job_payload, pool=assignment.pool)
        if isinstance(result, Rejection):
            st.reject(result)
            self._answer(assignment, job_id, Answer.REJECTED, result.code)
            return
        # The station may have become busy while the job was being checked.
        if (reason := self.busy_reason()) is not None:
            self._answer(assignment, job_id, Answer.HANDBACK, reason)
            return
        self._take(assignment, result)

    def _take(self, assignment: PoolAssignment, job: AcceptedJob) -> None:
        st = self.station
        with self.answers.transaction():
            st.store_job(job, pool=assignment.pool)
            self._answer(assignment, job.request.job_id, Answer.TAKEN, None)
        st.runner.notify_queue()

    def _answer(self, assignment: PoolAssignment, job_id: str, answer: Answer,
                reason: str | None) -> None:
        with self.answers.transaction():
            self.answers.record(assignment.assignment, assignment.pool, job_id, answer, reason)
            self._reply(assignment.pool, job_id, answer, assignment.assignment, reason,
                        durable=True)

    def _reply(self, pool: str, job_id: str, answer: Answer, token: str, reason: str | None,
               *, durable: bool) -> None:
        reply = PoolReply(station=self.station_id, pool=pool, job_id=job_id,
                          answer=answer, token=token, reason=reason)
        self.station.reporter.pool_reply(reply, durable=durable)


def _unwrap(payload: bytes) -> tuple[PoolAssignment, bytes] | None:
    """The assignment and the planner's job in it, as the bytes a direct job would be."""
    try:
        assignment = PoolAssignment.model_validate_json(payload)
    except ValidationError as exc:
        # Only the keeper writes assignments: a bad one is its bug, not the planner's input.
        log.warning("ignoring a malformed pool assignment: %s", exc.errors()[0]["msg"])
        return None
    return assignment, dumps(assignment.job)
