"""Hostile payloads for the agent's intake, and what the agent must answer to each.

- :func:`nasty_job_cases` / :func:`nasty_command_cases`: named, hand-written cases (invalid
  UTF-8, deep nesting, huge numbers, NaN and Infinity, duplicate keys, wrong types, enormous
  strings, empty and binary payloads).
- :func:`generated_job_payloads` / :func:`generated_command_payloads`: seeded generators that
  start from a valid care-label job (or command) and mutate it, structurally and byte-wise, so
  that a run is reproducible from its seed and mixes valid work with every kind of breakage.
- :func:`expected_job_answers` / :func:`expected_command_answers`: the answer the agent must
  give to each payload, decided up front by the same pure intake functions the agent calls
  (so a disagreement is a bug in the wiring, the station or the link, not in the test).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agent.jobs.intake import Rejection, parse_command, parse_job
from agent.profiles import Profile
from agent.schemas.command import CommandName

STATION = "cutter-01"

# A 40 x 60 mm care label cut with the drag knife, as the planner sends it.
CARE_LABEL_PROGRAM = (
    "G21 G90\nG0 Z5\nG0 X20 Y20\nG1 Z-1 F600\nG1 X60 Y20 F3000\nG1 X60 Y80\nG1 X20 Y80\n"
    "G1 X20 Y20\nG0 Z5\n"
)


def care_label_program(x0: float = 20.0, y0: float = 20.0) -> str:
    """The care label's outline with its lower-left corner at (x0, y0) on the bed."""
    x1, y1 = x0 + 40, y0 + 60
    return (f"G21 G90\nG0 Z5\nG0 X{x0:g} Y{y0:g}\nG1 Z-1 F600\nG1 X{x1:g} Y{y0:g} F3000\n"
            f"G1 X{x1:g} Y{y1:g}\nG1 X{x0:g} Y{y1:g}\nG1 X{x0:g} Y{y0:g}\nG0 Z5\n")


def care_label_job(job_id: str, program: str = CARE_LABEL_PROGRAM) -> dict[str, Any]:
    return {"job_id": job_id, "kind": "gcode", "program": program,
            "meta": {"order": "SO-1042", "garment": "care label, T-shirt M"}}


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8")


@dataclass(frozen=True)
class Case:
    name: str
    payload: bytes


# -- hand-written cases --------------------------------------------------------------------


def _job_text(job_id: str, tail: str) -> bytes:
    return (f'{{"job_id": "{job_id}", "kind": "gcode", "program": "G0 X20 Y20\\nG1 X60 Y20 '
            f'F3000\\n"{tail}}}').encode()


