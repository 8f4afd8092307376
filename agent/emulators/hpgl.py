"""An HP-GL plotter/cutter on a pseudo-terminal, for tests, benchmarks and bench setups.

Model (HP 7475A-like, Roland CAMM-GL III answers the same):

- Bytes from the host go into a fixed-size input buffer. A byte that arrives when the buffer
  is full is lost: I/O error 16 (``ESC.E``), counted in :attr:`overflow_errors`.
- Device-control escapes (``ESC.``) are taken out of the stream as they arrive and answered at
  once: ``B`` free bytes, ``L`` buffer size, ``E`` last I/O error (reading clears it), ``O``
  extended status (8 buffer empty, 16 paused, 32 lever up), ``K`` abort (discard the buffer).
  Parameterised ones (``@ H I M N``) end with ``:``; ``ESC.I`` / ``ESC.N`` set XON/XOFF.
- A plotter task takes one instruction at a time out of the buffer and runs it; moves take
  ``distance / speed`` of real time (pen speed knob, lowered by ``VS`` for pen-down moves).
  Output instructions (``OS OE OI OA OH``) are answered when reached.
- An output request made while the previous answer is still leaving the device gives I/O
  error 10 and is ignored, as on HP plotters.
- ``OS`` bit 3 ("initialised") is set at power-up and by ``IN;`` and cleared when the status
  byte is output (HP 7470A/7475A interfacing manual, OS instruction). ``constant_os=True`` plays
  a clone whose ``OS`` answer is a constant (24 + error/pen bits: bit 3 never clears).
- Pen-down strokes are recorded in order, in plotter units (:attr:`strokes`), and optionally
  appended as JSON lines to a record file.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agent.emulators.pty import PtyEndpoint, add_link_arguments, endpoint_from_args
from agent.emulators.tasks import EmulatorTasks

MM_PER_UNIT = 0.025
_ESC = 0x1B
_CR = b"\r"
_PARAMETERISED = frozenset(b"@HIMNPS")
_SIMPLE = frozenset(b"BELOKARJ()YZ")
_MAX_ESC_PARAMS = 64


@dataclass(frozen=True)
class Stroke:
    """One pen-down polyline: the pen, then its points in plotter units."""

    pen: int
    points: tuple[tuple[int, int], ...]

    def as_json(self) -> str:
        return json.dumps({"pen": self.pen, "points": [list(p) for p in self.points]})


class _EscState(enum.Enum):
    NONE = 0
    ESC = 1
    DOT = 2
    PARAMS = 3
    AFTER_SIMPLE = 4


class HpglEmulator(EmulatorTasks):
    def __init__(
        self,
        endpoint: PtyEndpoint,
        *,
        buffer_bytes: int = 1024,
        pen_speed_mm_s: float = 380.0,
        identity: str = "7475A",
        hard_clip: tuple[int, int] = (16158, 11040),
        record_path: Path | None = None,
        constant_os: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.constant_os = constant_os
        self.capacity = buffer_bytes
        self.physical_capacity = buffer_bytes
        self.pen_speed_mm_s = pen_speed_mm_s
        self.identity = identity
        self.hard_clip = hard_clip
        self.record_path = record_path
        self.buffer = bytearray()
        self.overflow_errors = 0
        self.bytes_dropped = 0
        self.bytes_received = 0
        # Most bytes ever waiting in the buffer, and how often XOFF was sent.
        self.peak_fill = 0
        self.xoff_count = 0
        self.strokes: list[Stroke] = []
        self.io_error = 0
        self.hpgl_error = 0
        self.status_initialized = True
        self.paused = False
        self.lever_up = False
        self.position = (0, 0)
        self.pen_down = False
        self.pen = 0
        self.absolute = True
        self.down_speed_mm_s = pen_speed_mm_s
        self.instructions_run = 0
        self.hardwire_handshake = False
        self.xoff_threshold = 0
        self.xon_char: int | None = None
        self.xoff_char: int | None = None
        self.xoff_sent = False
        self._stroke: list[tuple[int, int]] = []
        self._overflowing = False
        self._starved = False
        self._esc = _EscState.NONE
        self._esc_letter = 0
        self._esc_params = bytearray()
        self._output_busy_until = 0.0
        self._executing = False
        self._data_event = asyncio.Event()
        self._resume_event = asyncio.Event()
        self._resume_event.set()
        self._clock = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._record: IO[str] | None = None

    # -- lifetime --------------------------------------------------------------------------

    def start(self) -> None:
        if self.record_path is not None:
            self._record = self.record_path.open("a", encoding="utf-8")
        self._launch(**{
            "hpgl-emulator-rx": self._receive_loop(),
            "hpgl-emulator-plot": self._plot_loop(),
        })

    async def stop(self) -> None:
        await self._cancel_tasks()
        self._close_stroke()
        if self._record is not None:
            self._record.close()
            self._record = None

    # -- operator controls (front panel) ----------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._update_resume()

    def set_lever_up(self, up: bool) -> None:
        self.lever_up = up
        self._update_resume()

    def _update_resume(self) -> None:
        if self.paused or self.lever_up:
            self._resume_event.clear()
        else:
            self._resume_event.set()

    def power_cycle(self) -> None:
        """Like a power cut: the buffer and errors are gone, the pen is up, OS says 24."""
        self.buffer.clear()
        self._close_stroke()
        self.io_error = self.hpgl_error = 0
        self.status_initialized = True
        self.pen_down = False
        self.pen = 0
        self.absolute = True
        self.down_speed_mm_s = self.pen_speed_mm_s
        self.xon_char = self.xoff_char = None
        self.xoff_sent = False

    @property
    def bytes_free(self) -> int:
        return max(0, self.capacity - len(self.buffer))

    @property
    def idle(self) -> bool:
        """Nothing left to plot: the ESC.O "buffer empty" bit."""
        return not self.buffer.strip(b" \t\r\n;") and not self._executing

    @property
    def starved(self) -> bool:
        """Waiting for bytes: idle, or stuck on an instruction whose end was lost."""
        return self._starved

    # -- receiving -------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while True:
            data = await self.endpoint.receive()
            self.bytes_received += len(data)
            for byte in data:
                self._receive_byte(byte)
            self._data_event.set()

    def _receive_byte(self, byte: int) -> None:
        state = self._esc
        if state is _EscState.AFTER_SIMPLE:
            self._esc = _EscState.NONE
            if byte == ord(":"):
                return  # tolerated terminator after a parameterless escape
            state = _EscState.NONE
        if state is _EscState.NONE:
            if byte == _ESC:
                self._esc = _EscState.ESC
            else:
                self._store(byte)
        elif state is _EscState.ESC:
            if byte == ord("."):
                self._esc = _EscState.DOT
            else:
                self.io_error = 11
                self._esc = _EscState.NONE
        elif state is _EscState.DOT:
            if byte in _PARAMETERISED:
                self._esc_letter = byte
                self._esc_params.clear()
                self._esc = _EscState.PARAMS
            elif byte in _SIMPLE:
                self._esc = _EscState.AFTER_SIMPLE
                self._device_control(byte, [])
            else:
                self.io_error = 11
                self._esc = _EscState.NONE
        elif byte == ord(":"):
            self._esc = _EscState.NONE
            fields = bytes(self._esc_params).split(b";")
            params = [int(f) if f.strip() else None for f in fields] if self._esc_params else []
            self._device_control(self._esc_letter, params)
        elif (chr(byte).isdigit() or byte == ord(";")) and len(self._esc_params) < _MAX_ESC_PARAMS:
            self._esc_params.append(byte)
        else:
            self.io_error = 12
            self._esc = _EscState.NONE

    def _store(self, byte: int) -> None:
        if len(self.buffer) >= self.capacity:
            if not self._overflowing:
                self.overflow_errors += 1
                self._overflowing = True
            self.bytes_dropped += 1
            self.io_error = 16
            return
        self._overflowing = False
        self.buffer.append(byte)
        self.peak_fill = max(self.peak_fill, len(self.buffer))
        if (
            self.xoff_char is not None
            and not self.xoff_sent
            and self.bytes_free < self.xoff_threshold
        ):
            self.xoff_sent = True
            self.xoff_count += 1
            self.endpoint.send(bytes([self.xoff_char]))

    def _after_take(self) -> None:
        if self.xoff_sent and self.bytes_free >= 2 * self.xoff_threshold:
            self.xoff_sent = False
            if self.xon_char is not None:
                self.endpoint.send(bytes([self.xon_char]))

    def _device_control(self, letter: int, params: list[int | None]) -> None:
        cmd = chr(letter)
        if cmd == "B":
            self._output(str(self.bytes_free))
        elif cmd == "L":
            self._output(str(self.capacity))
        elif cmd == "E":
            if self._output(str(self.io_error)):
                self.io_error = 0
        elif cmd == "O":
            bits = 8 if self.idle else 0
            bits |= 16 if self.paused else 0
            bits |= 32 if self.lever_up else 0
            self._output(str(bits))
        elif cmd == "K":
            self.buffer.clear()
            self._after_take()
        elif cmd == "A":
            self._output(f"{self.identity},1")
        elif cmd == "R":
            self.xon_char = self.xoff_char = None
            self.xoff_sent = False
        elif cmd == "@":
            size = params[0] if params else None
            if size is not None and not self.buffer:
                self.capacity = max(2, min(size, self.physical_capacity))
            mode = params[1] if len(params) > 1 else None
            if mode is not None:
                self.hardwire_handshake = bool(mode & 1)
        elif cmd == "I":
            self.xoff_threshold = (params[0] if params and params[0] is not None else 80)
            chars = [p for p in params[2:] if p]
            self.xon_char = chars[0] if chars else None
        elif cmd == "N":
            chars = [p for p in params[1:] if p]
            self.xoff_char = chars[0] if chars else None
        # M (output mode), H, P, S, J, (, ), Y, Z: accepted, no effect here.

    def _output(self, text: str) -> bool:
        """Answer on the serial line; False (I/O error 10) if still sending the last answer."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < self._output_busy_until:
            self.io_error = 10
            return False
        data = text.encode("ascii") + _CR
        if self.endpoint.bytes_per_s is not None:
            # Less a millisecond: the pty's own pacing is no finer than that, so a host that
            # waited for the whole answer never trips this.
            self._output_busy_until = now + len(data) / self.endpoint.bytes_per_s - 0.001
        self.endpoint.send(data)
        return True

    # -- plotting --------------------------------------------------------------------------

    def _take_instruction(self) -> tuple[str, bytes] | None:
        """Remove the next complete instruction from the buffer, or None if there is none yet."""
        buf = self.buffer
        stripped = 0
        while stripped < len(buf) and buf[stripped] in b" \t\r\n;":
            stripped += 1
        if stripped:
            del buf[:stripped]
        if len(buf) < 2:
            return None
        if not (chr(buf[0]).isalpha() and chr(buf[1]).isalpha()):
            # Not an instruction: drop the byte, as a plotter does (error 1).
            del buf[:1]
            self.hpgl_error = 1
            return ("", b"")
        end = 2
        while end < len(buf) and buf[end] != ord(";") and not chr(buf[end]).isalpha():
            end += 1
        if end >= len(buf) and len(buf) < self.capacity:
            return None  # the terminator has not arrived yet
        mnemonic = bytes(buf[:2]).decode("ascii").upper()
        params = bytes(buf[2:end])
        if end < len(buf) and buf[end] == ord(";"):
            end += 1
        del buf[:end]
        return mnemonic, params

    async def _plot_loop(self) -> None:
        loop = asyncio.get_running_loop()
        self._clock = loop.time()
        while True:
            if not self._resume_event.is_set():
                await self._resume_event.wait()
                self._clock = loop.time()
            taken = self._take_instruction()
            if taken is None:
                self._data_event.clear()
                self._starved = True
                await self._data_event.wait()
                self._starved = False
                # Starved: simulated time restarts now (oversleeping is made up otherwise).
                self._clock = max(self._clock, loop.time())
                continue
            self._after_take()
            mnemonic, params = taken
            if not mnemonic:
                continue
            self._executing = True
            try:
                duration = self._execute(mnemonic, params)
                self.instructions_run += 1
                now = loop.time()
                self._clock += duration
                ahead = self._clock - now
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
            finally:
                self._executing = False

    def _numbers(self, params: bytes) -> list[float] | None:
        text = params.decode("ascii", "replace").strip(" ,\t\r\n")
        if not text:
            return []
        try:
            return [float(t) for t in re.split(r"[,\s]+", text)]
        except ValueError:
            return None

    def _execute(self, mnemonic: str, params: bytes) -> float:
        args = self._numbers(params)
        if args is None:
            self.hpgl_error = 3
            return 0.0
        if mnemonic in ("PU", "PD", "PA", "PR"):
            return self._move(mnemonic, args)
        if mnemonic in ("IN", "DF"):
            self._close_stroke()
            self.pen_down = False
            self.absolute = True
            self.down_speed_mm_s = self.pen_speed_mm_s
            if mnemonic == "IN":
                self.status_initialized = True
                self.hpgl_error = 0
        elif mnemonic == "SP":
            self._close_stroke()
            self.pen_down = False
            self.pen = int(args[0]) if args else 0
        elif mnemonic == "VS":
            if args:
                self.down_speed_mm_s = min(self.pen_speed_mm_s, args[0] * 10)
            else:
                self.down_speed_mm_s = self.pen_speed_mm_s
        elif mnemonic in ("FS", "LT"):
            pass
        elif mnemonic == "OS":
            bits = (1 if self.pen_down else 0) | 16
            bits |= 8 if self.status_initialized else 0
            bits |= 32 if self.hpgl_error else 0
            if self.constant_os:
                bits |= 8  # a clone: the "initialised" bit is always set
            if self._output(str(bits)) and not self.constant_os:
                self.status_initialized = False  # manual: cleared by output of the status byte
        elif mnemonic == "OE":
            if self._output(str(self.hpgl_error)):
                self.hpgl_error = 0
        elif mnemonic == "OI":
            if self.identity:
                self._output(self.identity)
            else:  # a device without OI: "instruction not recognised"
                self.hpgl_error = 1
        elif mnemonic == "OA":
            x, y = self.position
            self._output(f"{x},{y},{1 if self.pen_down else 0}")
        elif mnemonic == "OH":
            self._output(f"0,0,{self.hard_clip[0]},{self.hard_clip[1]}")
        else:
            self.hpgl_error = 1
        return 0.0

    def _move(self, mnemonic: str, args: list[float]) -> float:
        if len(args) % 2:
            self.hpgl_error = 2
            return 0.0
        if mnemonic == "PU":
            if self.pen_down:
                self._close_stroke()
            self.pen_down = False
        elif mnemonic == "PD":
            if not self.pen_down:
                self._stroke = [self.position]
            self.pen_down = True
        elif mnemonic == "PA":
            self.absolute = True
        else:
            self.absolute = False
        duration = 0.0
        speed = self.down_speed_mm_s if self.pen_down else self.pen_speed_mm_s
        for k in range(0, len(args), 2):
            x, y = round(args[k]), round(args[k + 1])
            if not self.absolute:
                x, y = self.position[0] + x, self.position[1] + y
            if abs(x) > 32767 or abs(y) > 32767:
                self.hpgl_error = 3
                continue
            dist_mm = math.dist(self.position, (x, y)) * MM_PER_UNIT
            duration += dist_mm / speed
            self.position = (x, y)
            if self.pen_down:
                self._stroke.append((x, y))
        return duration

    def _close_stroke(self) -> None:
        if not self._stroke:
            return
        stroke = Stroke(self.pen, tuple(self._stroke))
        self._stroke = []
        self.strokes.append(stroke)
        if self._record is not None:
            self._record.write(stroke.as_json() + "\n")
            self._record.flush()


