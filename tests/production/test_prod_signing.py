"""Signed jobs: only what a trusted controller key signed, unaltered and unexpired, is accepted."""

from __future__ import annotations

import base64
import json
import struct
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import StationAgentError
from agent.signing import (
    JobVerifier,
    SigningConfig,
    canonical_json,
    generate_keypair,
    keys_main,
    load_public_keys,
    public_key_of,
    read_private_key,
    sign_job,
    sign_main,
    signed_bytes,
    verify_job,
)

NOW = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
LASER = "station:laser-02"
HERE = {LASER}  # what laser-02 accepts on its own job topic

# A laser engraving job for a care label: the kind of thing a forged job could change.
CARE_LABEL_JOB: dict[str, object] = {
    "job_id": "care-label-SS27-0412",
    "kind": "gcode",
    "station": "laser-02",
    "material": "cotton-twill-label-30x60",
    "program": [
        "G21", "G90", "M4 S0",
        "G0 X12.5 Y8.0", "G1 X47.5 Y8.0 F1800 S350",
        "G1 X47.5 Y22.0", "G1 X12.5 Y22.0", "G1 X12.5 Y8.0", "M5",
    ],
    "meta": {"garment": "T-shirt SS27", "text": "100% coton – lavage 30 °C"},
}


@pytest.fixture(scope="module")
def planner_key() -> tuple[bytes, bytes]:
    return generate_keypair()


def signed(key: tuple[bytes, bytes], *, job: dict[str, object] | None = None,
           expires: datetime | None = NOW + timedelta(hours=1), kid: str = "planner-1",
           target: str | None = LASER) -> dict[str, object]:
    return sign_job(job or CARE_LABEL_JOB, key[0], kid, expires=expires, target=target)


def test_signed_job_verifies_and_comes_back_without_sig(planner_key: tuple[bytes, bytes]) -> None:
    raw = signed(planner_key)
    sig = raw["sig"]
    assert isinstance(sig, dict)
    assert sig["kid"] == "planner-1"
    assert sig["alg"] == "ed25519"
    assert sig["exp"] == "2026-11-27T17:00:00Z"
    assert sig["target"] == LASER
    job = verify_job(raw, {"planner-1": planner_key[1]}, now=NOW, targets=HERE)
    assert job == CARE_LABEL_JOB


def test_job_survives_a_json_round_trip_through_the_wire(planner_key: tuple[bytes, bytes]) -> None:
    wire = json.dumps(signed(planner_key), indent=2, ensure_ascii=True)
    job = verify_job(json.loads(wire), {"planner-1": planner_key[1]}, now=NOW, targets=HERE)
    assert job["meta"] == CARE_LABEL_JOB["meta"]


def _rejected(raw: dict[str, object], keys: dict[str, bytes], *, code: str = "bad_signature",
              targets: set[str] = HERE, **kw: object) -> str:
    with pytest.raises(StationAgentError) as info:
        verify_job(raw, keys, now=NOW, targets=targets, **kw)  # type: ignore[arg-type]
    assert info.value.code == code
    return info.value.message


def test_unsigned_job_is_rejected(planner_key: tuple[bytes, bytes]) -> None:
    message = _rejected(dict(CARE_LABEL_JOB), {"planner-1": planner_key[1]})
    assert "not signed" in message


def test_altered_program_is_rejected(planner_key: tuple[bytes, bytes]) -> None:
    raw = signed(planner_key)
    program = list(raw["program"])  # type: ignore[call-overload]
    program[4] = "G1 X47.5 Y8.0 F1800 S1000"  # laser power raised after signing
    raw["program"] = program
    assert "altered" in _rejected(raw, {"planner-1": planner_key[1]})


def test_replay_with_later_expiry_is_rejected(planner_key: tuple[bytes, bytes]) -> None:
    raw = signed(planner_key)
    raw["sig"] = {**raw["sig"], "exp": "2026-11-27T19:00:00Z"}  # type: ignore[dict-item]
    assert "altered" in _rejected(raw, {"planner-1": planner_key[1]})


def test_signature_by_another_key_under_a_trusted_kid_is_rejected(
    planner_key: tuple[bytes, bytes],
) -> None:
    forger = generate_keypair()
    raw = signed(forger)
    assert "altered" in _rejected(raw, {"planner-1": planner_key[1]})


