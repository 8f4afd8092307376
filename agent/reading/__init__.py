"""How each firmware reads a line, written after its source (GRBL's gcode.c and nuts_bolts.c,
Marlin's queue and parser), below the profiles so that profiles, dialects and emulators share one
reader: :mod:`agent.reading.gcode` (line splitting and comments), :mod:`agent.reading.grbl`,
:mod:`agent.reading.marlin` and Marlin's allowlist judge :mod:`agent.reading.marlin_allowlist`.
"""
