"""The pool keeper's decisions, without I/O: which job is offered to which station, and when.
(Its jobs are kept by :class:`agent.pools.store.PoolJobStore`; the keeper does the messaging.)

Exactly once rests on three rules:
- a pool job is stored (and synced) before the broker's delivery is acknowledged, and stays
  ``waiting`` in the keeper's database until a station has it;
- a job is sent to a station only after that station claimed an offer for it, and then is
  ``assigned`` to that one station until the station answers taken, rejected or handback;
- only a ``handback`` (stored by the station with the assignment's token, so the job can never
  start there later) makes the job ``waiting`` again.
Offers themselves are cheap and forgettable: an unanswered one expires and the job is offered
elsewhere; a late claim for it is ignored (the station stored nothing for an offer).

Only the station a job was offered or assigned to can answer for it: a reply counts only on the
reply topic of the job's own pool that names that station (``replies/<station>``, which the
broker's ACL lets only that station write), from a member of that pool (by the keeper's
``[pools.<name>] members`` when configured), carrying the offer's or assignment's token: 128
random bits sent to that station alone, compared in constant time.

Which stations are free comes from their retained ``status`` and ``info`` messages; the view
may be stale, which costs at most a declined offer, never a job.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.jobs.intake import Rejection, decode_object, guess_job_id, validation_rejection
from agent.pools.store import PoolJob, PoolJobState, PoolJobStore
from agent.schemas.job import JobId, JobKind
from agent.schemas.pool import Answer, PoolOffer, PoolReply

log = logging.getLogger(__name__)

# After a decline or a handback, a station is not offered anything again until its status
# changes or this long has passed (it may have declined for a reason its status does not show,
# an open door for one).
DECLINE_BACKOFF_S = 2.0
# After taking a job, a station is busy until its status says otherwise, or this long.
TAKEN_BACKOFF_S = 10.0
# A station that let an offer expire is probably gone; its Will may take a while to come.
SILENT_BACKOFF_S = 30.0


class _JobHead(BaseModel):
    """What the keeper checks of a pool job; the station that takes it checks the rest."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    job_id: JobId
    kind: JobKind


@dataclass
class Member:
    station: str
    pools: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    state: str = "offline"
    # The offer or assignment this station is busy answering (one at a time).
    engaged: str | None = None
    not_before: float = 0.0
    last_given: float = 0.0

    def free(self, now: float) -> bool:
        return self.state == "idle" and self.engaged is None and now >= self.not_before


@dataclass(frozen=True)
class Offer:
    token: str
    job_id: str
    station: str
    deadline: float


@dataclass(frozen=True)
class Duplicate:
    """A pool job whose job_id the keeper has seen before, and where that one stands."""

    job_id: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Outgoing:
    """What the keeper has decided to send."""

    offers: list[tuple[str, PoolOffer]] = field(default_factory=list)  # (station, offer)
    assignments: list[PoolJob] = field(default_factory=list)


