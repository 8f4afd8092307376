"""The udev rules example: every rule, active or commented out, is well formed."""

from __future__ import annotations

import re
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "udev" / "99-station-agent-serial.rules.example"
# KEY, KEY{attr}, with ==, !=, =, += or :=, and a double-quoted value.
ASSIGNMENT = re.compile(r'^\s*([A-Z_]+(?:\{[A-Za-z0-9_]+\})?)\s*(==|!=|\+=|:=|=)\s*"([^"]*)"\s*$')


def rules(include_commented: bool) -> list[dict[str, tuple[str, str]]]:
    found = []
    for raw in RULES.read_text().splitlines():
        line = raw.strip()
        if include_commented and line.startswith("#SUBSYSTEM"):
            line = line[1:]
        if not line or line.startswith("#"):
            continue
        keys: dict[str, tuple[str, str]] = {}
        for part in line.split(", "):
            m = ASSIGNMENT.match(part)
            assert m, f"malformed udev key in {line!r}: {part!r}"
            keys[m.group(1)] = (m.group(2), m.group(3))
        found.append(keys)
    return found


def test_one_active_rule_by_vendor_product_and_serial() -> None:
    (rule,) = rules(include_commented=False)
    assert {"ATTRS{idVendor}", "ATTRS{idProduct}", "ATTRS{serial}"} <= rule.keys()
    assert rule["SUBSYSTEM"] == ("==", "tty")


def test_every_rule_names_the_port_for_the_agent_only() -> None:
    all_rules = rules(include_commented=True)
    assert len(all_rules) == 3
    assert any("ENV{ID_PATH}" in r for r in all_rules)  # by physical port, no serial number
    for rule in all_rules:
        assert rule["SYMLINK"] == ("+=", "station-machine")
        assert rule["GROUP"] == ("=", "dialout")
        assert rule["MODE"] == ("=", "0660")
        assert rule["ENV{ID_MM_DEVICE_IGNORE}"] == ("=", "1")