def test_unknown_kid_is_rejected_naming_the_trusted_ones(planner_key: tuple[bytes, bytes]) -> None:
    raw = signed(planner_key, kid="someone-else")
    message = _rejected(raw, {"planner-1": planner_key[1]})
    assert "someone-else" in message
    assert "planner-1" in message


def test_expired_job_is_rejected(planner_key: tuple[bytes, bytes]) -> None:
    raw = signed(planner_key, expires=NOW - timedelta(seconds=1))
    assert "expired" in _rejected(raw, {"planner-1": planner_key[1]})


def test_overlong_validity_is_rejected(planner_key: tuple[bytes, bytes]) -> None:
    raw = signed(planner_key, expires=NOW + timedelta(days=30))
    assert "ahead" in _rejected(raw, {"planner-1": planner_key[1]}, max_validity_s=86_400)


def test_missing_expiry_is_rejected_unless_allowed(planner_key: tuple[bytes, bytes]) -> None:
    raw = signed(planner_key, expires=None)
    assert "expiry" in _rejected(raw, {"planner-1": planner_key[1]})
    job = verify_job(raw, {"planner-1": planner_key[1]}, now=NOW, max_validity_s=None,
                     targets=HERE)
    assert job["job_id"] == "care-label-SS27-0412"


@pytest.mark.parametrize(
    ("sig", "fragment"),
    [
        ("not-an-object", "must be an object"),
        ({"kid": "planner-1", "alg": "ed25519"}, "lacks sig"),
        ({"kid": "planner-1", "alg": "rs256", "sig": "AA"}, "unsupported"),
        ({"kid": "planner-1", "alg": "ed25519", "sig": "!!!"}, "base64url"),
        ({"kid": "planner-1", "alg": "ed25519", "sig": "AAAA"}, "64"),
        ({"kid": "planner-1", "alg": "ed25519", "sig": "AA", "x": 1}, "unknown members"),
    ],
)
def test_malformed_sig_is_rejected_with_a_precise_message(
    planner_key: tuple[bytes, bytes], sig: object, fragment: str
) -> None:
    raw = {**CARE_LABEL_JOB, "sig": sig}
    assert fragment in _rejected(raw, {"planner-1": planner_key[1]})


def test_missing_cryptography_gives_signing_unavailable(
    monkeypatch: pytest.MonkeyPatch, planner_key: tuple[bytes, bytes]
) -> None:
    raw = signed(planner_key)
    # As on a Pi where the package was never installed.
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric.ed25519", None)
    with pytest.raises(StationAgentError) as info:
        verify_job(raw, {"planner-1": planner_key[1]}, now=NOW, targets=HERE)
    assert info.value.code == "signing_unavailable"
    with pytest.raises(StationAgentError) as info:
        generate_keypair()
    assert info.value.code == "signing_unavailable"


# -- canonical form: RFC 8785 --------------------------------------------------------------------

RFC8785_NUMBERS = [
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7FEFFFFFFFFFFFFF, "1.7976931348623157e+308"),
    (0xFFEFFFFFFFFFFFFF, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xC340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44B52D02C7E14AF5, "9.999999999999997e+22"),
    (0x44B52D02C7E14AF6, "1e+23"),
    (0x44B52D02C7E14AF7, "1.0000000000000001e+23"),
    (0x444B1AE4D6E2EF4E, "999999999999999700000"),
    (0x444B1AE4D6E2EF4F, "999999999999999900000"),
    (0x444B1AE4D6E2EF50, "1e+21"),
    (0x3EB0C6F7A0B5ED8C, "9.999999999999997e-7"),
    (0x3EB0C6F7A0B5ED8D, "0.000001"),
    (0x41B3DE4355555553, "333333333.3333332"),
    (0x41B3DE4355555554, "333333333.33333325"),
    (0x41B3DE4355555555, "333333333.3333333"),
    (0x41B3DE4355555556, "333333333.3333334"),
    (0x41B3DE4355555557, "333333333.33333343"),
    (0xBECBF647612F3696, "-0.0000033333333333333333"),
    (0x43143FF3C1CB0959, "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), RFC8785_NUMBERS)
def test_numbers_follow_rfc8785_appendix_b(bits: int, expected: str) -> None:
    (value,) = struct.unpack(">d", bits.to_bytes(8, "big"))
    assert canonical_json(value) == expected.encode()


def test_rfc8785_sample_document() -> None:
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(json.loads(text)) == expected.encode("utf-8")


def test_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+FB01 in UTF-16 although
    # its code point is larger.
    doc = {"\U0001f600": 1, "\ufb01": 2, "a": 3}
    assert canonical_json(doc) == '{"a":3,"\U0001f600":1,"\ufb01":2}'.encode()


def test_documented_example_bytes() -> None:
    job = {"job_id": "tee-front-42", "priority": 1.0,
           "sig": {"kid": "k1", "alg": "ed25519", "target": "station:cutter-01"}}
    assert canonical_json(job) == (
        b'{"job_id":"tee-front-42","priority":1,'
        b'"sig":{"alg":"ed25519","kid":"k1","target":"station:cutter-01"}}'
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 10**400, {1: "x"}, b"bytes"])
def test_values_outside_json_cannot_be_canonicalised(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json({"v": bad})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_form_parses_back_to_the_same_value(value: object) -> None:
    text = canonical_json(value).decode("utf-8")
    # JSON numbers are doubles: compare as a JavaScript reader would.
    assert _as_doubles(json.loads(text)) == _as_doubles(value)
    assert canonical_json(json.loads(text)) == text.encode("utf-8")


def test_large_integer_literal_is_the_double_javascript_prints() -> None:
    # JSON.stringify(4.691142922363111e16) gives this literal; Python reads it as an int.
    assert canonical_json(46911429223631110) == canonical_json(4.691142922363111e16)
    assert canonical_json(2**60) == b"1152921504606847000"


def _as_doubles(value: object) -> object:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_as_doubles(v) for v in value]
    assert isinstance(value, dict)
    return {k: _as_doubles(v) for k, v in value.items()}


