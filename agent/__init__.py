"""station-agent: MQTT jobs to GRBL, Marlin and HP-GL machines over serial."""

__version__ = "0.1.0"