class Dispatcher:
    def __init__(self, store: PoolJobStore, session: int, *, offer_timeout_s: float,
                 max_payload_bytes: int,
                 membership: Mapping[str, frozenset[str]] | None = None) -> None:
        self.store = store
        self.session = session
        self.offer_timeout_s = offer_timeout_s
        self.max_payload_bytes = max_payload_bytes
        # pool -> its member stations, from the keeper's config; None: the broker's ACL decides.
        self.membership = None if membership is None else dict(membership)
        self.members: dict[str, Member] = {}
        self.offers: dict[str, Offer] = {}
        self.jobs: OrderedDict[str, PoolJob] = OrderedDict()  # waiting and assigned, by arrival
        # Replies read, and those that changed nothing (late, repeated, or not the sender's).
        self.replies = 0
        self.ignored_replies = 0
        self._load()

    def _load(self) -> None:
        for job in self.store.open_jobs():
            self.jobs[job.job_id] = job
            if job.station is not None and job.token is not None:
                self._member(job.station).engaged = job.token

    def _member(self, station: str) -> Member:
        m = self.members.get(station)
        if m is None:
            m = self.members[station] = Member(station)
        return m

    @staticmethod
    def _token() -> str:
        # Unguessable: a station holding only its own credentials cannot answer for a job it
        # was never sent, whatever it knows of the keeper's sessions.
        return secrets.token_hex(16)

    def is_member(self, station: str, pool: str) -> bool:
        """By the keeper's config; without one, the broker's ACL decided who could write."""
        if self.membership is None:
            return True
        return station in self.membership.get(pool, frozenset())

    # -- the planner's pool jobs -----------------------------------------------------------

    def take_job(self, pool: str, payload: bytes) -> Rejection | PoolJob | Duplicate:
        """Store a pool job; a Rejection for a bad one, a Duplicate for a job_id seen before."""
        obj, rejection = decode_object(payload, self.max_payload_bytes)
        if rejection is not None:
            return rejection
        if self.membership is not None and pool not in self.membership:
            assert obj is not None
            known = ", ".join(sorted(self.membership)) or "none"
            return Rejection("unknown_pool", f"the keeper's config has no pool {pool!r} "
                             f"(pools: {known})", guess_job_id(obj))
        assert obj is not None
        try:
            head = _JobHead.model_validate(obj)
        except ValidationError as exc:
            return validation_rejection(exc, guess_job_id(obj), "job")
        job_id = head.job_id
        seen = self.store.seen(job_id)
        if seen is not None:
            return Duplicate(job_id, {"state": seen.state, "station": seen.station,
                                      "answer": seen.answer})
        job = self.store.add(job_id, pool, head.kind.value, payload)
        self.jobs[job_id] = job
        return job

    # -- what the stations say -------------------------------------------------------------

    def on_status(self, station: str, payload: bytes) -> None:
        m = self._member(station)
        state = _fields(payload).get("state")
        m.state = state if isinstance(state, str) else "offline"
        # Whatever held it back (a decline, a job it took, silence) is older than this news.
        m.not_before = 0.0

    def on_info(self, station: str, payload: bytes) -> None:
        m = self._member(station)
        info = _fields(payload)
        claimed = _names(info.get("pools"))
        m.pools = frozenset(p for p in claimed if self.is_member(station, p))
        if m.pools != claimed:
            log.warning("%s claims pools %s that the keeper's config does not list it in: "
                        "it is offered none of their jobs", station,
                        ", ".join(sorted(claimed - m.pools)))
        m.kinds = _names(info.get("job_kinds"))

    def on_reply(self, pool: str, station: str, payload: bytes, now: float) -> Outgoing:
        """A reply that came on ``<prefix>/pools/<pool>/replies/<station>``."""
        self.replies += 1
        out = self._on_reply(pool, station, payload, now)
        if out is None:
            self.ignored_replies += 1
            return Outgoing()
        return out

    def _on_reply(self, pool: str, station: str, payload: bytes, now: float) -> Outgoing | None:
        try:
            reply = PoolReply.model_validate_json(payload)
        except ValidationError as exc:
            log.warning("ignoring a malformed pool reply: %s", exc.errors()[0]["msg"])
            return None
        if reply.station != station or reply.pool != pool:
            log.warning("ignoring a reply for %s/%s on the reply topic of %s/%s",
                        reply.pool, reply.station, pool, station)
            return None
        if not self.is_member(station, pool):
            log.warning("ignoring a reply from %s, which the keeper's config does not list as "
                        "a member of pool %s", station, pool)
            return None
        if reply.answer in (Answer.CLAIM, Answer.DECLINE):
            return self._on_offer_answer(reply, now)
        return Outgoing() if self._on_assignment_answer(reply, now) else None

    def _on_offer_answer(self, reply: PoolReply, now: float) -> Outgoing | None:
        m = self.members.get(reply.station)
        # A station has one offer at a time: the one it is engaged with, if any.
        offer = None if m is None or m.engaged is None else self.offers.get(m.engaged)
        if (offer is None or offer.station != reply.station or offer.job_id != reply.job_id
                or not _same_token(offer.token, reply.token)):
            return None  # expired or not ours: the station stored nothing for it
        job = self.jobs.get(offer.job_id)
        if job is not None and job.pool != reply.pool:
            return None  # answered on another pool's topic
        assert m is not None
        del self.offers[offer.token]
        m.engaged = None
        if job is None or job.state is not PoolJobState.WAITING:
            return Outgoing()
        if reply.answer is Answer.DECLINE:
            m.not_before = now + DECLINE_BACKOFF_S
            return Outgoing()
        token = self._token()
        self.store.assign(job.job_id, reply.station, token)
        job.state, job.station, job.token = PoolJobState.ASSIGNED, reply.station, token
        m.engaged = token
        m.last_given = now
        return Outgoing(assignments=[job])

    def _on_assignment_answer(self, reply: PoolReply, now: float) -> bool:
        """Settle the assignment; False if the reply is not the holder's answer to it."""
        job = self.jobs.get(reply.job_id)
        if (job is None or job.state is not PoolJobState.ASSIGNED or job.token is None
                or job.pool != reply.pool or job.station != reply.station
                or not _same_token(job.token, reply.token)):
            # Settled already (an answer given again), or not this station's to answer.
            if job is not None and job.station is not None and job.station != reply.station:
                log.warning("ignoring %s from %s for %s, which is %s's", reply.answer.value,
                            reply.station, reply.job_id, job.station)
            return False
        m = self._member(reply.station)
        m.engaged = None
        if reply.answer is Answer.HANDBACK:
            new_state, station, token = PoolJobState.WAITING, None, None
            m.not_before = now + DECLINE_BACKOFF_S
        else:
            new_state, station, token = PoolJobState.DONE, job.station, job.token
            if reply.answer is Answer.TAKEN:
                m.state, m.not_before = "busy", now + TAKEN_BACKOFF_S
        self.store.settle(job.job_id, new_state, station, token, reply.answer)
        if new_state is PoolJobState.DONE:
            del self.jobs[job.job_id]
        else:
            job.state, job.station, job.token = new_state, None, None
        return True

    # -- deciding --------------------------------------------------------------------------

    def expire_offers(self, now: float) -> None:
        for token, offer in list(self.offers.items()):
            if offer.deadline <= now:
                del self.offers[token]
                m = self._member(offer.station)
                m.engaged = None
                m.not_before = now + SILENT_BACKOFF_S
                log.info("%s did not answer the offer of %s", offer.station, offer.job_id)

    def next_deadline(self) -> float | None:
        return min((o.deadline for o in self.offers.values()), default=None)

    def dispatch(self, now: float) -> Outgoing:
        """Offer each waiting job (oldest first) to the free member that waited longest."""
        out = Outgoing()
        offered = {o.job_id for o in self.offers.values()}
        free = [m for m in self.members.values() if m.free(now)]
        if not free:
            return out
        for job in self.jobs.values():
            if job.state is not PoolJobState.WAITING or job.job_id in offered:
                continue
            able = [m for m in free if job.pool in m.pools and job.kind in m.kinds]
            if not able:
                continue
            m = min(able, key=lambda m: (m.last_given, m.station))
            token = self._token()
            self.offers[token] = Offer(token, job.job_id, m.station, now + self.offer_timeout_s)
            m.engaged = token
            free.remove(m)
            out.offers.append((m.station, PoolOffer(pool=job.pool, job_id=job.job_id,
                                                    kind=job.kind, offer=token)))
            if not free:
                break
        return out

    def counts(self) -> dict[str, int]:
        waiting = sum(1 for j in self.jobs.values() if j.state is PoolJobState.WAITING)
        return {"waiting": waiting, "assigned": len(self.jobs) - waiting,
                "offers": len(self.offers)}


def _same_token(ours: str, theirs: str) -> bool:
    """Constant time: a reply's timing tells nothing about how much of a token it got right."""
    return hmac.compare_digest(ours.encode("ascii"), theirs.encode("ascii"))


def _fields(payload: bytes) -> dict[str, Any]:
    """A station's retained JSON, or {} (an empty payload is a cleared retained message)."""
    try:
        obj = json.loads(payload) if payload else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _names(value: Any) -> frozenset[str]:
    return frozenset(v for v in value if isinstance(v, str)) if isinstance(value, list) else (
        frozenset())
