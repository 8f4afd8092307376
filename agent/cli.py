"""The `station-agent` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from pathlib import Path
from types import ModuleType

from agent import __version__
from agent.errors import StationAgentError
from agent.families import FAMILIES, find_family
from agent.instance_lock import EXIT_ALREADY_RUNNING, AlreadyRunning
from agent.migrations import SchemaTooNew
from agent.storage import StorageUnusable, storage_error

# Exit statuses of `run` and `pool-keeper` (docs/deployment.md): 2 a bad config or argument,
# 3 the database cannot be used (damaged, read-only, from a newer release), 4 another instance
# holds the storage dir.
EXIT_CONFIG = 2
EXIT_STORAGE = 3

def _optional(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"station-agent {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the agent for one station")
    run.add_argument("--config", type=Path, required=True)

    keeper = sub.add_parser("pool-keeper", help="hold pool jobs until a free station takes each "
                            "(one per broker)")
    keeper.add_argument("--config", type=Path, required=True)

    emulate = sub.add_parser("emulate", help="run a device emulator on a pseudo-terminal")
    families = emulate.add_subparsers(dest="family", required=True)
    for family in FAMILIES:
        mod = _optional(family.emulator)
        if mod is not None and hasattr(mod, "add_cli_arguments"):
            p = families.add_parser(family.name, help=f"emulate a {family.name} machine")
            mod.add_cli_arguments(p)

    submit = sub.add_parser("submit", help="publish a job (JSON, or a G-code / HP-GL file)")
    submit.add_argument("file", type=Path)
    submit.add_argument("--station", required=True)
    submit.add_argument("--host", default="127.0.0.1")
    submit.add_argument("--port", type=int, default=1883)
    submit.add_argument("--prefix", default="mf")
    submit.add_argument("--watch", action="store_true", help="follow the job with a progress bar")
    submit.add_argument("--timeout", type=float, default=None, help="give up after this many s")

    sub.add_parser("demo", help="broker + emulated cutter + agent + a real job, live")

    preview = sub.add_parser("preview", help="render what the machine will do as SVG: "
                             "preview JOB.json --profile NAME -o preview.svg", add_help=False)
    preview.add_argument("rest", nargs=argparse.REMAINDER)

    pattern = sub.add_parser("pattern", help="pattern files: pattern info FILE.dxf "
                             "[--profile NAME] lists pieces, sizes, layers and what is skipped",
                             add_help=False)
    pattern.add_argument("rest", nargs=argparse.REMAINDER)

    doctor = sub.add_parser("doctor", help="check a station's set-up: doctor --config FILE",
                            add_help=False)
    doctor.add_argument("rest", nargs=argparse.REMAINDER)

    trace = sub.add_parser("trace", help="the last lines a running station exchanged with "
                           "its machine: trace --config FILE", add_help=False)
    trace.add_argument("rest", nargs=argparse.REMAINDER)

    keys = sub.add_parser("keys", help="signing keys")
    keys.add_argument("rest", nargs=argparse.REMAINDER)
    sign = sub.add_parser("sign", help="sign a job file")
    sign.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _stop_on_signal() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _run_until_signal(config_path: Path) -> None:
    from agent.app import run_agent
    from agent.config import load_config

    config = load_config(config_path)
    await run_agent(config, stop=_stop_on_signal())


async def _run_keeper_until_signal(config_path: Path) -> None:
    from agent.config import load_keeper_config
    from agent.pools.keeper import run_keeper

    config = load_keeper_config(config_path)
    await run_keeper(config, stop=_stop_on_signal())


async def _run_emulator(args: argparse.Namespace) -> None:
    family = find_family(args.family)
    assert family is not None  # argparse only offers registered families
    mod = importlib.import_module(family.emulator)
    task = asyncio.ensure_future(mod.run_cli(args))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


PASSTHROUGH = {
    "preview": ("agent.preview", "preview_main"),
    "doctor": ("agent.doctor", "doctor_main"),
    "keys": ("agent.signing", "keys_main"),
    "sign": ("agent.signing", "sign_main"),
    "pattern": ("agent.patterns.cli", "pattern_main"),
    "trace": ("agent.trace_server", "trace_main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        # These subcommands own their argument parsing (and --help).
        module, func = PASSTHROUGH[argv[0]]
        try:
            return int(getattr(importlib.import_module(module), func)(argv[1:]))
        except StationAgentError as exc:
            print(f"station-agent: {exc.code}: {exc.message}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _dispatch(args)
    except AlreadyRunning as exc:
        print(f"station-agent: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except (StorageUnusable, SchemaTooNew) as exc:
        print(f"station-agent: {exc.code}: {exc.advice}", file=sys.stderr)
        return EXIT_STORAGE
    except StationAgentError as exc:
        print(f"station-agent: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    except BaseExceptionGroup as group:
        # A database damaged while running surfaces from inside the task group.
        found = group.subgroup(lambda e: storage_error(e) is not None)
        if found is None:
            raise
        first = _first_leaf(found)
        err = storage_error(first)
        assert err is not None
        logging.getLogger("agent").debug("stopping on a storage failure", exc_info=first)
        print(f"station-agent: storage_error: stopped because its database failed while "
              f"running ({err.reason}: {err.message}). {_STORAGE_ADVICE.get(err.reason, '')}"
              f"Run `station-agent doctor --config FILE` to see what is wrong.", file=sys.stderr)
        return EXIT_STORAGE


_STORAGE_ADVICE = {
    "disk_full": "Free space on its disk; it can then start again. ",
    "io_error": "The disk is failing (check `dmesg`); replace it if the errors go on. ",
    "read_only": "Make its storage directory writable again (or remount it read-write). ",
    "corrupt": "The database file is damaged: move it (and its -wal, -shm) aside before it "
               "can start again. ",
}


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        asyncio.run(_run_until_signal(args.config))
        return 0
    if args.command == "pool-keeper":
        asyncio.run(_run_keeper_until_signal(args.config))
        return 0
    if args.command == "emulate":
        asyncio.run(_run_emulator(args))
        return 0
    if args.command == "submit":
        from agent.submit import load_job_file, submit

        job = load_job_file(args.file)
        return asyncio.run(submit(job, station=args.station, host=args.host, port=args.port,
                                  prefix=args.prefix, watch=args.watch, timeout_s=args.timeout))
    if args.command == "demo":
        from agent.demo import main as demo_main

        if not args.verbose:
            # The demo's own lines tell the story; the agent's log would bury the progress bar.
            logging.getLogger().setLevel(logging.WARNING)
        return demo_main()
    return 2


if __name__ == "__main__":
    sys.exit(main())
