"""The agent's packages import down a declared order of layers, and never in a circle.

Every module under ``agent/`` is parsed (not imported) and each ``import agent.x...`` or
``from agent.x import ...`` is counted, wherever it is written: at the top, inside a function
(a lazy import is still a dependency, only a later one) or under ``if TYPE_CHECKING:``. A
"package" is the first level under ``agent``: ``agent/dialects/`` and ``agent/station.py`` alike.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import agent

AGENT_DIR = Path(agent.__file__).resolve().parent

# Lowest first. A package may import packages of lower rungs only (and itself); packages on one
# rung may not import each other. This is the order the code has, which differs from the short
# form in the contributors' notes in one place: ``link`` is below ``jobs`` and ``station``, since
# the reporter (used by the job runner) writes the outbox and the station names its topics.
LAYERS: tuple[tuple[str, ...], ...] = (
    # Leaves: no agent imports.
    ("errors", "strict", "aio", "sdnotify", "garments"),
    ("schemas", "migrations"),
    # reading: how firmware reads a line (GRBL's gcode.c, Marlin's parser); profiles check
    # themselves against it.
    ("storage", "reading", "safety", "signing"),
    ("instance_lock", "profiles", "config"),
    # estimate: machine time from a motion model of the firmware's planner.
    ("dialects", "estimate"),
    ("toolpaths",),
    ("patterns",),
    ("transport",),
    ("drivers",),
    # The family registry: wires each family's dialect, driver and profile model.
    ("families",),
    ("device",),
    ("link",),
    ("reporter",),
    ("jobs",),
    ("pools",),
    ("station",),
    # The running agent's trace socket (app starts it; `station-agent trace` is its client).
    ("trace_server",),
    # Emulators sit at the top so that nothing but the CLI, the demo and the tests wires them.
    ("app", "doctor", "preview", "submit", "schema_export", "emulators"),
    ("demo",),
    ("cli",),
)

# Imports allowed against the order, each with why and what removes it; only for imports under
# ``if TYPE_CHECKING:`` (type hints), and an entry whose import is gone fails the test. Empty
# since PoolMember talks to a PoolHost protocol instead of importing the Station.
EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # package that imports
    target: str  # package imported
    module: str  # agent-relative path of the importing file
    line: int
    type_checking: bool


def _package_of(path: Path) -> str:
    rel = path.relative_to(AGENT_DIR)
    return rel.parts[0].removesuffix(".py")


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The agent packages ``node`` imports (``from agent import migrations`` included)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level == 0 and node.module is not None:
        if node.module == "agent":
            names = [f"agent.{alias.name}" for alias in node.names]
        else:
            names = [node.module]
    packages = []
    for name in names:
        parts = name.split(".")
        if parts[0] != "agent" or len(parts) < 2:
            continue
        first = parts[1]
        if (AGENT_DIR / first).is_dir() or (AGENT_DIR / f"{first}.py").is_file():
            packages.append(first)
    return packages


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_in(path: Path) -> list[Import]:
    source = _package_of(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for inner in node.body:
                guarded.update(id(n) for n in ast.walk(inner))
    module = str(path.relative_to(AGENT_DIR))
    return [
        Import(source, target, module, node.lineno, id(node) in guarded)
        for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
        for target in _targets(node) if target != source
    ]


def all_imports() -> list[Import]:
    return [imp for path in sorted(AGENT_DIR.rglob("*.py")) if path.name != "__init__.py"
            or path.parent != AGENT_DIR for imp in _imports_in(path)]


def _rung() -> dict[str, int]:
    return {package: i for i, rung in enumerate(LAYERS) for package in rung}


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected groups of more than one package (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(set(graph) | {b for _, b in edges}):
        if v not in index:
            visit(v)
    return groups


def test_every_package_has_a_layer() -> None:
    packages = {_package_of(p) for p in AGENT_DIR.rglob("*.py")} - {"__init__"}
    assert packages - set(_rung()) == set(), "add the new package to LAYERS"
    assert set(_rung()) - packages == set(), "LAYERS names a package that is gone"
    named = [p for rung in LAYERS for p in rung]
    assert len(named) == len(set(named)), "a package is on two rungs"


def test_no_package_cycles() -> None:
    edges = {(i.source, i.target) for i in all_imports()} - set(EXCEPTIONS)
    assert _cycles(edges) == []


def test_imports_point_down_the_layers() -> None:
    rung = _rung()
    upward = [
        f"{i.module}:{i.line} imports agent.{i.target} (rung {rung[i.target]}) from "
        f"{i.source} (rung {rung[i.source]})"
        for i in all_imports()
        if rung[i.target] >= rung[i.source] and (i.source, i.target) not in EXCEPTIONS
    ]
    assert upward == []
    for (source, target), why in EXCEPTIONS.items():
        used = [i for i in all_imports() if (i.source, i.target) == (source, target)]
        assert used, f"{source} no longer imports {target}: remove the exception ({why})"
        assert all(i.type_checking for i in used), [i for i in used if not i.type_checking]


def test_the_checker_sees_lazy_and_aliased_imports() -> None:
    """The parser finds what these tests rely on: imports in functions and ``from agent import``."""
    storage = [i for i in all_imports() if i.module == "storage.py"]
    assert ("storage", "migrations") in {(i.source, i.target) for i in storage}
    preview = [i for i in all_imports() if i.module == "preview.py" and i.target == "patterns"]
    assert preview, "preview imports patterns inside a function"
    hpgl = {(i.target, i.type_checking) for i in all_imports() if i.module == "families/hpgl.py"}
    # The driver's module at first use, its base class for type hints only.
    assert {("drivers", True), ("drivers", False), ("transport", True)} <= hpgl
    assert _cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]