# -- key files and the command line ----------------------------------------------------------------


def test_keys_generate_then_sign_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    keydir = tmp_path / "keys"
    assert keys_main(["generate", "--out", str(keydir), "--kid", "planner-2026"]) == 0
    assert (keydir / "planner-2026.key").stat().st_mode & 0o777 == 0o600
    assert keys_main(["generate", "--out", str(keydir), "--kid", "planner-2026"]) == 2
    assert "exists" in capsys.readouterr().err

    job_file = tmp_path / "tee-back.json"
    job_file.write_text(json.dumps({"job_id": "tee-back-M-7", "program": ["G21", "G90"]}))
    out = tmp_path / "tee-back.signed.json"
    assert sign_main([str(job_file), "--key", str(keydir / "planner-2026.key"),
                      "--station", "cutter-07", "--expires-in", "600", "--out", str(out)]) == 0
    raw = json.loads(out.read_text())
    assert raw["sig"]["kid"] == "planner-2026"
    assert raw["sig"]["target"] == "station:cutter-07"

    station_keys = tmp_path / "station-keys"
    station_keys.mkdir()
    (station_keys / "planner-2026.pub").write_text((keydir / "planner-2026.pub").read_text())
    verifier = JobVerifier.from_config(SigningConfig(enabled=True, public_keys_dir=station_keys))
    assert verifier.verify(raw, targets={"station:cutter-07"})["job_id"] == "tee-back-M-7"
    with pytest.raises(StationAgentError) as info:
        verifier.verify(raw, targets={"station:cutter-08"})
    assert info.value.code == "wrong_target"
    assert load_public_keys(station_keys)["planner-2026"] == public_key_of(
        read_private_key(keydir / "planner-2026.key"))


def test_pem_key_files_are_accepted(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "ops.key").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp_path / "ops.pub").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    raw = sign_job(CARE_LABEL_JOB, read_private_key(tmp_path / "ops.key"), "ops",
                   expires=NOW + timedelta(minutes=5), target=LASER)
    assert verify_job(raw, load_public_keys(tmp_path), now=NOW, targets=HERE)["job_id"] == (
        CARE_LABEL_JOB["job_id"])


def test_verifier_without_keys_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(StationAgentError) as info:
        JobVerifier.from_config(SigningConfig(enabled=True, public_keys_dir=tmp_path))
    assert info.value.code == "signing_unavailable"


def test_sign_rejects_a_non_object_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keydir = tmp_path / "k"
    keys_main(["generate", "--out", str(keydir), "--kid", "p"])
    job_file = tmp_path / "list.json"
    job_file.write_text("[1, 2]")
    assert sign_main([str(job_file), "--key", str(keydir / "p.key"), "--pool", "knife"]) == 2
    assert "invalid_job" in capsys.readouterr().err


# -- targets: a job signed for one station does not run on another -----------------------------