def nasty_job_cases(max_payload_bytes: int) -> list[Case]:
    """Every class of bad job payload the issue names, each at least once."""
    big = max_payload_bytes + 1
    deep = "[" * 100_000 + "]" * 100_000
    return [
        Case("empty", b""),
        Case("whitespace", b" \n\t\r "),
        Case("binary", bytes(range(256))),
        Case("nul bytes", b"\x00" * 64),
        Case("invalid utf-8 lead byte", b'{"job_id": "x\xff", "kind": "gcode"}'),
        Case("truncated utf-8 sequence", b'{"job_id": "nasty-utf8", "program": "\xc3"}'),
        Case("overlong utf-8", b'{"job_id": "nasty-overlong", "program": "\xc0\xaf"}'),
        Case("utf-16 payload", '{"job_id": "nasty-u16"}'.encode("utf-16")),
        Case("byte order mark", b"\xef\xbb\xbf" + encode(care_label_job("nasty-bom"))),
        Case("lone surrogate in job_id", b'{"job_id": "label-\\ud800", "kind": "gcode", '
                                         b'"program": "G0 X1"}'),
        Case("lone surrogate in program", _job_text("nasty-sur-prog", "")[:-2]
             + b'\\udfff"}'),
        Case("lone surrogate as a key", _job_text("nasty-sur-key", ', "\\udbff": 1')),
        Case("truncated json", encode(care_label_job("nasty-trunc"))[:-7]),
        Case("trailing garbage", encode(care_label_job("nasty-trailing")) + b" }"),
        Case("two objects", encode(care_label_job("nasty-two-a"))
             + encode(care_label_job("nasty-two-b"))),
        Case("json array", b"[" + encode(care_label_job("nasty-array")) + b"]"),
        Case("json string", encode(json.dumps(care_label_job("nasty-string")))),
        Case("json null", b"null"),
        Case("json number", b"1e999"),
        Case("deep nesting, arrays", deep.encode()[: min(len(deep), max_payload_bytes)]),
        Case("deep nesting, 70 objects", _job_text("nasty-deep", ', "meta": '
                                                   + '{"a": ' * 70 + "1" + "}" * 70)),
        Case("deep nesting, 1000 objects", _job_text("nasty-deep2", ', "meta": '
                                                     + '{"a": ' * 1000 + "1" + "}" * 1000)),
        Case("NaN", _job_text("nasty-nan", ', "copies": NaN')),
        Case("Infinity", _job_text("nasty-inf", ', "spacing_mm": Infinity')),
        Case("-Infinity", _job_text("nasty-ninf", ', "rotation_deg": -Infinity')),
        Case("1e400 overflows to inf", _job_text("nasty-1e400", ', "spacing_mm": 1e400')),
        Case("huge integer", _job_text("nasty-bigint", ', "copies": ' + "9" * 4000)),
        Case("integer past python's digit limit", _job_text("nasty-bigint2", ', "copies": '
                                                            + "9" * 5000)),
        Case("huge float", _job_text("nasty-bigfloat", ', "origin_mm": [1e308, -1e308]')),
        Case("negative zero copies", _job_text("nasty-neg0", ', "copies": -0')),
        Case("duplicate job_id key", _job_text("nasty-dup", ', "job_id": "nasty-dup-2"')),
        Case("duplicate nested key", _job_text("nasty-dup-meta", ', "meta": {"a": "1", "a": "2"}')),
        # Under the 64 KiB the tests allow, so the key must be clipped in the answer.
        Case("duplicate enormous key", _job_text("nasty-dup-big", ', "' + "k" * 30_000
                                                 + '": 1, "' + "k" * 30_000 + '": 2')),
        Case("wrong type: job_id number", encode({"job_id": 1042, "kind": "gcode",
                                                  "program": CARE_LABEL_PROGRAM})),
        Case("wrong type: program list", encode({"job_id": "nasty-prog-list", "kind": "gcode",
                                                 "program": CARE_LABEL_PROGRAM.splitlines()})),
        Case("wrong type: kind null", encode({"job_id": "nasty-kind-null", "kind": None,
                                              "program": CARE_LABEL_PROGRAM})),
        Case("wrong type: copies string", encode({**care_label_job("nasty-copies"),
                                                  "copies": "3"})),
        Case("wrong type: copies bool", encode({**care_label_job("nasty-copies-b"),
                                                "copies": True})),
        Case("wrong type: meta list", encode({**care_label_job("nasty-meta"), "meta": ["a"]})),
        Case("wrong type: operator start string", encode(
            {**care_label_job("nasty-op"), "require_operator_start": "yes"})),
        Case("version true", encode({**care_label_job("nasty-v-true"), "v": True})),
        Case("version 1.0", encode({**care_label_job("nasty-v-float"), "v": 1.0})),
        Case("version 2", encode({**care_label_job("nasty-v2"), "v": 2})),
        Case("unknown field", encode({**care_label_job("nasty-extra"), "priority": 9})),
        Case("missing job_id", encode({"kind": "gcode", "program": CARE_LABEL_PROGRAM})),
        Case("missing program", encode({"job_id": "nasty-noprog", "kind": "gcode"})),
        Case("unknown kind", encode({"job_id": "nasty-dxf", "kind": "dxf", "program": "0"})),
        Case("toolpaths on a plain grbl profile", encode(
            {"job_id": "nasty-tp", "kind": "toolpaths", "toolpaths": {
                "units": "mm", "paths": [{"points": [[0, 0], [40, 0], [40, 60]],
                                          "closed": True}]}})),
        Case("job_id with a wildcard", encode(care_label_job("SO-1042/#"))),
        Case("job_id too long", encode(care_label_job("x" * 129))),
        Case("job_id enormous", encode(care_label_job("x" * 60_000))),
        Case("enormous meta value", encode({**care_label_job("nasty-meta-big"),
                                            "meta": {"note": "m" * 60_000}})),
        Case("enormous unknown key", encode({**care_label_job("nasty-key-big"),
                                             "k" * 60_000: 1})),
        Case("enormous meta key", encode({**care_label_job("nasty-meta-key"),
                                          "meta": {"k" * 60_000: "v"}})),
        Case("enormous version", encode({**care_label_job("nasty-v-big"), "v": "9" * 60_000})),
        Case("enormous program line", encode(care_label_job("nasty-line",
                                                            "G1 X" + "9" * 60_000))),
        Case("enormous realtime line", encode(care_label_job("nasty-rt", "?" * 60_000))),
        Case("enormous blocked line", encode(care_label_job("nasty-blk", "$H" + "X" * 60_000))),
        Case("payload over the limit", encode(care_label_job("nasty-too-big",
                                                             "G0 X1\n" * (big // 6 + 1)))),
        Case("empty program", encode(care_label_job("nasty-empty-prog", ""))),
        Case("comments only", encode(care_label_job("nasty-comments", "(label)\n; nothing\n"))),
        Case("homing", encode(care_label_job("nasty-home", "G21\n$H\nG0 X1\n"))),
        Case("unlock", encode(care_label_job("nasty-unlock", "$X\n"))),
        Case("settings write", encode(care_label_job("nasty-setting", "$110=99999\n"))),
        Case("startup line write", encode(care_label_job("nasty-startup", "$N0=G0 X0\n"))),
        Case("restore defaults", encode(care_label_job("nasty-rst", "$RST=*\n"))),
        Case("work offset write", encode(care_label_job("nasty-g10", "G10 L20 P1 X0 Y0\n"))),
        Case("feed hold inside a line", encode(care_label_job("nasty-hold", "G1 X10 ! Y10\n"))),
        Case("soft reset byte", encode(care_label_job("nasty-reset", "G0 X1\x18\n"))),
        Case("non-ascii program", encode(care_label_job("nasty-nonascii", "G0 X1 ×2\n"))),
        Case("unbalanced comment", encode(care_label_job("nasty-paren", "G0 X1 (oops\n"))),
        Case("unsupported g-code", encode(care_label_job("nasty-g43", "G43 Z1\n"))),
        Case("program with only newlines", encode(care_label_job("nasty-nl", "\n" * 5000))),
    ]


def nasty_command_cases() -> list[Case]:
    return [
        Case("cmd empty", b""),
        Case("cmd binary", bytes(range(255, -1, -1))),
        Case("cmd invalid utf-8", b'{"cmd": "pause\xfe"}'),
        Case("cmd lone surrogate", b'{"cmd": "\\ud800", "request_id": "hmi-1"}'),
        Case("cmd lone surrogate request_id", b'{"cmd": "pause", "request_id": "\\udc00"}'),
        Case("cmd array", b'["pause"]'),
        Case("cmd string", b'"pause"'),
        Case("cmd truncated", b'{"cmd": "pau'),
        Case("cmd NaN", b'{"cmd": "pause", "request_id": NaN}'),
        Case("cmd deep", b'{"cmd": "pause", "x": ' + b'[' * 5000 + b']' * 5000 + b"}"),
        Case("cmd duplicate cmd", b'{"cmd": "pause", "cmd": "estop"}'),
        Case("cmd unknown", encode({"cmd": "home", "request_id": "hmi-2"})),
        Case("cmd upper case", encode({"cmd": "ESTOP", "request_id": "hmi-3"})),
        Case("cmd number", encode({"cmd": 4, "request_id": "hmi-4"})),
        Case("cmd missing", encode({"request_id": "hmi-5"})),
        Case("cmd unknown field", encode({"cmd": "pause", "request_id": "hmi-6", "force": True})),
        Case("cmd version true", encode({"cmd": "pause", "request_id": "hmi-7", "v": True})),
        Case("cmd version 2", encode({"cmd": "pause", "request_id": "hmi-8", "v": 2})),
        Case("cmd request_id empty", encode({"cmd": "pause", "request_id": ""})),
        Case("cmd request_id enormous", encode({"cmd": "pause", "request_id": "r" * 60_000})),
        Case("cmd over 64 KiB", encode({"cmd": "pause", "request_id": "r" * 70_000})),
        Case("cmd bad job_id", encode({"cmd": "cancel", "job_id": "a/b#", "request_id": "hmi-9"})),
        Case("cmd huge number", b'{"cmd": "cancel", "job_id": ' + b"7" * 4000 + b"}"),
    ]


# -- seeded generators ---------------------------------------------------------------------

_NASTY_LINES = (
    "$H", "$X", "$$", "$#", "$G", "$I", "$10=0", "$110=99999", "$N0=G0X0", "$RST=*", "$SLP", "$C",
    "$J=G91 X10 F1000", "G28.1", "G30.1", "G10 L2 P1 X0", "G10 L20 P1 X0", "M7", "M8", "M9",
    "M3 S1000", "M5", "T1 M6", "G38.2 Z-10 F100", "G53 G0 Z0", "G1 X1e5", "G1 X10 Y10 F",
    "G0 X(", "G0 X1 (ok)", "; only a comment", "%", "M30", "?", "!", "~", "\x18", "\x00", "\t",
    "G0 Xé", "G1 X" + "9" * 90, "g1 x10 y10 f3000", "G0X10Y10", "N10 G0 X1", "G4 P0.5",
    "G2 X10 Y10 I5 J0 F1000", "G1 X-5 Y-5 F1000", "", " ", "\r", "G0 X1\rG0 X2", "G0 X1\u2028$H",
)

_NASTY_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 2, 1000, 1001, 2**31, 2**63, 2**64 + 1, -(2**63), 10**300,
    0.5, -0.0, 1e-320, 1e308, -1e308, "", " ", "1", "gcode", "GCODE", "hpgl", "toolpaths",
    "x" * 300, "é", "\u0000", "\u202e", "💥", [], [1], ["a", "b"], {}, {"a": 1}, {"": ""},
    [[[[[[]]]]]], {"a": {"b": {"c": {}}}},
)

_JOB_KEYS = ("v", "job_id", "kind", "program", "toolpaths", "copies", "spacing_mm", "origin_mm",
             "rotation_deg", "require_operator_start", "operator_timeout_s", "meta", "sig")


def _random_text(rng: random.Random, max_len: int) -> str:
    alphabet = rng.choice((
        "GXYZF0123456789. -\n",
        "abcdefghijklmnopqrstuvwxyz0123456789-_.:",
        "".join(chr(c) for c in range(32, 127)),
        "\u00e9\u00d7\u2028\u202e\ufeff\U0001f4a5\u0000\u001f\\\"",
    ))
    length = rng.choice((0, 1, 2, rng.randint(0, max_len)))
    return "".join(rng.choice(alphabet) for _ in range(length))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.45 or depth > 3:
        return rng.choice(_NASTY_VALUES)
    if roll < 0.65:
        return _random_text(rng, 40)
    if roll < 0.75:
        return rng.uniform(-1e6, 1e6)
    if roll < 0.85:
        return rng.randint(-(10**20), 10**20)
    if roll < 0.93:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_text(rng, 8): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _mutate_program(rng: random.Random, program: str) -> str:
    lines = program.splitlines()
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.5 or not lines:
            lines.insert(rng.randint(0, len(lines)), rng.choice(_NASTY_LINES))
        elif roll < 0.7:
            del lines[rng.randrange(len(lines))]
        elif roll < 0.85:
            i = rng.randrange(len(lines))
            lines[i] = lines[i].replace(rng.choice("XYZF"), rng.choice(("X", "Y", "Q", "", "E")))
        else:
            i = rng.randrange(len(lines))
            lines[i] = lines[i] + rng.choice(("", " ", "X", "(", ")", ";", "*", "9" * 80))
    sep = rng.choice(("\n", "\n", "\r\n", "\r"))
    return sep.join(lines) + rng.choice(("", sep))


def _mutate_structure(rng: random.Random, job: dict[str, Any]) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.15 and job:
        del job[rng.choice(list(job))]
    elif roll < 0.25:
        job[rng.choice((_random_text(rng, 12), "priority", "Job_id", "program "))] = \
            _random_value(rng)
    elif roll < 0.55:
        job[rng.choice(_JOB_KEYS)] = _random_value(rng)
    elif roll < 0.85:
        program = job.get("program")
        job["program"] = _mutate_program(rng, program if isinstance(program, str) else "")
    elif roll < 0.95:
        job["meta"] = {_random_text(rng, 70): _random_text(rng, 300)
                       for _ in range(rng.choice((0, 1, 2, 33)))}
    else:
        job["kind"] = rng.choice(("hpgl", "toolpaths", "GCODE", "dxf", "", "gcode "))
    return job


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.15:
        return data[: rng.randrange(len(data) + 1)]
    if roll < 0.3:
        i = rng.randrange(len(data) + 1)
        return data[:i] + bytes([rng.choice((0x00, 0x80, 0xC3, 0xFF, 0xFE, 0xED))]) + data[i:]
    if roll < 0.4:
        i = rng.randrange(len(data))
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if roll < 0.5:
        # An escaped lone surrogate inside the first string value.
        return data.replace(b'": "', b'": "\\ud83d', 1)
    if roll < 0.6:
        return data.replace(b"{", b'{"job_id": "dup", ', 1)
    if roll < 0.7:
        return data.replace(b'"program"', b'"copies": ' + rng.choice(
            (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 500)) + b', "program"', 1)
    if roll < 0.8:
        return rng.choice((b"[", b'{"a": ', b" ", b"\xef\xbb\xbf", b"null", b"\n")) + data
    if roll < 0.9:
        return data + rng.choice((b"]", b"}", b",", b"\x00", b" ", b'{"x": 1}'))
    depth = rng.randint(60, 70)
    return data.replace(b'"meta": ', b'"meta": ' + b'{"a": ' * depth + b"1" + b"}" * depth
                        + b", \"x\": ", 1)


def generated_job_payloads(seed: int, count: int, *, prefix: str = "fz") -> list[bytes]:
    """``count`` payloads mutated from valid care-label jobs, reproducible from ``seed``.

    About a fifth stay valid (accepted), a few reuse an earlier id (duplicate), the rest break
    the job in one to three ways: its structure, its program, or its bytes.
    """
    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(count):
        job_id = f"{prefix}-{seed}-{i}"
        if i and rng.random() < 0.03:
            job_id = f"{prefix}-{seed}-{rng.randrange(i)}"
        job = care_label_job(job_id, care_label_program(rng.randint(0, 1500), rng.randint(0, 900)))
        roll = rng.random()
        if roll < 0.2:
            out.append(encode(job))
            continue
        for _ in range(rng.randint(1, 3)):
            job = _mutate_structure(rng, job)
        data = json.dumps(job, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        if roll > 0.6:
            data = _mutate_bytes(rng, data)
        out.append(data)
    return out


def generated_command_payloads(seed: int, count: int) -> list[bytes]:
    """Commands mutated from valid ones. ``estop`` never stays valid: it latches the station
    (every later command would get another answer), and it has its own tests."""
    rng = random.Random(seed)
    names = [c.value for c in CommandName if c is not CommandName.ESTOP]
    out: list[bytes] = []
    while len(out) < count:
        cmd: dict[str, Any] = {"cmd": rng.choice(names), "request_id": f"hmi-{seed}-{len(out)}"}
        if rng.random() < 0.3:
            cmd["job_id"] = f"SO-1042-front-{rng.randrange(5)}"
        roll = rng.random()
        if roll < 0.25:
            data = encode(cmd)
        else:
            for _ in range(rng.randint(1, 2)):
                key = rng.choice(("cmd", "request_id", "job_id", "v", _random_text(rng, 6)))
                if rng.random() < 0.2 and key in cmd:
                    del cmd[key]
                else:
                    cmd[key] = _random_value(rng) if rng.random() < 0.7 else rng.choice(
                        ("estop", "ESTOP", "Pause", "pause ", "reset", "home", "unlock"))
            data = json.dumps(cmd, ensure_ascii=rng.random() < 0.5).encode("utf-8",
                                                                           "surrogatepass")
            if roll > 0.7:
                data = _mutate_bytes(rng, data)
        parsed = parse_command(data, max_bytes=64 * 1024)
        if not isinstance(parsed, Rejection) and parsed.cmd is CommandName.ESTOP:
            continue
        out.append(data)
    return out


# -- what the agent must answer ------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One answering event, reduced to what must match."""

    event: str
    code: str | None
    job_id: str | None
    request_id: str | None = None

    @classmethod
    def of_event(cls, event: dict[str, Any]) -> Answer:
        detail = event.get("detail", {})
        error = detail.get("error") or {}
        return cls(event["event"], error.get("code"), event["job_id"], detail.get("request_id"))


JOB_ANSWERS = frozenset({"accepted", "rejected", "duplicate"})
COMMAND_ANSWERS = frozenset({"rejected", "command_done"})


def expected_job_answers(payloads: Iterable[bytes], profile: Profile, *, max_bytes: int,
                         max_lines: int, known_ids: Iterable[str] = ()) -> list[Answer]:
    """The station's answer to each payload in turn, on a station with room in its queue."""
    seen = set(known_ids)
    out = []
    for payload in payloads:
        result = parse_job(payload, profile, max_bytes=max_bytes, max_lines=max_lines)
        if isinstance(result, Rejection):
            out.append(Answer("rejected", result.code, result.job_id))
            continue
        job_id = result.request.job_id
        out.append(Answer("duplicate" if job_id in seen else "accepted", None, job_id))
        seen.add(job_id)
    return out


def expected_command_answers(payloads: Iterable[bytes], *, max_bytes: int) -> list[Answer]:
    """Answers on an idle station with no job: every valid pause, resume or cancel does not
    apply; reset is done (no e-stop button is held); trace is always answered."""
    out = []
    for payload in payloads:
        parsed = parse_command(payload, max_bytes=max_bytes)
        if isinstance(parsed, Rejection):
            out.append(Answer("rejected", parsed.code, parsed.job_id,
                              parsed.extra.get("request_id")))
        elif parsed.cmd in (CommandName.RESET, CommandName.TRACE):
            out.append(Answer("command_done", None, None, parsed.request_id))
        else:
            out.append(Answer("rejected", "not_applicable", parsed.job_id, parsed.request_id))
    return out


def answers_in(events: Iterable[dict[str, Any]], kinds: frozenset[str]) -> list[Answer]:
    return [Answer.of_event(e) for e in events if e["event"] in kinds]


class AnswerTally:
    """How many of ``kinds`` a growing event list holds, counted incrementally: a wait that
    re-scanned tens of thousands of events on every arrival would be quadratic."""

    def __init__(self, events: list[dict[str, Any]], kinds: frozenset[str]) -> None:
        self.events = events
        self.kinds = kinds
        self.count = 0
        self._scanned = 0

    def __call__(self) -> int:
        new = self.events[self._scanned:]
        self._scanned += len(new)
        self.count += sum(1 for e in new if e["event"] in self.kinds)
        return self.count


def count_where(items: Iterable[Answer], pred: Callable[[Answer], bool]) -> int:
    return sum(1 for a in items if pred(a))
