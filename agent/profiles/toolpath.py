"""How a profile compiles device-neutral toolpaths for its machine (see agent/toolpaths/)."""

from __future__ import annotations

from agent.profiles.strict import StrictModel


class ToolpathSettings(StrictModel):
    """Placeholder until the toolpath compiler lands; a profile without it takes no toolpaths."""
