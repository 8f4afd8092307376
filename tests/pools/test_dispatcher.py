"""The keeper's decisions, fed message by message (no broker): who gets which job, and when."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.jobs.intake import Rejection
from agent.pools.dispatch import DECLINE_BACKOFF_S, Dispatcher, Duplicate, Outgoing
from agent.pools.store import KEEPER_SCHEMA, PoolJob, PoolJobState, PoolJobStore
from agent.schemas.pool import Answer, PoolReply
from agent.storage import Database

POOL = "knife-cutters"


def _db(tmp: Path) -> Database:
    return Database(tmp / "keeper.db", extra_schema=KEEPER_SCHEMA)


def _dispatcher(db: Database, session: int = 1,
                membership: dict[str, frozenset[str]] | None = None) -> Dispatcher:
    return Dispatcher(PoolJobStore(db), session, offer_timeout_s=2.0, max_payload_bytes=1 << 20,
                      membership=membership)


def _job(job_id: str, kind: str = "gcode") -> bytes:
    return json.dumps({"job_id": job_id, "kind": kind, "program": "G0 X10 Y10"}).encode()


def _member(d: Dispatcher, station: str, state: str = "idle",
            kinds: tuple[str, ...] = ("gcode", "toolpaths")) -> None:
    d.on_info(station, json.dumps({"station": station, "pools": [POOL],
                                   "job_kinds": list(kinds)}).encode())
    d.on_status(station, json.dumps({"station": station, "state": state}).encode())


def _reply(d: Dispatcher, station: str, job_id: str, answer: Answer, token: str,
           now: float) -> Outgoing:
    reply = PoolReply(station=station, pool=POOL, job_id=job_id, answer=answer, token=token)
    return d.on_reply(POOL, station, reply.model_dump_json().encode(), now)


def _offered(out: Outgoing) -> list[tuple[str, str, str]]:
    return [(station, o.job_id, o.offer) for station, o in out.offers]


def test_a_job_is_offered_to_one_free_member_and_sent_only_after_its_claim(tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    _member(d, "knife-01", state="busy")
    _member(d, "knife-02", state="estop")
    _member(d, "knife-03")
    assert isinstance(d.take_job(POOL, _job("front-1")), PoolJob)
    [(station, job_id, token)] = _offered(d.dispatch(now=0.0))
    assert (station, job_id) == ("knife-03", "front-1")
    assert _offered(d.dispatch(now=0.1)) == []  # not offered twice at once
    out = _reply(d, "knife-03", "front-1", Answer.CLAIM, token, now=0.2)
    [assigned] = out.assignments
    assert (assigned.station, assigned.state) == ("knife-03", PoolJobState.ASSIGNED)
    assert assigned.token is not None and assigned.token != token


def test_an_unanswered_offer_moves_on_and_a_late_claim_is_ignored(tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    _member(d, "knife-01")
    _member(d, "knife-02")
    d.take_job(POOL, _job("back-1"))
    [(first, _, token)] = _offered(d.dispatch(now=0.0))
    d.expire_offers(now=2.5)
    [(second, _, token2)] = _offered(d.dispatch(now=2.5))
    assert second != first
    assert _reply(d, first, "back-1", Answer.CLAIM, token, now=2.6).assignments == []
    assert [j.station for j in
            _reply(d, second, "back-1", Answer.CLAIM, token2, now=2.7).assignments] == [second]


def test_a_handback_makes_the_job_waiting_again_and_another_member_gets_it(tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    _member(d, "knife-01")
    d.take_job(POOL, _job("sleeve-1"))
    [(_, _, offer)] = _offered(d.dispatch(now=0.0))
    [job] = _reply(d, "knife-01", "sleeve-1", Answer.CLAIM, offer, now=0.1).assignments
    token = job.token
    assert token is not None
    _member(d, "knife-02")
    assert _offered(d.dispatch(now=0.2)) == []  # the only job is assigned
    _reply(d, "knife-01", "sleeve-1", Answer.HANDBACK, token, now=0.3)
    assert d.counts()["waiting"] == 1
    [(station, job_id, _)] = _offered(d.dispatch(now=0.4))
    assert (station, job_id) == ("knife-02", "sleeve-1")
    # The same handback delivered again changes nothing.
    _reply(d, "knife-01", "sleeve-1", Answer.HANDBACK, token, now=0.5)
    assert d.counts() == {"waiting": 1, "assigned": 0, "offers": 1}


def test_a_decline_holds_the_member_back_until_its_status_changes(tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    _member(d, "knife-01")
    d.take_job(POOL, _job("front-2"))
    [(_, _, offer)] = _offered(d.dispatch(now=0.0))
    _reply(d, "knife-01", "front-2", Answer.DECLINE, offer, now=0.1)
    assert _offered(d.dispatch(now=0.2)) == []
    assert _offered(d.dispatch(now=0.1 + DECLINE_BACKOFF_S)) != []


def test_taken_keeps_the_station_busy_until_it_reports_idle(tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    _member(d, "knife-01")
    d.take_job(POOL, _job("a"))
    d.take_job(POOL, _job("b"))
    [(_, _, offer)] = _offered(d.dispatch(now=0.0))
    [job] = _reply(d, "knife-01", "a", Answer.CLAIM, offer, now=0.1).assignments
    assert job.token is not None
    _reply(d, "knife-01", "a", Answer.TAKEN, job.token, now=0.2)
    assert _offered(d.dispatch(now=0.3)) == []
    d.on_status("knife-01", b'{"state": "busy"}')
    assert _offered(d.dispatch(now=0.4)) == []
    d.on_status("knife-01", b'{"state": "idle"}')
    assert [j for _, j, _ in _offered(d.dispatch(now=0.5))] == ["b"]


def test_jobs_go_oldest_first_to_the_member_idle_longest_and_only_if_able(tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    _member(d, "laser-01", kinds=("gcode",))
    _member(d, "plotter-01", kinds=("hpgl",))
    d.on_info("other-pool", json.dumps({"pools": ["lasers"], "job_kinds": ["gcode"]}).encode())
    d.on_status("other-pool", b'{"state": "idle"}')
    for job_id, kind in (("label-1", "gcode"), ("marker-1", "hpgl"), ("label-2", "gcode")):
        d.take_job(POOL, _job(job_id, kind))
    offers = sorted(_offered(d.dispatch(now=0.0)))
    assert [(s, j) for s, j, _ in offers] == [("laser-01", "label-1"), ("plotter-01", "marker-1")]


def test_everything_survives_a_keeper_restart(tmp_path: Path) -> None:
    db = _db(tmp_path)
    d = _dispatcher(db)
    _member(d, "knife-01")
    d.take_job(POOL, _job("assigned-1"))
    d.take_job(POOL, _job("waiting-1"))
    [(_, _, offer)] = _offered(d.dispatch(now=0.0))
    [job] = _reply(d, "knife-01", "assigned-1", Answer.CLAIM, offer, now=0.1).assignments
    db.close()
    again = _dispatcher(_db(tmp_path), session=2)
    assert again.counts() == {"waiting": 1, "assigned": 1, "offers": 0}
    seen = again.take_job(POOL, _job("assigned-1"))
    assert isinstance(seen, Duplicate)  # a duplicate, not a new job
    assert seen.job_id == "assigned-1"
    _member(again, "knife-01")
    assert _offered(again.dispatch(now=0.0)) == []  # knife-01 still owes its answer
    assert job.token is not None
    _reply(again, "knife-01", "assigned-1", Answer.TAKEN, job.token, now=0.1)
    assert again.counts() == {"waiting": 1, "assigned": 0, "offers": 0}
    done = again.take_job(POOL, _job("assigned-1"))
    assert isinstance(done, Duplicate)
    assert done.detail == {"state": "done", "station": "knife-01", "answer": "taken"}


def test_bad_pool_jobs_are_rejections_with_codes(tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    cases: dict[bytes, str] = {
        b"": "invalid_json", b"\xff\xfe": "invalid_encoding", b'{"job_id": "a"}': "missing_field",
        b'{"job_id": 7, "kind": "gcode"}': "invalid_job",
        b'{"job_id": "a", "kind": "knitting"}': "unsupported_kind",
        b'{"job_id": "a", "job_id": "b", "kind": "gcode"}': "duplicate_key",
        b"x" * (2 << 20): "payload_too_large",
    }
    for payload, code in cases.items():
        result: Any = d.take_job(POOL, payload)
        assert isinstance(result, Rejection), payload[:40]
        assert result.code == code, (payload[:40], result)
    assert d.counts()["waiting"] == 0


# -- who may answer for a job (issue 13) -------------------------------------------------------


def _send(d: Dispatcher, topic_pool: str, topic_station: str, reply: PoolReply,
          now: float) -> Outgoing:
    return d.on_reply(topic_pool, topic_station, reply.model_dump_json().encode(), now)


def _assigned_to(d: Dispatcher, station: str, job_id: str) -> str:
    """Offer ``job_id`` to ``station``, have it claim: the assignment's token."""
    [(got, _, offer)] = _offered(d.dispatch(now=0.0))
    assert got == station
    [job] = _reply(d, station, job_id, Answer.CLAIM, offer, now=0.1).assignments
    assert job.token is not None
    return job.token