# -- command line -----------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    add_link_arguments(parser, baud=9600, latency_ms=2.0)
    parser.add_argument("--buffer", type=int, default=1024,
                        help="input buffer size in bytes (HP 7475A: about 1 KB)")
    parser.add_argument("--pen-speed", type=float, default=380.0,
                        help="pen speed in mm/s (VS may lower it for pen-down moves)")
    parser.add_argument("--identity", default="7475A",
                        help="what OI; answers ('' for a device without OI)")
    parser.add_argument("--constant-os", action="store_true",
                        help="play a clone whose OS answer never clears bit 3 (initialised)")
    parser.add_argument("--record", type=Path, default=None,
                        help="append each pen-down stroke as a JSON line to this file")


async def run_cli(args: argparse.Namespace) -> None:
    endpoint = endpoint_from_args(args)
    async with endpoint:
        emulator = HpglEmulator(
            endpoint,
            buffer_bytes=args.buffer,
            pen_speed_mm_s=args.pen_speed,
            identity=args.identity,
            record_path=args.record,
            constant_os=args.constant_os,
        )
        print(f"HP-GL emulator on {endpoint.path} ({endpoint.slave_name}), "
              f"{args.baud} baud, {args.buffer}-byte buffer, pen {args.pen_speed} mm/s",
              flush=True)
        try:
            await emulator.serve()
        finally:
            print(f"overflow errors: {emulator.overflow_errors}, strokes: {len(emulator.strokes)}",
                  flush=True)
