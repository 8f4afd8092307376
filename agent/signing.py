"""Ed25519-signed jobs: the station runs only what a known controller key signed.

Wire format
-----------
A signed job is the job object with one extra top-level member ``sig``::

    {"job_id": "...", ..., "sig": {"kid": "planner-2026", "alg": "ed25519",
                                   "target": "station:cutter-01",
                                   "exp": "2026-11-27T18:00:00Z", "sig": "<base64url>"}}

- ``kid``: the key id, ``[A-Za-z0-9_.-]{1,64}``; the station holds the public key of each
  controller key id it trusts (``<public_keys_dir>/<kid>.pub``).
- ``alg``: always ``"ed25519"`` (RFC 8032, pure Ed25519, no pre-hash).
- ``target``: where the job may run, ``"station:<station_id>"`` or ``"pool:<pool>"``. A station
  runs a job sent to its own ``job`` topic only if it is signed for ``station:<its id>``, and
  one the pool keeper assigned it from pool P only if signed for ``pool:P`` or
  ``station:<its id>``; any other target is refused with ``wrong_target``, so a job captured
  on its way to one cutter cannot be replayed to another that trusts the same key. A signature
  without ``target`` (made before targets existed) is refused with ``untargeted_signature``
  unless the station's ``[signing] allow_untargeted = true``, a switch for the migration only.
- ``exp``: optional expiry, RFC 3339 with an explicit offset (``Z`` or ``+hh:mm``). The station
  rejects a job whose ``exp`` is past, and (by default) requires ``exp`` no more than
  ``max_validity_s`` ahead, so a captured job cannot be replayed forever.
- ``sig``: the 64-byte signature, base64url (RFC 4648 section 5) without ``=`` padding
  (padded input is accepted too).

Signed bytes
------------
The signature covers the job *and* the ``sig`` member's metadata, so kid, alg and exp cannot be
altered either. Take the signed job, delete ``sig.sig`` (keep ``kid``, ``alg`` and ``exp`` if
present), and serialise the whole object with the JSON Canonicalization Scheme, RFC 8785:

- no whitespace at all; members of every object sorted by key, comparing keys as arrays of
  UTF-16 code units (for ASCII keys this is plain byte order);
- strings: UTF-8, only ``"`` and ``\\`` escaped as ``\\"`` and ``\\\\``, U+0008/09/0A/0C/0D as
  ``\\b \\t \\n \\f \\r``, other characters below U+0020 as ``\\u00xx`` (lower-case hex);
  everything else, non-ASCII included, written as is;
- numbers as ECMAScript's ``Number.prototype.toString`` prints the IEEE-754 double: shortest
  round-tripping digits, ``1.0`` is ``1``, ``1e21`` and above and below ``1e-6`` in exponent form
  (``1e+21``, ``1e-7``); NaN and infinities are not allowed; an integer beyond 2**53 is written
  as the double nearest to it (job schemas never need one);
- ``true``, ``false``, ``null`` as is.

Libraries implementing RFC 8785 exist for JavaScript, Go, Java, .NET, Rust and Python; for the
job schemas (ASCII keys, decimal millimetres) a JSON serialiser with sorted keys, no whitespace,
no ASCII escaping and ECMAScript number formatting gives the same bytes. Example: the job
``{"job_id":"tee-front-42","priority":1.0}`` signed with kid ``k1`` for ``cutter-01`` and no
expiry signs exactly
``{"job_id":"tee-front-42","priority":1,"sig":{"alg":"ed25519","kid":"k1","target":"station:cutter-01"}}``.

Key files
---------
``<kid>.pub``: the raw 32-byte public key in standard or url-safe base64 on one line, or a PEM
``PUBLIC KEY``. ``<kid>.key``: the raw 32-byte private seed in base64, or a PEM ``PRIVATE KEY``
(PKCS#8, unencrypted); written mode 0600.

``cryptography`` is imported only when a signature is made or checked, so the agent installs on
a Pi without a compiler when signing is off; when it is on and the package is missing, the error
code is ``signing_unavailable``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import importlib
import json
import math
import os
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

from pydantic import Field

from agent.errors import StationAgentError
from agent.strict import StrictModel

ALG = "ed25519"
KID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULT_MAX_VALIDITY_S = 86_400.0
# A controller's clock may run a little ahead of the station's.
CLOCK_SKEW_S = 300.0
_MAX_SAFE_INT = 2**53
_SIG_KEYS_REQUIRED = frozenset({"kid", "alg", "sig"})
_SIG_KEYS_ALLOWED = _SIG_KEYS_REQUIRED | {"exp", "target"}
TARGET_PATTERN = re.compile(r"^(station|pool):[A-Za-z0-9_-]{1,64}$")


class SigningConfig(StrictModel):
    """``[signing]`` in the station's config."""

    enabled: bool = False
    public_keys_dir: Path = Path("/etc/station-agent/keys")
    # Longest accepted time between now and a job's exp; None accepts jobs without exp.
    max_validity_s: Annotated[float, Field(gt=0, le=366 * 86_400)] | None = DEFAULT_MAX_VALIDITY_S
    # Accept signatures that name no target (sig.target), as made before targets existed.
    # Such a job runs on any station trusting the key: for the migration only, then off.
    allow_untargeted: bool = False