def test_tokens_are_128_random_bits(tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    tokens = {d._token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in tokens)


def test_only_the_holder_on_its_own_pool_topic_with_the_token_can_hand_a_job_back(
        tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    _member(d, "knife-01")
    d.take_job(POOL, _job("front-7"))
    token = _assigned_to(d, "knife-01", "front-7")
    _member(d, "knife-02")
    forged = [
        # Another pool's topic, its own name, the right token.
        ("lasers", "knife-01", PoolReply(station="knife-01", pool="lasers", job_id="front-7",
                                         answer=Answer.HANDBACK, token=token)),
        # The payload says another pool than the topic.
        ("lasers", "knife-01", PoolReply(station="knife-01", pool=POOL, job_id="front-7",
                                         answer=Answer.HANDBACK, token=token)),
        # Another member of the pool, under its own name, with the right token.
        (POOL, "knife-02", PoolReply(station="knife-02", pool=POOL, job_id="front-7",
                                     answer=Answer.HANDBACK, token=token)),
        # Another member posing as the holder in the payload.
        (POOL, "knife-02", PoolReply(station="knife-01", pool=POOL, job_id="front-7",
                                     answer=Answer.HANDBACK, token=token)),
        # The holder's topic and name, a guessed token in the old "<session>-<n>" form.
        (POOL, "knife-01", PoolReply(station="knife-01", pool=POOL, job_id="front-7",
                                     answer=Answer.HANDBACK, token="1-2")),
        # A random token of the right form.
        (POOL, "knife-01", PoolReply(station="knife-01", pool=POOL, job_id="front-7",
                                     answer=Answer.HANDBACK, token="0" * 32)),
    ]
    for topic_pool, topic_station, reply in forged:
        _send(d, topic_pool, topic_station, reply, now=0.2)
        assert d.jobs["front-7"].state is PoolJobState.ASSIGNED, (topic_pool, topic_station)
        assert d.jobs["front-7"].station == "knife-01"
        assert _offered(d.dispatch(now=0.3)) == []
    assert d.ignored_replies == len(forged)
    # The real handback still counts.
    _reply(d, "knife-01", "front-7", Answer.HANDBACK, token, now=0.4)
    assert d.ignored_replies == len(forged)
    assert d.jobs["front-7"].state is PoolJobState.WAITING


def test_a_claim_counts_only_from_the_station_offered_on_the_jobs_pool_topic(
        tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path))
    _member(d, "knife-01")
    d.take_job(POOL, _job("back-7"))
    [(_, _, offer)] = _offered(d.dispatch(now=0.0))
    wrong_pool = PoolReply(station="knife-01", pool="lasers", job_id="back-7",
                           answer=Answer.CLAIM, token=offer)
    assert _send(d, "lasers", "knife-01", wrong_pool, now=0.1).assignments == []
    other = PoolReply(station="knife-02", pool=POOL, job_id="back-7", answer=Answer.CLAIM,
                      token=offer)
    assert _send(d, POOL, "knife-02", other, now=0.1).assignments == []
    assert d.offers  # the real offer stands
    [job] = _reply(d, "knife-01", "back-7", Answer.CLAIM, offer, now=0.2).assignments
    assert job.station == "knife-01"


def test_configured_membership_beats_what_a_station_claims(tmp_path: Path) -> None:
    d = _dispatcher(_db(tmp_path), 1, membership={POOL: frozenset({"knife-01"}),
                                                  "lasers": frozenset({"laser-01"})})
    _member(d, "laser-01")  # its info claims the knife pool too
    assert d.members["laser-01"].pools == frozenset()
    d.take_job(POOL, _job("front-8"))
    assert _offered(d.dispatch(now=0.0)) == []
    _member(d, "knife-01")
    [(station, _, _)] = _offered(d.dispatch(now=0.1))
    assert station == "knife-01"
    unknown = d.take_job("embroidery", _job("patch-1"))
    assert isinstance(unknown, Rejection)
    assert (unknown.code, unknown.job_id) == ("unknown_pool", "patch-1")


def test_a_reply_from_a_station_the_config_does_not_list_is_ignored(tmp_path: Path) -> None:
    membership = {POOL: frozenset({"knife-01"})}
    db = _db(tmp_path)
    d = _dispatcher(db, 1, membership=membership)
    _member(d, "knife-01")
    d.take_job(POOL, _job("front-9"))
    token = _assigned_to(d, "knife-01", "front-9")
    db.close()
    # The config changed: knife-01 is no longer a member, and its answers no longer count.
    again = _dispatcher(_db(tmp_path), 2, membership={POOL: frozenset({"knife-02"})})
    _reply(again, "knife-01", "front-9", Answer.HANDBACK, token, now=0.2)
    assert again.jobs["front-9"].state is PoolJobState.ASSIGNED
