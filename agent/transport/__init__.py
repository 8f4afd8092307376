"""Byte links to machines and the flow-control disciplines (sans-I/O state machines)."""