class SignatureError(StationAgentError):
    """A signed job this station refuses. ``authentic``: the signature itself held (the job is
    the controller's, refused for its expiry or its target), so its job_id is the real one."""

    def __init__(self, message: str, *, code: str = "bad_signature", authentic: bool = False,
                 target: str | None = None) -> None:
        super().__init__(message, code=code)
        self.authentic = authentic
        self.target = target


def _bad(message: str) -> SignatureError:
    return SignatureError(message)


def station_target(station_id: str) -> str:
    return f"station:{station_id}"


def pool_target(pool: str) -> str:
    return f"pool:{pool}"


def check_target(target: str) -> str:
    if not TARGET_PATTERN.fullmatch(target):
        raise StationAgentError(
            f"target {target!r} must be station:<station_id> or pool:<pool>",
            code="invalid_target",
        )
    return target


def _ed25519() -> ModuleType:
    try:
        ed25519 = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ed25519")
    except ImportError:
        raise StationAgentError(
            "job signing needs the 'cryptography' package: "
            "/opt/station-agent/venv/bin/pip install cryptography",
            code="signing_unavailable",
        ) from None
    return ed25519


# -- canonical JSON (RFC 8785) -----------------------------------------------------------------


def canonical_json(value: object) -> bytes:
    """RFC 8785 canonical bytes of a JSON value made of dict/list/str/int/float/bool/None."""
    out: list[str] = []
    _emit(value, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string contains a lone surrogate; not valid Unicode") from None


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _string(s: str) -> str:
    def repl(m: re.Match[str]) -> str:
        ch = m.group(0)
        return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"

    return '"' + _NEEDS_ESCAPE.sub(repl, s) + '"'


def _number(x: int | float) -> str:
    if isinstance(x, int):
        if abs(x) <= _MAX_SAFE_INT:
            return str(x)
        # RFC 8785 knows only IEEE doubles: a larger integer is the double nearest to it.
        try:
            x = float(x)
        except OverflowError:
            raise ValueError(f"integer {x} is too large for JSON") from None
    if not math.isfinite(x):
        raise ValueError("NaN and infinities are not JSON")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr gives the shortest digit string that round-trips, as ECMAScript requires.
    _, digit_tuple, exp = Decimal(repr(abs(x))).as_tuple()
    all_digits = "".join(map(str, digit_tuple))
    digits = all_digits.rstrip("0")
    assert isinstance(exp, int)
    exp += len(all_digits) - len(digits)
    k = len(digits)
    n = exp + k  # the decimal point sits after n digits
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _emit(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, Mapping):
        items = []
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"object key {key!r} is not a string")
            items.append(key)
        # RFC 8785 sorts by UTF-16 code units; big-endian UTF-16 bytes compare the same way.
        items.sort(key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        out.append("{")
        for i, key in enumerate(items):
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _emit(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _emit(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def signed_bytes(job: Mapping[str, object], sig_meta: Mapping[str, object]) -> bytes:
    """What the signature covers: the job with ``sig`` holding only kid, alg and exp."""
    body = {k: v for k, v in job.items() if k != "sig"}
    body["sig"] = {k: v for k, v in sig_meta.items() if k != "sig"}
    return canonical_json(body)


# -- helpers -----------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_any(text: str) -> bytes:
    """Standard or url-safe base64, with or without padding."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    return base64.b64decode(cleaned, validate=True)


def format_rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("expiry must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    if not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", text
    ):
        raise ValueError(f"not an RFC 3339 timestamp with offset: {text!r}")
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))


def check_kid(kid: str) -> str:
    if not KID_PATTERN.fullmatch(kid):
        raise StationAgentError(
            f"key id {kid!r} must be 1-64 of A-Z a-z 0-9 _ . -", code="invalid_key"
        )
    return kid


# -- sign and verify ---------------------------------------------------------------------------


def generate_keypair() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as raw bytes: (32-byte private seed, 32-byte public key)."""
    ed = _ed25519()
    from cryptography.hazmat.primitives import serialization

    private = ed.Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return seed, public


def public_key_of(private_key: bytes) -> bytes:
    ed = _ed25519()
    from cryptography.hazmat.primitives import serialization

    key = ed.Ed25519PrivateKey.from_private_bytes(private_key)
    return bytes(
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def sign_job(
    job: Mapping[str, object], private_key: bytes, kid: str, *, expires: datetime | None,
    target: str | None,
) -> dict[str, object]:
    """The job with a ``sig`` member; an existing ``sig`` is replaced.

    ``target`` (:func:`station_target` or :func:`pool_target`) is where it may run; None makes
    an untargeted signature, which stations refuse unless ``allow_untargeted`` is on.
    """
    ed = _ed25519()
    check_kid(kid)
    if len(private_key) != 32:
        raise StationAgentError("an Ed25519 private key is 32 bytes", code="invalid_key")
    meta: dict[str, object] = {"kid": kid, "alg": ALG}
    if target is not None:
        meta["target"] = check_target(target)
    if expires is not None:
        meta["exp"] = format_rfc3339(expires)
    body = {k: v for k, v in job.items() if k != "sig"}
    try:
        message = signed_bytes(body, meta)
    except (TypeError, ValueError) as exc:
        raise StationAgentError(f"job cannot be signed: {exc}", code="invalid_job") from None
    signature = ed.Ed25519PrivateKey.from_private_bytes(private_key).sign(message)
    meta["sig"] = _b64url(signature)
    body["sig"] = meta
    return body


def verify_job(
    raw: dict[str, object],
    keys: Mapping[str, bytes],
    *,
    now: datetime,
    targets: Collection[str],
    max_validity_s: float | None = DEFAULT_MAX_VALIDITY_S,
    allow_untargeted: bool = False,
) -> dict[str, object]:
    """The job without ``sig`` if a trusted key signed it for one of ``targets`` and it has not
    expired.

    Raises :class:`SignatureError` saying exactly what is wrong: code ``bad_signature`` (not
    signed, not validly, expired), ``wrong_target`` (signed for another station or pool) or
    ``untargeted_signature`` (no ``sig.target`` and ``allow_untargeted`` off).
    ``max_validity_s`` set: ``exp`` is required and may lie at most that far (plus
    :data:`CLOCK_SKEW_S`) ahead of ``now``. None: ``exp`` is optional.
    """
    meta = raw.get("sig")
    if meta is None:
        raise _bad("job is not signed (no 'sig' member) and this station requires signed jobs")
    if not isinstance(meta, dict):
        raise _bad("'sig' must be an object with kid, alg and sig")
    missing = _SIG_KEYS_REQUIRED - meta.keys()
    if missing:
        raise _bad(f"'sig' lacks {', '.join(sorted(missing))}")
    unknown = meta.keys() - _SIG_KEYS_ALLOWED
    if unknown:
        raise _bad(f"'sig' has unknown members: {', '.join(sorted(map(str, unknown)))}")
    kid, alg, sig_text = meta["kid"], meta["alg"], meta["sig"]
    if alg != ALG:
        raise _bad(f"unsupported signature algorithm {alg!r} (only {ALG!r})")
    if not isinstance(kid, str) or kid not in keys:
        known = ", ".join(sorted(keys)) or "none"
        raise _bad(f"unknown key id {kid!r} (trusted: {known})")
    if not isinstance(sig_text, str):
        raise _bad("'sig.sig' must be a base64url string")
    try:
        signature = _b64_any(sig_text)
    except (binascii.Error, ValueError):
        raise _bad("'sig.sig' is not valid base64url") from None
    if len(signature) != 64:
        raise _bad(f"'sig.sig' decodes to {len(signature)} bytes; an Ed25519 signature has 64")

    ed = _ed25519()
    from cryptography.exceptions import InvalidSignature

    try:
        message = signed_bytes(raw, meta)
    except (TypeError, ValueError) as exc:
        raise _bad(f"job cannot be canonicalised: {exc}") from None
    try:
        public = ed.Ed25519PublicKey.from_public_bytes(keys[kid])
    except ValueError:
        raise _bad(f"trusted key {kid!r} is not a valid Ed25519 public key") from None
    try:
        public.verify(signature, message)
    except InvalidSignature:
        raise _bad(
            f"signature does not match the job for key {kid!r}: "
            "the job was altered after signing or signed with another key"
        ) from None
    # Checked after the signature, so "expired" and "wrong target" are only ever said of an
    # authentic job.
    try:
        _check_expiry(meta.get("exp"), now=now, max_validity_s=max_validity_s)
    except SignatureError as exc:
        exc.authentic = True
        raise
    _check_signed_target(meta.get("target"), targets, allow_untargeted=allow_untargeted)
    return {k: v for k, v in raw.items() if k != "sig"}


def _check_signed_target(target: object, accepted: Collection[str], *,
                         allow_untargeted: bool) -> None:
    here = " or ".join(sorted(accepted)) or "nothing"
    if target is None:
        if allow_untargeted:
            return
        raise SignatureError(
            f"the signature names no target (sig.target), so it would be valid on any station; "
            f"this station takes only jobs signed for {here}: sign again with a target "
            "(station-agent sign --station/--pool), or set [signing] allow_untargeted = true "
            "while migrating", code="untargeted_signature", authentic=True)
    if not isinstance(target, str) or not TARGET_PATTERN.fullmatch(target):
        raise SignatureError(f"'sig.target' {str(target)[:80]!r} is not station:<id> or "
                             "pool:<name>", authentic=True)
    if target not in accepted:
        raise SignatureError(f"the job is signed for {target}, not for {here}",
                             code="wrong_target", authentic=True, target=target)


def _check_expiry(
    exp: object, *, now: datetime, max_validity_s: float | None
) -> datetime | None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if exp is None:
        if max_validity_s is not None:
            raise _bad("signed job has no 'sig.exp' and this station requires an expiry")
        return None
    if not isinstance(exp, str):
        raise _bad("'sig.exp' must be an RFC 3339 string")
    try:
        expiry = parse_rfc3339(exp)
    except ValueError as exc:
        raise _bad(f"'sig.exp': {exc}") from None
    if expiry <= now:
        raise _bad(f"job expired at {format_rfc3339(expiry)} (now {format_rfc3339(now)})")
    if max_validity_s is not None and expiry - now > timedelta(
        seconds=max_validity_s + CLOCK_SKEW_S
    ):
        raise _bad(
            f"'sig.exp' {format_rfc3339(expiry)} is more than {max_validity_s:g} s ahead; "
            "this station accepts shorter-lived signatures only"
        )
    return expiry


class JobVerifier:
    """The trusted keys of one station, loaded once; ``verify()`` per incoming job."""

    def __init__(self, keys: Mapping[str, bytes], *, max_validity_s: float | None,
                 allow_untargeted: bool = False) -> None:
        self.keys = dict(keys)
        self.max_validity_s = max_validity_s
        self.allow_untargeted = allow_untargeted

    @classmethod
    def from_config(cls, config: SigningConfig) -> JobVerifier:
        _ed25519()  # fail at start-up, not at the first job, when the package is missing
        keys = load_public_keys(config.public_keys_dir)
        if not keys:
            raise StationAgentError(
                f"signing is enabled but {config.public_keys_dir} holds no <kid>.pub file",
                code="signing_unavailable",
            )
        return cls(keys, max_validity_s=config.max_validity_s,
                   allow_untargeted=config.allow_untargeted)

    def verify(self, raw: dict[str, object], *, targets: Collection[str],
               now: datetime | None = None) -> dict[str, object]:
        when = now if now is not None else datetime.now(UTC)
        return verify_job(raw, self.keys, now=when, targets=targets,
                          max_validity_s=self.max_validity_s,
                          allow_untargeted=self.allow_untargeted)


# -- key files ---------------------------------------------------------------------------------


def _read_key_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise StationAgentError(f"cannot read key file {path}: {exc}", code="invalid_key") from None


def read_public_key(path: Path) -> bytes:
    text = _read_key_text(path)
    if "-----BEGIN" in text:
        ed = _ed25519()
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except ValueError as exc:
            raise StationAgentError(f"{path}: {exc}", code="invalid_key") from None
        if not isinstance(key, ed.Ed25519PublicKey):
            raise StationAgentError(f"{path}: not an Ed25519 public key", code="invalid_key")
        return bytes(
            key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
    return _raw_key(path, text)


def read_private_key(path: Path) -> bytes:
    text = _read_key_text(path)
    if "-----BEGIN" in text:
        ed = _ed25519()
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError) as exc:
            raise StationAgentError(f"{path}: {exc}", code="invalid_key") from None
        if not isinstance(key, ed.Ed25519PrivateKey):
            raise StationAgentError(f"{path}: not an Ed25519 private key", code="invalid_key")
        return bytes(
            key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )
    return _raw_key(path, text)


def _raw_key(path: Path, text: str) -> bytes:
    try:
        raw = _b64_any(text)
    except (binascii.Error, ValueError):
        raise StationAgentError(f"{path}: neither PEM nor base64", code="invalid_key") from None
    if len(raw) != 32:
        raise StationAgentError(
            f"{path}: decodes to {len(raw)} bytes; an Ed25519 key is 32", code="invalid_key"
        )
    return raw


def load_public_keys(directory: Path) -> dict[str, bytes]:
    """Every ``<kid>.pub`` in ``directory``; a missing directory holds no keys."""
    if not directory.is_dir():
        return {}
    keys: dict[str, bytes] = {}
    for path in sorted(directory.glob("*.pub")):
        keys[check_kid(path.stem)] = read_public_key(path)
    return keys


def write_keypair(directory: Path, kid: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Generate a pair and write ``<kid>.key`` (mode 0600) and ``<kid>.pub`` as base64."""
    check_kid(kid)
    private, public = generate_keypair()
    directory.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = directory / f"{kid}.key", directory / f"{kid}.pub"
    if not overwrite:
        for path in (key_path, pub_path):
            if path.exists():
                raise StationAgentError(
                    f"{path} exists; refusing to replace a key (use --force)", code="key_exists"
                )
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(key_path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(base64.b64encode(private).decode("ascii") + "\n")
    os.chmod(key_path, 0o600)
    pub_path.write_text(base64.b64encode(public).decode("ascii") + "\n", encoding="ascii")
    return key_path, pub_path


# -- command line ------------------------------------------------------------------------------


def keys_main(argv: Sequence[str]) -> int:
    """``station-agent keys generate --out DIR --kid NAME [--force]``."""
    parser = argparse.ArgumentParser(prog="station-agent keys")
    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("generate", help="make an Ed25519 key pair for signing jobs")
    gen.add_argument("--out", type=Path, required=True, help="directory for <kid>.key/.pub")
    gen.add_argument("--kid", required=True, help="key id, e.g. planner-2026")
    gen.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(list(argv))
    try:
        key_path, pub_path = write_keypair(args.out, args.kid, overwrite=args.force)
    except StationAgentError as exc:
        print(f"station-agent keys: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
    print(f"private key: {key_path} (keep it on the controller only)")
    print(f"public key:  {pub_path} (copy to each station's public_keys_dir)")
    return 0


def _read_job(path: Path) -> dict[str, Any]:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    job: Any = json.loads(text)
    if not isinstance(job, dict):
        raise StationAgentError(f"{path}: a job is a JSON object", code="invalid_job")
    return job


def sign_main(argv: Sequence[str]) -> int:
    """``station-agent sign JOB.json --key FILE (--station ID | --pool NAME | --untargeted)
    [--kid NAME] [--expires-in S | --no-expiry]``.

    Writes the signed job to stdout (or ``--out``). ``--kid`` defaults to the key file's stem.
    """
    parser = argparse.ArgumentParser(prog="station-agent sign")
    parser.add_argument("job", type=Path, help="job JSON file, '-' for stdin")
    parser.add_argument("--key", type=Path, required=True, help="private key file")
    parser.add_argument("--kid", help="key id (default: the key file name without .key)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--station", help="the only station that may run it (its station_id)")
    where.add_argument("--pool", help="the only pool it may run from (sent to that pool)")
    where.add_argument("--untargeted", action="store_true",
                       help="no target: refused by stations unless [signing] allow_untargeted")
    expiry = parser.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", type=float, default=3600.0, metavar="SECONDS")
    expiry.add_argument("--no-expiry", action="store_true")
    parser.add_argument("--out", type=Path, help="write here instead of stdout")
    args = parser.parse_args(list(argv))
    if args.expires_in <= 0 and not args.no_expiry:
        parser.error("--expires-in must be positive")
    try:
        job = _read_job(args.job)
        expires = None if args.no_expiry else datetime.now(UTC) + timedelta(
            seconds=args.expires_in
        )
        kid = args.kid or args.key.name.removesuffix(".key")
        target = (station_target(args.station) if args.station is not None
                  else pool_target(args.pool) if args.pool is not None else None)
        signed = sign_job(job, read_private_key(args.key), kid, expires=expires, target=target)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"station-agent sign: {exc}", file=sys.stderr)
        return 2
    except StationAgentError as exc:
        print(f"station-agent sign: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
    out = json.dumps(signed, ensure_ascii=False, separators=(",", ":")) + "\n"
    if args.out is not None:
        args.out.write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    return 0
