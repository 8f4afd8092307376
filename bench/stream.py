"""Streaming benchmarks, GRBL and Marlin, each beside a stop-and-wait sender in the same run.

Run: ``.venv/bin/python bench/stream.py``; writes bench/results/stream_grbl.json and
bench/results/stream_marlin.json (see bench/stream_grbl.py and bench/stream_marlin.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream_grbl
import stream_marlin


def main() -> None:
    stream_grbl.main()
    print()
    stream_marlin.main()


if __name__ == "__main__":
    main()
