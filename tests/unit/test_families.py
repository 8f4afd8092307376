"""Every registered machine family is complete: what docs/adding-a-family.md asks of a new one.

For each family in :data:`agent.families.FAMILIES`: a shipped profile, JSON Schema coverage, a
row in the README's machine table, a preparer the job path reaches, and an emulator that the
``station-agent emulate`` command runs and the family's driver (made by the registry, the port
opened with the registry's handshake) says hello to over a real pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import re
from pathlib import Path

import pytest

from agent.aio import wait_within
from agent.cli import build_parser
from agent.drivers.base import MachineDriver, QuietListener
from agent.errors import ProgramError
from agent.families import COMPILED_KINDS, FAMILIES, Family, create_driver, find_family
from agent.families import serial_handshake as registry_handshake
from agent.jobs.prepare import prepare_program
from agent.profiles import Profile, available_profiles, load_profile
from agent.schemas.job import JobKind, JobRequest
from agent.transport.serial_port import SerialLink

ROOT = Path(__file__).parents[2]
NAMES = [family.name for family in FAMILIES]


def shipped_profiles(family: Family) -> list[Profile]:
    profiles = [load_profile(name) for name in available_profiles()]
    return [p for p in profiles if p.family == family.name]


def machine_table() -> dict[str, str]:
    """README's machine table: profile name -> family column."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    header = re.search(r"^\| profile \| family \|.*$", text, re.MULTILINE)
    assert header, "README's machine table needs a `| profile | family | ...` header"
    rows: dict[str, str] = {}
    for line in text[header.end():].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1]
    return rows


def blank_job(kind: JobKind) -> JobRequest:
    return JobRequest.model_validate_json(
        json.dumps({"job_id": "family-check", "kind": kind.value, "program": "\n"}))


def test_families_are_registered_once_by_name() -> None:
    assert len(set(NAMES)) == len(NAMES), "a family is registered twice"
    for family in FAMILIES:
        assert find_family(family.name) is family
    assert find_family("no-such-family") is None


def test_info_kinds_and_dialect_are_what_stations_published_before_the_registry() -> None:
    """``info`` is part of the MQTT contract: the registry must not change it for these."""
    published = {"grbl": (["gcode", "toolpaths", "pattern", "svg"], "grbl-1.1"),
                 "marlin": (["gcode", "toolpaths", "pattern", "svg"], "marlin"),
                 "hpgl": (["hpgl", "toolpaths", "pattern", "svg"], "hpgl")}
    for name, (kinds, dialect) in published.items():
        family = find_family(name)
        assert family is not None
        assert ([k.value for k in family.job_kinds], family.dialect) == (kinds, dialect)


@pytest.mark.parametrize("family", FAMILIES, ids=NAMES)
def test_family_ships_a_profile_of_its_model(family: Family) -> None:
    profiles = shipped_profiles(family)
    assert profiles, f"firmware_profiles/ has no {family.name} profile"
    assert all(isinstance(p, family.profile_model) for p in profiles)


def test_profile_schema_covers_exactly_the_registered_families() -> None:
    schema = json.loads((ROOT / "docs/schemas/profile.schema.json").read_text(encoding="utf-8"))
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == set(NAMES), "run `make schemas` (and list the model in Profile)"
    for family in FAMILIES:
        assert mapping[family.name] == f"#/$defs/{family.profile_model.__name__}"


def test_readme_machine_table_lists_every_family_and_profile() -> None:
    rows = machine_table()
    assert set(rows.values()) == set(NAMES)
    for name in available_profiles():
        assert rows.get(name) == load_profile(name).family, f"README row for {name}"


@pytest.mark.parametrize("family", FAMILIES, ids=NAMES)
def test_own_kinds_reach_the_family_preparer_and_others_are_refused(family: Family) -> None:
    profile = shipped_profiles(family)[0]
    assert family.own_kinds, "a family needs a language of its own"
    assert family.job_kinds[-len(COMPILED_KINDS):] == COMPILED_KINDS
    for kind in family.own_kinds:
        # A blank program gets past the kind check and is refused by the dialect itself.
        with pytest.raises(ProgramError) as refused:
            prepare_program(blank_job(kind), profile)
        assert refused.value.code != "unsupported_kind"
    for kind in set(JobKind) - set(family.job_kinds):
        with pytest.raises(ProgramError) as refused:
            prepare_program(blank_job(kind), profile)
        assert refused.value.code == "unsupported_kind"


@pytest.mark.parametrize("family", FAMILIES, ids=NAMES)
def test_emulator_module_has_the_cli_entry(family: Family) -> None:
    module = importlib.import_module(family.emulator)
    assert callable(module.add_cli_arguments)
    assert asyncio.iscoroutinefunction(module.run_cli)


def _created(path: Path) -> bool:
    return path.is_symlink()  # a stat of tmp_path: no I/O worth a thread


async def _wait_for_path(path: Path, emulator: asyncio.Task[None]) -> None:
    while not _created(path):
        if emulator.done():
            emulator.result()  # the emulator's own failure, not a timeout
            raise AssertionError("the emulator stopped before creating its link")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("family", FAMILIES, ids=NAMES)
async def test_driver_says_hello_to_the_emulator_the_cli_runs(
    family: Family, tmp_path: Path
) -> None:
    profile = shipped_profiles(family)[0]
    device = tmp_path / "device"
    args = build_parser().parse_args(["emulate", family.name, "--link", str(device),
                                      "--baud", "0"])
    emulator = asyncio.create_task(importlib.import_module(family.emulator).run_cli(args))
    try:
        await wait_within(_wait_for_path(device, emulator), 10)
        assert registry_handshake(profile) == family.serial_handshake(profile)
        rtscts, xonxoff = registry_handshake(profile)
        link = await SerialLink.open(str(device), profile.baud, rtscts=rtscts, xonxoff=xonxoff)
        try:
            driver = create_driver(profile, link, QuietListener())
            assert isinstance(driver, MachineDriver)
            assert driver.family == family.name
            info = await wait_within(driver.open(), profile.hello_timeout_s + 5)
            assert info.firmware
        finally:
            await link.close()
    finally:
        emulator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await emulator
