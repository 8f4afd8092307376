"""grbl-streamer (PyPI) streaming the job: run with the interpreter of its own venv.

Usage: ``VENV/bin/python bench/peers/streamer_driver.py PORT JOB``, spoken to as
procs.SenderProcess says. Uses grbl-streamer as its README shows: connect (it soft-resets the
controller), poll status, load the lines with ``write``, ``job_run``, and wait for
``on_job_completed``. Its default mode counts characters against a 128-byte buffer.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from grbl_streamer import GrblStreamer  # type: ignore[import-not-found]


def _say(**data: object) -> None:
    print(json.dumps(data), flush=True)


class _Events:
    def __init__(self) -> None:
        self.booted = threading.Event()
        self.completed = threading.Event()
        self.errors: list[str] = []

    def __call__(self, event: str, *data: Any) -> None:
        if event == "on_boot":
            self.booted.set()
        elif event == "on_job_completed":
            self.completed.set()
        elif event == "on_error":
            self.errors.append(str(data[0]))
            self.completed.set()


def main() -> None:
    path, job = sys.argv[1], Path(sys.argv[2]).read_text()
    events = _Events()
    grbl = GrblStreamer(events)
    grbl.setup_logging()
    grbl.cnect(path, 115_200)
    if not events.booted.wait(10):
        raise SystemExit("grbl-streamer saw no GRBL banner")
    grbl.poll_start()
    time.sleep(1.0)  # its start-up queries ($$, $#, $G) answered
    grbl.write(job)
    _say(ready=True, lines=grbl.buffer_size)
    if sys.stdin.readline().strip() == "go":
        # It says on_job_completed for the start-up queries' replies too (their ok finds an
        # empty buffer "at its end"): only one after job_run counts.
        events.completed.clear()
        grbl.job_run()
        if not events.completed.wait(600):
            raise SystemExit("the job did not complete within 600 s")
        _say(done=True, errors=events.errors, lines_sent=grbl.current_line_number)
        sys.stdin.readline()
    grbl.poll_stop()
    grbl.disconnect()


if __name__ == "__main__":
    main()
