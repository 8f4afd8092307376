"""Pool dispatch: "any free knife cutter takes this", exactly once (see agent.schemas.pool)."""
