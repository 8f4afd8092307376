"""The e-stop chain end to end: a pin edge on another thread puts the stop bytes on the wire.

A listener that does what the agent's e-stop handler does (urgent ``!`` + 0x18 on the machine's
SerialLink) is wired to a SafetyPanel; the device end of a real pseudo-terminal must receive the
stop bytes ahead of a long program still queued in the link.
"""

from __future__ import annotations

import asyncio
import threading

from gpiozero.pins.mock import MockFactory

from agent.aio import wait_within
from agent.emulators.pty import PtyEndpoint
from agent.safety import GpioConfig, SafetyPanel
from agent.transport.serial_port import SerialLink
from tests.safety.helpers import RecordingListener, close_contact, open_contact, until

STOP = b"!\x18"
ESTOP = 17
# The outline of a T-shirt front panel, cut at 1500 mm/min: far more than the pty takes at once.
FRONT_PANEL = b"".join(
    f"G1 X{250 + 10 * (i % 40):.1f} Y{(i * 0.5) % 720:.1f} F1500\n".encode() for i in range(4000)
)


class StopOnEstop(RecordingListener):
    def __init__(self, link: SerialLink) -> None:
        super().__init__()
        self.link = link

    def on_estop(self, pressed: bool) -> None:
        if pressed:
            self.link.write(STOP, urgent=True)
        super().on_estop(pressed)


async def test_estop_press_sends_stop_bytes_ahead_of_queued_program(
    pin_factory: MockFactory,
) -> None:
    async with PtyEndpoint(baud=None, latency_s=0.0) as device:
        link = await SerialLink.open(device.path, 115_200)
        try:
            listener = StopOnEstop(link)
            config = GpioConfig.model_validate({"estop": {"pin": ESTOP}})
            with SafetyPanel(config, pin_factory, asyncio.get_running_loop(), listener):
                pin = pin_factory.pin(ESTOP)
                close_contact(pin)
                await asyncio.sleep(0.05)
                # Fill the pty so that program bytes wait in the link's queue.
                link.write(FRONT_PANEL)
                received = b""
                while not received:
                    received += await device.receive()

                operator = threading.Thread(target=open_contact, args=(pin,))
                operator.start()
                operator.join()
                await until(lambda: listener.events == [("estop", True)], "e-stop press")
                while STOP not in received:
                    received += await wait_within(device.receive(), 5.0)
                # Urgent bytes jump the queue: most of the program is still behind them.
                assert received.index(STOP) < len(FRONT_PANEL) // 2
        finally:
            await link.close()
