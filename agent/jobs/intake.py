"""Incoming payloads to typed requests, or a rejection with a machine-readable code.

Nothing here raises on bad input: every problem becomes a :class:`Rejection`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.estimate import Estimate
from agent.jobs.prepare import prepare_program
from agent.profiles import Profile
from agent.schemas.command import Command
from agent.schemas.job import JobRequest

MAX_JSON_DEPTH = 64
# A peer's text quoted back in a rejection (a key, a value, a program line) is cut to this, so
# a hostile payload cannot make the station publish megabytes of its own text back.
MAX_ECHO_CHARS = 200
_CONTEXT_KEYS = frozenset({"cmd", "request_id"})


def _clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str
    job_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def detail(self) -> dict[str, Any]:
        """``error`` says what is wrong; the command and request id it answers sit beside it."""
        error = {"code": self.code, "message": self.message}
        context = {}
        for key, value in self.extra.items():
            if key in _CONTEXT_KEYS:
                context[key] = value
            else:
                error[key] = value
        return {"error": error, **context}


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth, stopping early once past ``limit``.

    Only containers go on the stack: a payload that is one long flat array of numbers must not
    cost a stack entry per number.
    """
    stack: list[tuple[Any, int]] = [(obj, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, d + 1))
            else:
                deepest = max(deepest, d + 1)
    return deepest


def _not_utf8(text: str) -> bool:
    """True for a string holding a lone UTF-16 surrogate (JSON lets ``\\ud800`` escape one)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _has_lone_surrogate(obj: Any) -> bool:
    stack: list[Any] = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _not_utf8(item):
                return True
        elif isinstance(item, dict):
            for key, value in item.items():
                if _not_utf8(key):
                    return True
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return False


def decode_object(payload: bytes, max_bytes: int) -> tuple[dict[str, Any] | None, Rejection | None]:
    """The payload as a JSON object, checked for size, encoding, duplicates and depth."""
    if len(payload) > max_bytes:
        return None, Rejection(
            "payload_too_large", f"payload is {len(payload)} bytes, the limit is {max_bytes}"
        )
    if not payload.strip():
        return None, Rejection("invalid_json", "empty payload")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, Rejection("invalid_encoding", f"payload is not UTF-8: {exc.reason} at "
                                                   f"byte {exc.start}")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        return None, Rejection("duplicate_key",
                               f"key {_clip(repr(exc.args[0]))} appears more than once")
    except RecursionError:
        return None, Rejection("invalid_json", "JSON nested too deeply")
    except ValueError as exc:
        return None, Rejection("invalid_json", f"not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return None, Rejection("invalid_json", f"expected a JSON object, got {type(obj).__name__}")
    if _depth(obj, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, Rejection("invalid_json", f"JSON nested deeper than {MAX_JSON_DEPTH}")
    # Python's json takes an escaped lone surrogate; it is no character, cannot be stored or
    # echoed as UTF-8, and pydantic's parser refuses it: the payload is not clean UTF-8 text.
    if _has_lone_surrogate(obj):
        return None, Rejection("invalid_encoding", "payload escapes a lone UTF-16 surrogate "
                                                   "(\\ud800-\\udfff), which is not a character")
    return obj, None


def _version_rejection(obj: dict[str, Any], what: str, job_id: str | None,
                       extra: dict[str, Any]) -> Rejection | None:
    """Only the integer 1 (or no ``v``) is this agent's schema; ``true`` and ``1.0`` are not."""
    version = obj.get("v", 1)
    if type(version) is int and version == 1:
        return None
    return Rejection("unsupported_version", f"{what} schema version {_clip(repr(version), 40)} "
                                            "is not supported (this agent speaks v1)",
                     job_id, extra)


def guess_job_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("job_id")
    if isinstance(value, str) and 0 < len(value) <= 128:
        return value
    return None


def validation_rejection(exc: ValidationError, job_id: str | None, what: str) -> Rejection:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = _clip(".".join(str(p) for p in first["loc"]))
    if first["type"] == "missing":
        code = "missing_field"
    elif loc == "kind" or (what == "command" and loc == "cmd"):
        code = "unsupported_kind" if what == "job" else "unknown_command"
    elif first["type"] == "extra_forbidden":
        code = "unknown_field"
    else:
        code = f"invalid_{what}"
    summary = "; ".join(
        f"{_clip('.'.join(str(p) for p in e['loc'])) or what}: {_clip(e['msg'])}"
        for e in errors[:5]
    )
    if len(errors) > 5:
        summary += f"; and {len(errors) - 5} more"
    return Rejection(code, summary, job_id, {"field": loc} if loc else {})


@dataclass(frozen=True)
class AcceptedJob:
    request: JobRequest
    program: Program
    raw: str
    # The machine time, where the family has a motion model and the machine told its limits.
    estimate: Estimate | None = None


def parse_job(payload: bytes, profile: Profile, *, max_bytes: int,
              max_lines: int) -> AcceptedJob | Rejection:
    obj, rejection = decode_object(payload, max_bytes)
    if rejection is not None:
        return rejection
    assert obj is not None
    job_id = guess_job_id(obj)
    version_rejection = _version_rejection(obj, "job", job_id, {})
    if version_rejection is not None:
        return version_rejection
    try:
        request = JobRequest.model_validate_json(payload)
    except ValidationError as exc:
        return validation_rejection(exc, job_id, "job")
    try:
        program = prepare_program(request, profile)
    except ProgramError as exc:
        extra: dict[str, Any] = {"line": exc.line} if exc.line is not None else {}
        # Pattern files: the block, layer or entity at fault.
        where = getattr(exc, "where", None)
        if isinstance(where, str):
            extra["where"] = _clip(where)
        # A program error may quote the offending line, which can be megabytes long.
        return Rejection(exc.code, _clip(exc.message, 1000), request.job_id, extra)
    if len(program) > max_lines:
        return Rejection("program_too_large", f"{len(program)} lines, the station takes at most "
                                              f"{max_lines}", request.job_id)
    return AcceptedJob(request, program, payload.decode("utf-8"))


def parse_command(payload: bytes, *, max_bytes: int) -> Command | Rejection:
    obj, rejection = decode_object(payload, min(max_bytes, 64 * 1024))
    if rejection is not None:
        return rejection
    assert obj is not None
    # What the rejection echoes so the sender can match it to its command.
    context: dict[str, Any] = {}
    cmd = obj.get("cmd")
    if isinstance(cmd, str) and len(cmd) <= 64:
        context["cmd"] = cmd
    request_id = obj.get("request_id")
    if isinstance(request_id, str) and len(request_id) <= 128:
        context["request_id"] = request_id
    job_id = guess_job_id(obj)
    version_rejection = _version_rejection(obj, "command", job_id, context)
    if version_rejection is not None:
        return version_rejection
    try:
        return Command.model_validate_json(payload)
    except ValidationError as exc:
        rej = validation_rejection(exc, job_id, "command")
        return Rejection(rej.code, rej.message, rej.job_id, {**rej.extra, **context})
