"""Write the JSON Schema of every wire model and of the firmware profile into a folder.

``make schemas`` runs ``python -m agent.schema_export docs/schemas``. It sits above the wire
models (:mod:`agent.schemas`) and the profiles (:mod:`agent.profiles`, whose union covers every
registered family's profile model), so it may read both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from agent.profiles import Profile
from agent.schemas.command import Command
from agent.schemas.event import Event
from agent.schemas.job import JobRequest
from agent.schemas.pool import PoolAssignment, PoolOffer, PoolReply
from agent.schemas.queue import QueueView
from agent.schemas.status import Info, Status
from agent.schemas.trace import SerialTraceDump

MODELS: dict[str, type[BaseModel]] = {
    "job": JobRequest,
    "cmd": Command,
    "event": Event,
    "status": Status,
    "info": Info,
    "queue": QueueView,
    "pool_offer": PoolOffer,
    "pool_assignment": PoolAssignment,
    "pool_reply": PoolReply,
    "trace": SerialTraceDump,
}


def schemas() -> dict[str, dict[str, Any]]:
    found = {name: model.model_json_schema() for name, model in MODELS.items()}
    # A profile file (TOML, read as this JSON shape): one model per family, chosen by `family`.
    found["profile"] = TypeAdapter(Profile).json_schema()
    out = {}
    for name, schema in found.items():
        schema["$id"] = f"station-agent/v1/{name}.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[name] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = folder / f"{name}.schema.json"
        path.write_text(render(schema))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in export(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(path)
