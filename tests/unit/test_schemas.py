from __future__ import annotations

from pathlib import Path

from agent.schema_export import render, schemas

DOCS = Path(__file__).parents[2] / "docs" / "schemas"


def test_committed_json_schemas_match_the_models() -> None:
    for name, schema in schemas().items():
        path = DOCS / f"{name}.schema.json"
        assert path.exists(), f"run `make schemas`: {path} is missing"
        assert path.read_text() == render(schema), f"run `make schemas`: {path} is stale"


def test_job_schema_names_the_kinds() -> None:
    job = schemas()["job"]
    assert "job_id" in job["required"]
    assert set(job["$defs"]["JobKind"]["enum"]) == {"gcode", "hpgl", "toolpaths", "pattern", "svg"}
