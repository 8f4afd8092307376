"""Firmware profiles: one TOML file per machine family, validated at load, unknown keys rejected.

A profile is named by the file's stem in ``firmware_profiles/`` (shipped inside the package) or
given as a path to a TOML file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from agent.errors import ConfigError
from agent.profiles.grbl import GrblProfile
from agent.profiles.hpgl import HpglProfile
from agent.profiles.marlin import MarlinProfile
from agent.strict import format_validation_error

Profile = Annotated[GrblProfile | HpglProfile | MarlinProfile, Field(discriminator="family")]

__all__ = [
    "Profile", "available_profiles", "format_validation_error", "load_profile", "parse_profile",
    "profile_dirs", "resolve_profile_path",
]

_ADAPTER: TypeAdapter[Profile] = TypeAdapter(Profile)


def profile_dirs() -> list[Path]:
    """Where named profiles are looked up: the installed copy, then the source tree's."""
    here = Path(__file__).resolve().parent.parent
    return [here / "firmware_profiles", here.parent / "firmware_profiles"]


def available_profiles() -> list[str]:
    names: set[str] = set()
    for d in profile_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def resolve_profile_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        if candidate.is_file():
            return candidate
        raise ConfigError(f"profile file not found: {name_or_path}", code="unknown_profile")
    for d in profile_dirs():
        path = d / f"{name_or_path}.toml"
        if path.is_file():
            return path
    known = ", ".join(available_profiles()) or "none"
    raise ConfigError(f"unknown profile {name_or_path!r} (known: {known})", code="unknown_profile")


def parse_profile(data: dict[str, object], *, source: str = "<profile>") -> Profile:
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def load_profile(name_or_path: str) -> Profile:
    path = resolve_profile_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_profile(data, source=str(path))