def test_a_job_signed_for_one_station_is_refused_by_another(
    planner_key: tuple[bytes, bytes],
) -> None:
    raw = signed(planner_key, target="station:cutter-01")
    keys = {"planner-1": planner_key[1]}
    assert verify_job(raw, keys, now=NOW, targets={"station:cutter-01"})["job_id"] == (
        CARE_LABEL_JOB["job_id"])
    message = _rejected(raw, keys, code="wrong_target", targets={"station:cutter-02"})
    assert "station:cutter-01" in message
    # Nor through a pool it was not signed for.
    _rejected(raw, keys, code="wrong_target", targets={"station:cutter-02", "pool:knife"})


def test_a_job_signed_for_a_pool_runs_only_from_that_pool(planner_key: tuple[bytes, bytes]) -> None:
    raw = signed(planner_key, target="pool:knife")
    keys = {"planner-1": planner_key[1]}
    assert verify_job(raw, keys, now=NOW, targets={"station:cutter-01", "pool:knife"})
    # Sent straight to a member's own job topic, it is refused: the pool keeper would not
    # know of it and could hand the same job to another member.
    _rejected(raw, keys, code="wrong_target", targets={"station:cutter-01"})
    _rejected(raw, keys, code="wrong_target", targets={"station:cutter-01", "pool:lasers"})


def test_the_target_cannot_be_changed_after_signing(planner_key: tuple[bytes, bytes]) -> None:
    raw = signed(planner_key, target="station:cutter-01")
    raw["sig"] = {**raw["sig"], "target": "station:cutter-02"}  # type: ignore[dict-item]
    message = _rejected(raw, {"planner-1": planner_key[1]}, targets={"station:cutter-02"})
    assert "altered" in message


def test_an_untargeted_signature_is_refused_unless_allowed_for_migration(
    planner_key: tuple[bytes, bytes],
) -> None:
    raw = signed(planner_key, target=None)
    assert "target" not in raw["sig"]  # type: ignore[operator]
    keys = {"planner-1": planner_key[1]}
    message = _rejected(raw, keys, code="untargeted_signature")
    assert "allow_untargeted" in message
    job = verify_job(raw, keys, now=NOW, targets=HERE, allow_untargeted=True)
    assert job["job_id"] == CARE_LABEL_JOB["job_id"]
    verifier = JobVerifier(keys, max_validity_s=86_400, allow_untargeted=True)
    assert verifier.verify(raw, targets=HERE, now=NOW)["job_id"] == CARE_LABEL_JOB["job_id"]
    strict = JobVerifier(keys, max_validity_s=86_400)
    with pytest.raises(StationAgentError) as info:
        strict.verify(raw, targets=HERE, now=NOW)
    assert info.value.code == "untargeted_signature"


@pytest.mark.parametrize("target", ["cutter-01", "station:", "station:a/b", "robot:x", 7])
def test_a_malformed_target_is_a_bad_signature(planner_key: tuple[bytes, bytes],
                                               target: object) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    # Validly signed as is, past sign_job's own check: the station must not trust a target it
    # cannot parse, signed or not.
    meta = {"kid": "planner-1", "alg": "ed25519", "exp": "2026-11-27T17:00:00Z",
            "target": target}
    body = dict(CARE_LABEL_JOB)
    sig = ed25519.Ed25519PrivateKey.from_private_bytes(planner_key[0]).sign(
        signed_bytes(body, meta))
    body["sig"] = {**meta, "sig": base64.urlsafe_b64encode(sig).rstrip(b"=").decode()}
    assert "'sig.target'" in _rejected(body, {"planner-1": planner_key[1]})


def test_sign_needs_a_target_or_an_explicit_untargeted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    keydir = tmp_path / "k"
    keys_main(["generate", "--out", str(keydir), "--kid", "p"])
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"job_id": "tee-1", "kind": "gcode", "program": "G0"}))
    with pytest.raises(SystemExit):
        sign_main([str(job_file), "--key", str(keydir / "p.key")])
    assert "--station" in capsys.readouterr().err
    assert sign_main([str(job_file), "--key", str(keydir / "p.key"), "--pool", "knife"]) == 0
    assert json.loads(capsys.readouterr().out)["sig"]["target"] == "pool:knife"
    assert sign_main([str(job_file), "--key", str(keydir / "p.key"), "--untargeted"]) == 0
    assert "target" not in json.loads(capsys.readouterr().out)["sig"]
    assert sign_main([str(job_file), "--key", str(keydir / "p.key"), "--station", "a/b"]) == 2
    assert "invalid_target" in capsys.readouterr().err
