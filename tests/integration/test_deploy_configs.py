"""The broker settings shipped in deploy/ are accepted by the real Mosquitto."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

from tests.support.broker import Broker

DEPLOY = Path(__file__).parents[2] / "deploy" / "mosquitto"


def test_durability_conf_runs_on_mosquitto(tmp_path: Path) -> None:
    text = (DEPLOY / "durability.conf").read_text()
    assert re.search(r"^autosave_interval 10$", text, re.M)
    assert re.search(r"^max_queued_messages 100000$", text, re.M)
    text = text.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    broker = Broker(tmp_path)
    broker.conf_path.write_text(
        f"user {getpass.getuser()}\nlistener {broker.port} 127.0.0.1\nallow_anonymous true\n"
        f"{text}\n"
    )
    broker.start()
    try:
        assert broker.proc is not None and broker.proc.poll() is None
    finally:
        broker.stop()
    assert (tmp_path / "mosquitto.db").exists(), "persistence did not write its store"
