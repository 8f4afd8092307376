"""Device emulators on pseudo-terminals: our bench when no machine is attached.

Each emulator models the firmware's serial behaviour closely enough that a host which breaks the
protocol (overruns a buffer, skips a line, mis-counts) is caught, and records every line it
executed so tests compare what ran with what was meant to run.
"""
