"""cncjs (npm ``cncjs`` 1.11.x), headless, driven over its socket.io API by cncjs_driver.js.

Installed with npm into ~/.cache/station-agent/bench-peers with the socket.io-client its
server speaks (2.2, as its own UI). The server runs on a free loopback port with a config file
of the bench's (never ~/.cncrc) and its HOME in the bench's work folder; on its first start
cncjs writes a random ``secret`` to that config, which the driver signs its token with. The CPU
figure is the cncjs server process's alone (the driver plays the browser). Its Grbl controller
streams by character counting against 120 bytes (128 less 8), polls ``?`` every 250 ms and
ends each job with ``G4 P0.5`` (its ``%wait``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.demo import free_port
from peers.procs import CpuTimes, SenderProcess, drive

CACHE = Path.home() / ".cache" / "station-agent" / "bench-peers"
PACKAGES = ("cncjs@1.11.5", "socket.io-client@2.2.0")
DRIVER = Path(__file__).resolve().parent / "cncjs_driver.js"


def _installed_version() -> str | None:
    try:
        meta = json.loads((CACHE / "node_modules" / "cncjs" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = str(meta.get("version", ""))
    client = CACHE / "node_modules" / "socket.io-client" / "package.json"
    return version if version.startswith("1.11.") and client.exists() else None


def install() -> tuple[str | None, str]:
    """(cncjs version, why not): its version once installed, else the reason it is not."""
    if shutil.which("node") is None:
        return None, "node is not on PATH"
    version = _installed_version()
    if version:
        return version, ""
    if shutil.which("npm") is None:
        return None, "npm is not on PATH"
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", *PACKAGES],
                              cwd=CACHE, capture_output=True, text=True, check=False, timeout=900)
    except subprocess.TimeoutExpired:
        return None, "npm install took longer than 15 minutes"
    if done.returncode != 0:
        return None, f"npm install {' '.join(PACKAGES)} failed: {done.stderr[-500:]}"
    version = _installed_version()
    return (version, "") if version else (None, "cncjs is not in node_modules after npm install")


@dataclass
class CncjsServer:
    pid: int
    url: str
    secret: str


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


@contextmanager
def server(work: Path) -> Iterator[CncjsServer]:
    config = work / "cncrc.json"
    config.write_text("{}\n")
    home = work / "cncjs-home"  # it keeps its sessions in ~/.cncjs-sessions: not the user's
    home.mkdir(exist_ok=True)
    port = free_port()
    with (work / "cncjs-server.log").open("wb") as log:
        proc = subprocess.Popen(
            ["node", str(CACHE / "node_modules" / "cncjs" / "bin" / "cncjs"), "--host",
             "127.0.0.1", "--port", str(port), "--config", str(config), "--controller", "Grbl"],
            stdout=log, stderr=log, cwd=CACHE,
            env=dict(os.environ, NODE_ENV="production", HOME=str(home)))
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cncjs did not start (exit {proc.poll()}): "
                                   f"{(work / 'cncjs-server.log').read_text()[-1500:]}")
            time.sleep(0.2)
        secret = str(json.loads(config.read_text()).get("secret", ""))
        if not secret:
            raise RuntimeError("cncjs wrote no secret to its config file")
        yield CncjsServer(proc.pid, f"http://127.0.0.1:{port}", secret)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(host_link: Path, job_file: Path, work: Path, name: str,
        cncjs: CncjsServer) -> tuple[CpuTimes, dict[str, Any]]:
    env = dict(os.environ, CNCJS_SECRET=cncjs.secret, NODE_PATH=str(CACHE / "node_modules"))
    sender = SenderProcess(["node", str(DRIVER), cncjs.url, str(host_link), str(job_file)],
                           work / f"{name}-cncjs-driver.log", env=env)
    try:
        return drive(sender, cncjs.pid)
    finally:
        sender.stop()
