"""Incoming payloads to typed requests, or a rejection with a machine-readable code.

Nothing here raises on bad input: every problem becomes a :class:`Rejection`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from agent.dialects.prepare import prepare_program
from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.profiles import Profile
from agent.schemas.command import Command
from agent.schemas.job import JobRequest

MAX_JSON_DEPTH = 64
_CONTEXT_KEYS = frozenset({"cmd", "request_id"})


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
    """Nesting depth, stopping early once past ``limit``."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


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
        return None, Rejection("duplicate_key", f"key {exc.args[0]!r} appears more than once")
    except RecursionError:
        return None, Rejection("invalid_json", "JSON nested too deeply")
    except ValueError as exc:
        return None, Rejection("invalid_json", f"not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return None, Rejection("invalid_json", f"expected a JSON object, got {type(obj).__name__}")
    if _depth(obj, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, Rejection("invalid_json", f"JSON nested deeper than {MAX_JSON_DEPTH}")
    return obj, None


def _guess_job_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("job_id")
    if isinstance(value, str) and 0 < len(value) <= 128:
        return value
    return None


def _validation_rejection(exc: ValidationError, job_id: str | None, what: str) -> Rejection:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "missing":
        code = "missing_field"
    elif loc == "kind" or (what == "command" and loc == "cmd"):
        code = "unsupported_kind" if what == "job" else "unknown_command"
    elif first["type"] == "extra_forbidden":
        code = "unknown_field"
    else:
        code = f"invalid_{what}"
    summary = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or what}: {e['msg']}" for e in errors[:5]
    )
    if len(errors) > 5:
        summary += f"; and {len(errors) - 5} more"
    return Rejection(code, summary, job_id, {"field": loc} if loc else {})


@dataclass(frozen=True)
class AcceptedJob:
    request: JobRequest
    program: Program
    raw: str


def parse_job(payload: bytes, profile: Profile, *, max_bytes: int,
              max_lines: int) -> AcceptedJob | Rejection:
    obj, rejection = decode_object(payload, max_bytes)
    if rejection is not None:
        return rejection
    assert obj is not None
    job_id = _guess_job_id(obj)
    version = obj.get("v", 1)
    if version != 1:
        return Rejection("unsupported_version", f"job schema version {version!r} is not "
                                                "supported (this agent speaks v1)", job_id)
    try:
        request = JobRequest.model_validate_json(payload)
    except ValidationError as exc:
        return _validation_rejection(exc, job_id, "job")
    try:
        program = prepare_program(request, profile)
    except ProgramError as exc:
        extra = {"line": exc.line} if exc.line is not None else {}
        return Rejection(exc.code, exc.message, request.job_id, extra)
    if len(program) > max_lines:
        return Rejection("program_too_large", f"{len(program)} lines, the station takes at most "
                                              f"{max_lines}", request.job_id)
    return AcceptedJob(request, program, payload.decode("utf-8"))


def parse_command(payload: bytes, *, max_bytes: int) -> Command | Rejection:
    obj, rejection = decode_object(payload, min(max_bytes, 64 * 1024))
    if rejection is not None:
        return rejection
    assert obj is not None
    try:
        return Command.model_validate_json(payload)
    except ValidationError as exc:
        rej = _validation_rejection(exc, _guess_job_id(obj), "command")
        cmd = obj.get("cmd")
        extra = dict(rej.extra)
        if isinstance(cmd, str) and len(cmd) <= 64:
            extra["cmd"] = cmd
        request_id = obj.get("request_id")
        if isinstance(request_id, str) and len(request_id) <= 128:
            extra["request_id"] = request_id
        return Rejection(rej.code, rej.message, rej.job_id, extra)
