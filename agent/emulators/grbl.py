"""A GRBL 1.1 controller on a pseudo-terminal, close enough to the firmware to catch bad hosts.

What it models (gnea/grbl ``doc/markdown/interface.md`` and ``commands.md``):

- The 128-byte serial receive buffer (127 bytes usable). Bytes that arrive while it is full are
  lost, so a host that does not count characters garbles its own program, as on the real thing.
  Realtime bytes (``?``, ``!``, ``~``, 0x18 and every byte above 0x7F) are acted on at once and
  never enter the buffer; note that a ``!`` inside a comment is a feed hold.
- The line pre-parser (comments and spaces removed, upper case, 79 characters, CR and LF both end
  a line) and a G-code parser that answers the same ``error:N`` as GRBL.
- With ``motion=True``, a 15-block planner: motion blocks take time from their length and feed,
  the parser stops reading lines while the planner is full, and ``G4`` (dwell) and other
  buffer-synchronising commands are answered only once every earlier block has finished.
- Feed hold (``Hold:1`` while decelerating, then ``Hold:0``), cycle start (ignored during
  ``Hold:1``), soft reset (``ALARM:3`` when it interrupts motion, G-code locked with ``error:9``
  until ``$X`` or ``$H``), overrides, check mode, homing, jogging, sleep, startup lines.
- Settings and offset writes block the serial port for a few milliseconds, as the EEPROM write
  does: bytes arriving meanwhile are lost (counted in ``eeprom_lost_bytes``).

The emulated build has homing enabled without the power-up homing lock, so it starts Idle.

Lines are read as the firmware reads them (protocol.c's filter in ``grbl_lines``; gcode.c's
words and command numbers and system.c's ``$`` lines via ``agent.reading.grbl``).
``tests/emulators/test_grbl_sim_agrees.py`` compares the answers with real GRBL 1.1h
(grbl-sim) for the attack forms, when such a build is at hand.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from agent.aio import wait_event
from agent.emulators.grbl_codes import (
    REALTIME_BYTES,
    GrblAlarm,
    GrblError,
    GrblState,
    Realtime,
    is_realtime_byte,
)
from agent.emulators.grbl_gcode import (
    ZERO,
    Dwell,
    GcodeError,
    Move,
    MoveKind,
    Offsets,
    ParserState,
    Pause,
    ProbeCheck,
    ProgramEnd,
    Sync,
    Vec,
    canonical_command,
    parse_block,
)
from agent.emulators.grbl_lines import AssembledLine, LineAssembler
from agent.emulators.grbl_motion import PlannedBlock, hold_deceleration_s, plan_block
from agent.emulators.grbl_noise import ReplyNoise
from agent.emulators.grbl_settings import Settings
from agent.emulators.grbl_wire import add_wire_arguments, run_wire_cli
from agent.emulators.pty import PtyEndpoint, add_link_arguments, endpoint_from_args
from agent.reading.grbl import classify_system

BUILD_DATE = "20190825"
HELP = "[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]"
# How long an EEPROM write keeps the serial interrupt off (a setting is ~5 bytes at 3.3 ms).
EEPROM_WRITE_S = 0.02
_EEPROM_WRITERS = frozenset({"G10", "G28.1", "G30.1"})


class GrblEmulator:
    """Serves GRBL 1.1 on ``endpoint`` until cancelled.

    Public state for tests (read it, do not write it):

    - ``executed``: normalised G-code lines the machine accepted and answered ``ok``, in order
      (no empty lines, no ``$`` commands; lines parsed in check mode go to ``checked``).
    - ``system_commands``: normalised ``$`` lines, in order.
    - ``log``: ``("line", raw)`` for every line taken from the receive buffer and
      ``("realtime", name)`` for every realtime byte, in order of receipt.
    - ``overflow_bytes``: bytes lost because the receive buffer was full.
    - ``state``: a :class:`GrblState` (a ``str``: ``"Idle"``, ``"Hold:1"`` ...).
    - ``position``: machine position in mm, as the steppers have it now.
    - ``errors_sent``, ``alarms_sent``: codes sent, in order; ``resets``: soft resets done.
    - ``eeprom_lost_bytes``: bytes that arrived while a settings/offset write held the port.

    Options: ``motion`` simulates planner timing; ``unsupported`` names commands this build
    lacks (``{"M7"}``: no mist coolant), answered ``error:20``; ``record_path`` gets every
    executed line appended and flushed at once, for a test in another process; ``noise`` is
    the chance (seeded by ``seed``) that junk precedes a reply. Junk never reads ``ok`` and
    never starts with ``error:``, ``ALARM:``, ``<`` or ``Grbl``: a host cannot tell a stray
    ``ok`` from a real one, so such noise would defeat even a correct host (see grbl_noise).

    ``executed`` means accepted into the planner: with ``motion=True`` the last blocks of a
    line can still be running, and a soft reset discards them (``ALARM:3``).
    """

    def __init__(
        self,
        endpoint: PtyEndpoint,
        *,
        motion: bool = False,
        rx_buffer: int = 128,
        planner_blocks: int = 15,
        version: str = "1.1h",
        unsupported: frozenset[str] = frozenset(),
        record_path: Path | None = None,
        noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        if rx_buffer < 2 or planner_blocks < 1:
            raise ValueError("rx_buffer must be >= 2 and planner_blocks >= 1")
        self.endpoint = endpoint
        self.motion = motion
        self.rx_buffer = rx_buffer
        self.planner_blocks = planner_blocks
        self.version = version
        self.unsupported = frozenset(canonical_command(name) for name in unsupported)
        self.record_path = record_path
        self.settings = Settings()
        self.startup_lines = ["", ""]
        self.startup_overruns: dict[int, str] = {}
        self.build_info = ""

        self.received = bytearray()
        self.executed: list[str] = []
        self.checked: list[str] = []
        self.system_commands: list[str] = []
        self.log: list[tuple[str, str]] = []
        self.overflow_bytes = 0
        self.eeprom_lost_bytes = 0
        self.state: GrblState = GrblState.IDLE
        self.errors_sent: list[int] = []
        self.alarms_sent: list[int] = []
        self.resets = 0

        self._noise = ReplyNoise(noise, seed)
        self._garble_next_ok = False
        self._rx = bytearray()
        self._rx_ready = asyncio.Event()
        self._assembler = LineAssembler()
        self._parser = ParserState()
        self._offsets = Offsets()
        self._planner: deque[PlannedBlock] = deque()
        self._mpos: Vec = ZERO
        self._last_tick = time.monotonic()
        self._decel_until = 0.0
        self._jog_cancelling = False
        self._eeprom_busy_until = 0.0
        self._feed_ovr = 100
        self._rapid_ovr = 100
        self._spindle_ovr = 100
        self._wco_counter = 0
        self._ovr_counter = 1
        self._changed = asyncio.Event()
        self._motion_wake = asyncio.Event()
        self._task_group: asyncio.TaskGroup | None = None
        self._protocol_task: asyncio.Task[None] | None = None
        self._record: TextIO | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def position(self) -> Vec:
        if self.motion:
            self._advance()
        return self._mpos

    @property
    def banner(self) -> str:
        return f"Grbl {self.version} ['$' for help]"

    async def run(self) -> None:
        """Serve until cancelled; every task it starts ends with it."""
        if self.record_path is not None:
            self._record = self.record_path.open("a", encoding="utf-8")
        try:
            async with asyncio.TaskGroup() as group:
                self._task_group = group
                self._send_banner()
                group.create_task(self._receive_loop(), name="grbl-rx")
                if self.motion:
                    group.create_task(self._motion_loop(), name="grbl-motion")
                self._start_protocol(run_startup=True)
        finally:
            self._task_group = None
            if self._record is not None:
                self._record.close()
                self._record = None

    # -- replies -----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        junk = self._noise.junk_before_reply()
        if junk:
            self.endpoint.send(junk)
        self.endpoint.send(data)

    def _reply(self, text: str) -> None:
        self._send(text.encode("ascii", errors="replace") + b"\r\n")

    def garble_next_ok(self) -> None:
        """Send the next ``ok`` glued behind half a line of noise with no line end, as a glitch
        on the wire would: the host reads one garbled line and that ``ok`` is lost for good."""
        self._garble_next_ok = True

    def _ok(self) -> None:
        if self._garble_next_ok:
            self._garble_next_ok = False
            self.endpoint.send(b"[MSG:Chec")
        self._reply("ok")

    def _error(self, code: GrblError) -> None:
        self.errors_sent.append(int(code))
        self._reply(f"error:{int(code)}")

    def _alarm(self, code: GrblAlarm) -> None:
        self.alarms_sent.append(int(code))
        self._reply(f"ALARM:{int(code)}")

    def _send_banner(self) -> None:
        self._send(f"\r\n{self.banner}\r\n".encode())
        if self.state is GrblState.ALARM:
            self._reply("[MSG:'$H'|'$X' to unlock]")

    # -- receiving ---------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        capacity = self.rx_buffer - 1  # a ring buffer keeps one slot free
        while True:
            try:
                data = await self.endpoint.receive()
            except ConnectionError:
                return
            self.received += data
            for byte in data:
                if time.monotonic() < self._eeprom_busy_until:
                    self.eeprom_lost_bytes += 1
                    continue
                if is_realtime_byte(byte):
                    self._on_realtime(byte)
                    continue
                if len(self._rx) >= capacity:
                    # The firmware drains its buffer far faster than the wire fills it, unless
                    # the parser is blocked: give it that one chance before losing the byte.
                    await asyncio.sleep(0)
                    if len(self._rx) >= capacity:
                        self.overflow_bytes += 1
                        continue
                self._rx.append(byte)
                self._rx_ready.set()
                if byte in (0x0A, 0x0D):
                    # Later bytes of this chunk are still on the wire while the firmware takes
                    # the line: let the parser see it first (an EEPROM write it starts then
                    # loses what follows, as on the real controller).
                    await asyncio.sleep(0)

    def _next_line(self) -> AssembledLine | None:
        while self._rx:
            byte = self._rx[0]
            del self._rx[0]
            line = self._assembler.feed(byte)
            if line is not None:
                return line
        return None

    # -- realtime commands -------------------------------------------------------------------

    def _on_realtime(self, byte: int) -> None:
        command = REALTIME_BYTES.get(byte)
        if command is None:
            self.log.append(("realtime", f"ignored:0x{byte:02X}"))
            return
        self.log.append(("realtime", command.value))
        if command is Realtime.SOFT_RESET:
            self._soft_reset()
            return
        if self.motion:
            self._advance()
        if command is Realtime.STATUS_REPORT:
            if self.state is not GrblState.HOME:
                self._reply(self._status_report())
        elif command is Realtime.FEED_HOLD:
            self._feed_hold()
        elif command is Realtime.CYCLE_START:
            self._cycle_start()
        elif command is Realtime.SAFETY_DOOR:
            self._safety_door()
        elif command is Realtime.JOG_CANCEL:
            if self.state is GrblState.JOG and not self._jog_cancelling:
                self._begin_jog_cancel()
        else:
            self._override(command)
        self._notify()

    def _feed_hold(self) -> None:
        if self.state is GrblState.JOG:
            if not self._jog_cancelling:
                self._begin_jog_cancel()
        elif self.state is GrblState.RUN:
            self._begin_deceleration(GrblState.HOLD_DECELERATING)
        elif self.state is GrblState.IDLE:
            self.state = GrblState.HOLD_COMPLETE

    def _cycle_start(self) -> None:
        # Resumes only a completed hold (Hold:0, Door:0); ignored while still decelerating.
        if self.state in (GrblState.HOLD_COMPLETE, GrblState.DOOR_CLOSED):
            self.state = GrblState.RUN if self._planner else GrblState.IDLE
            self._motion_wake.set()

    def _safety_door(self) -> None:
        if self.state is GrblState.JOG:
            self._begin_jog_cancel()
        elif self.state in (GrblState.RUN, GrblState.HOLD_DECELERATING):
            self._begin_deceleration(GrblState.DOOR_HOLDING)
        elif self.state in (GrblState.IDLE, GrblState.HOLD_COMPLETE):
            self.state = GrblState.DOOR_CLOSED

    def _begin_deceleration(self, state: GrblState) -> None:
        head = self._planner[0] if self._planner else None
        if head is None:
            self.state = (
                GrblState.DOOR_CLOSED
                if state is GrblState.DOOR_HOLDING
                else GrblState.HOLD_COMPLETE
            )
            return
        if self.state not in (GrblState.HOLD_DECELERATING, GrblState.DOOR_HOLDING):
            accel = min(self.settings.accelerations_mm_s2()[:2])
            rate = head.rate_mm_min * self._speed_factor(head)
            self._decel_until = time.monotonic() + hold_deceleration_s(rate, accel)
        self.state = state
        self._motion_wake.set()

    def _begin_jog_cancel(self) -> None:
        self._jog_cancelling = True
        head = self._planner[0] if self._planner else None
        rate = head.rate_mm_min if head else 0.0
        accel = min(self.settings.accelerations_mm_s2()[:2])
        self._decel_until = time.monotonic() + hold_deceleration_s(rate, accel)
        self._motion_wake.set()

    def _override(self, command: Realtime) -> None:
        before = (self._feed_ovr, self._rapid_ovr, self._spindle_ovr, self._parser)
        steps = {
            Realtime.FEED_OVR_COARSE_PLUS: 10,
            Realtime.FEED_OVR_COARSE_MINUS: -10,
            Realtime.FEED_OVR_FINE_PLUS: 1,
            Realtime.FEED_OVR_FINE_MINUS: -1,
        }
        spindle_steps = {
            Realtime.SPINDLE_OVR_COARSE_PLUS: 10,
            Realtime.SPINDLE_OVR_COARSE_MINUS: -10,
            Realtime.SPINDLE_OVR_FINE_PLUS: 1,
            Realtime.SPINDLE_OVR_FINE_MINUS: -1,
        }
        if command is Realtime.FEED_OVR_RESET:
            self._feed_ovr = 100
        elif command in steps:
            self._feed_ovr = min(200, max(10, self._feed_ovr + steps[command]))
        elif command is Realtime.RAPID_OVR_RESET:
            self._rapid_ovr = 100
        elif command is Realtime.RAPID_OVR_MEDIUM:
            self._rapid_ovr = 50
        elif command is Realtime.RAPID_OVR_LOW:
            self._rapid_ovr = 25
        elif command is Realtime.SPINDLE_OVR_RESET:
            self._spindle_ovr = 100
        elif command in spindle_steps:
            self._spindle_ovr = min(200, max(10, self._spindle_ovr + spindle_steps[command]))
        elif command in (
            Realtime.COOLANT_FLOOD_TOGGLE,
            Realtime.COOLANT_MIST_TOGGLE,
        ) and self.state in (
            GrblState.IDLE,
            GrblState.RUN,
            GrblState.HOLD_COMPLETE,
            GrblState.HOLD_DECELERATING,
        ):
            if command is Realtime.COOLANT_FLOOD_TOGGLE:
                self._parser = replace(self._parser, flood=not self._parser.flood)
            elif "M7" not in self.unsupported:
                self._parser = replace(self._parser, mist=not self._parser.mist)
        if (self._feed_ovr, self._rapid_ovr, self._spindle_ovr, self._parser) != before:
            self._ovr_counter = 0  # changed overrides show in the next report
            self._motion_wake.set()

    def _soft_reset(self) -> None:
        if self.motion:
            self._advance()
        prior = self.state
        alarm: GrblAlarm | None = None
        if prior is GrblState.HOME:
            alarm = GrblAlarm.HOMING_FAIL_RESET
        elif prior.is_moving:
            alarm = GrblAlarm.ABORT_CYCLE
        if self._protocol_task is not None:
            self._protocol_task.cancel()
            self._protocol_task = None
        self._rx.clear()
        self._assembler.reset()
        self._planner.clear()
        self._jog_cancelling = False
        if alarm is not None:
            self._alarm(alarm)
        self.resets += 1
        self._parser = ParserState(position=self._mpos)
        self._offsets = self._offsets.after_reset()
        self._feed_ovr = self._rapid_ovr = self._spindle_ovr = 100
        self._wco_counter, self._ovr_counter = 0, 1
        locked = alarm is not None or prior in (GrblState.ALARM, GrblState.SLEEP)
        self.state = GrblState.ALARM if locked else GrblState.IDLE
        self._send_banner()
        self._notify()
        self._motion_wake.set()
        self._start_protocol(run_startup=not locked)

    # -- motion ------------------------------------------------------------------------------

    def _speed_factor(self, block: PlannedBlock) -> float:
        if block.move.kind is MoveKind.RAPID:
            return self._rapid_ovr / 100.0
        if block.move.kind is MoveKind.JOG:
            return 1.0
        return self._feed_ovr / 100.0

    def _advance(self) -> float | None:
        """Bring the steppers up to now; return how long until the next thing happens."""
        now = time.monotonic()
        dt = now - self._last_tick
        self._last_tick = now
        changed = False
        if self.state.is_moving:
            while dt > 0 and self._planner:
                head = self._planner[0]
                factor = self._speed_factor(head)
                need = head.remaining_s / factor
                if dt >= need:
                    dt -= need
                    self._planner.popleft()
                    self._mpos = head.move.end
                    changed = True
                else:
                    head.elapsed_s += dt * factor
                    self._mpos = head.position()
                    dt = 0.0
        decelerating = self.state in (GrblState.HOLD_DECELERATING, GrblState.DOOR_HOLDING)
        if decelerating and (now >= self._decel_until or not self._planner):
            self.state = (
                GrblState.HOLD_COMPLETE
                if self.state is GrblState.HOLD_DECELERATING
                else GrblState.DOOR_CLOSED
            )
            changed = True
        elif self.state is GrblState.JOG and (
            not self._planner or (self._jog_cancelling and now >= self._decel_until)
        ):
            self._planner.clear()
            self._jog_cancelling = False
            self._parser = replace(self._parser, position=self._mpos)
            self.state = GrblState.IDLE
            changed = True
        elif self.state is GrblState.RUN and not self._planner:
            self.state = GrblState.IDLE
            changed = True
        if changed:
            self._notify()
        delays: list[float] = []
        if self.state.is_moving and self._planner:
            delays.append(self._planner[0].remaining_s / self._speed_factor(self._planner[0]))
        if self.state in (GrblState.HOLD_DECELERATING, GrblState.DOOR_HOLDING) or (
            self._jog_cancelling
        ):
            delays.append(max(0.0, self._decel_until - now))
        return min(delays) if delays else None

    async def _motion_loop(self) -> None:
        while True:
            delay = self._advance()
            self._motion_wake.clear()
            if delay is None:
                await self._motion_wake.wait()
                continue
            await wait_event(self._motion_wake, delay + 0.0005)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def _synchronize(self) -> None:
        """GRBL's buffer synchronize: wait for every planned block to finish (and any hold)."""
        if not self.motion:
            await self._until(lambda: not self.state.is_suspended)
            return
        await self._until(
            lambda: not self._planner and not self.state.is_moving and not self.state.is_suspended
        )

    async def _queue_move(self, move: Move) -> None:
        if move.length_mm <= 0:
            return  # GRBL drops zero-length blocks
        if not self.motion:
            self._mpos = move.end
            return
        await self._until(lambda: len(self._planner) < self.planner_blocks)
        self._advance()
        self._planner.append(plan_block(move, self.settings.max_rates_mm_min()))
        if self.state is GrblState.IDLE:
            self.state = GrblState.JOG if move.kind is MoveKind.JOG else GrblState.RUN
            self._notify()
        self._motion_wake.set()

    # -- the protocol loop: one line at a time ----------------------------------------------

    def _start_protocol(self, *, run_startup: bool) -> None:
        assert self._task_group is not None
        self._protocol_task = self._task_group.create_task(
            self._protocol_loop(run_startup=run_startup), name="grbl-protocol"
        )

    async def _protocol_loop(self, *, run_startup: bool) -> None:
        if run_startup:
            await self._run_startup_lines()
        while True:
            await self._until(lambda: not self.state.is_suspended)
            line = self._next_line()
            if line is None:
                self._rx_ready.clear()
                await self._rx_ready.wait()
                continue
            await self._execute_line(line)
            if asyncio.current_task() is not self._protocol_task:
                return  # the line reset the controller ($C off, $RST): a new loop took over

    async def _run_startup_lines(self) -> None:
        for text in self.startup_lines:
            if not text:
                continue
            code = await self._run_gcode(text)
            self._reply(f">{text}:ok" if code is None else f">{text}:error:{int(code)}")

    async def _execute_line(self, line: AssembledLine) -> None:
        self.log.append(("line", line.raw))
        if line.overflow:
            self._error(GrblError.OVERFLOW)
            return
        text = line.text
        if not text:
            self._ok()
            return
        if text.startswith("$"):
            self.system_commands.append(text)
            await self._system_command(text)
            return
        if self.state in (GrblState.ALARM, GrblState.JOG):
            self._error(GrblError.SYSTEM_GC_LOCK)
            return
        code = await self._run_gcode(text)
        if code is None:
            self._ok()
        else:
            self._error(code)

    async def _run_gcode(self, text: str) -> GrblError | None:
        try:
            result = parse_block(
                text,
                self._parser,
                self._offsets,
                unsupported=self.unsupported,
                laser_mode=self.settings.laser_mode,
            )
        except GcodeError as exc:
            return exc.code
        self._parser = result.state
        self._offsets = result.offsets
        if result.work_offset_changed:
            self._wco_counter = 0
        if self.state is GrblState.CHECK:
            self.checked.append(text)
            return None
        for action in result.actions:
            if isinstance(action, Sync):
                await self._synchronize()
            elif isinstance(action, Move):
                await self._queue_move(action)
            elif isinstance(action, Dwell):
                await self._synchronize()
                if self.motion:
                    await asyncio.sleep(action.seconds)
            elif isinstance(action, Pause):
                await self._synchronize()
                self.state = GrblState.HOLD_COMPLETE
                self._notify()
                await self._until(lambda: not self.state.is_suspended)
            elif isinstance(action, ProgramEnd):
                self._reply("[MSG:Pgm End]")
            elif isinstance(action, ProbeCheck):
                self._offsets = replace(self._offsets, probe=self._mpos, probe_succeeded=False)
                if action.fails_without_contact:
                    self._alarm(GrblAlarm.PROBE_FAIL_CONTACT)
                    self.state = GrblState.ALARM
                    self._notify()
                self._reply(f"[PRB:{_fmt(self._mpos)}:0]")
        if _EEPROM_WRITERS.intersection(result.commands):
            await self._eeprom_write()
        self.executed.append(text)
        if self._record is not None:
            self._record.write(text + "\n")
            self._record.flush()
        return None

    async def _eeprom_write(self) -> None:
        self._eeprom_busy_until = time.monotonic() + EEPROM_WRITE_S
        await asyncio.sleep(EEPROM_WRITE_S)

    # -- $ system commands -------------------------------------------------------------------

    async def _system_command(self, text: str) -> None:
        code = await self._system_command_inner(text)
        if code is not None:
            self._error(code)

    async def _system_command_inner(self, text: str) -> GrblError | None:
        """system.c ``system_execute_line``, checks in its order.

        The line is classified by :func:`agent.reading.grbl.classify_system`, which
        reads numbers with ``read_float``: ``$+10=1``, ``$10.0=1`` and ``$.5=1`` write
        settings 10, 10 and 0 (the uint8 of the number), ``$N+0=`` stores startup line 0.
        """
        command = classify_system(text)
        second = text[1:2]
        state = self.state
        if second == "":
            self._reply(HELP)
            self._ok()
            return None
        if second == "J":
            # Only IDLE or JOG, then '=' (system.c checks the state first).
            if state not in (GrblState.IDLE, GrblState.JOG):
                return GrblError.IDLE_ERROR
            if command.kind != "$J=":
                return GrblError.INVALID_STATEMENT
            return await self._jog(command.body)
        if second in "$GCX":
            if command.kind is None:
                return GrblError.INVALID_STATEMENT
            return await self._simple_system_command(second)
        # Everything else only in IDLE or ALARM ("EEPROM, homing").
        if state not in (GrblState.IDLE, GrblState.ALARM):
            return GrblError.IDLE_ERROR
        if second == "N" and len(text) > 2 and state is not GrblState.IDLE:
            return GrblError.IDLE_ERROR  # storing a startup line: IDLE only, checked first
        if command.kind is None:
            return GrblError(command.error_code)
        kind = command.kind
        if kind == "$#":
            self._report_parameters()
        elif kind == "$H":
            if not self.settings.homing_enabled:
                return GrblError.SETTING_DISABLED
            if command.body:
                # $HX needs HOMING_SINGLE_AXIS_COMMANDS, off in a default build. (The firmware
                # has already set STATE_HOMING by then and leaves it; not modelled.)
                return GrblError.INVALID_STATEMENT
            return await self._home()
        elif kind == "$SLP":
            self._ok()
            self.state = GrblState.SLEEP
            self._reply("[MSG:Sleeping]")
            self._notify()
            return None
        elif kind == "$I":
            self._reply(f"[VER:{self.version}.{BUILD_DATE}:{self.build_info}]")
            options = "V" + ("" if "M7" in self.unsupported else "M")
            self._reply(f"[OPT:{options},{self.planner_blocks},{self.rx_buffer}]")
        elif kind == "$I=":
            self.build_info = command.body
            await self._eeprom_write()
        elif kind == "$RST=":
            if command.body in ("$", "*"):
                self.settings.restore_defaults()
            if command.body in ("#", "*"):
                self._offsets = Offsets()
            if command.body == "*":
                self.startup_lines = ["", ""]
                self.build_info = ""
            self._reply("[MSG:Restoring defaults]")
            self._ok()
            self._soft_reset()
            return None
        elif kind == "$N":
            for index, line in enumerate(self.startup_lines):
                self._reply(f"$N{index}={line}")
        elif kind == "$Nx=":
            assert command.number is not None
            return await self._store_startup_line(command.number, command.body)
        else:
            assert kind == "$x="
            assert command.number is not None
            assert command.value is not None
            return await self._store_setting(command.number, command.value)
        self._ok()
        return None

    async def _simple_system_command(self, letter: str) -> GrblError | None:
        if letter == "$":
            if self.state in (GrblState.RUN, GrblState.HOLD_COMPLETE, GrblState.HOLD_DECELERATING):
                return GrblError.IDLE_ERROR
            for line in self.settings.report_lines():
                self._reply(line)
        elif letter == "G":
            self._reply(f"[{self._parser.modes_report()}]")
        elif letter == "C":
            if self.state is GrblState.CHECK:
                self._reply("[MSG:Disabled]")
                self._ok()
                self._soft_reset()  # ends this task: nothing may follow
                return None
            if self.state is not GrblState.IDLE:
                return GrblError.IDLE_ERROR
            self.state = GrblState.CHECK
            self._reply("[MSG:Enabled]")
        elif letter == "X" and self.state is GrblState.ALARM:
            self.state = GrblState.IDLE
            self._reply("[MSG:Caution: Unlocked]")
            self._notify()
        self._ok()
        return None

    async def _home(self) -> GrblError | None:
        if not self.settings.homing_enabled:
            return GrblError.SETTING_DISABLED
        self.state = GrblState.HOME
        self._notify()
        await asyncio.sleep(0.3 if self.motion else 0.05)
        self._mpos = ZERO
        self._parser = replace(self._parser, position=ZERO)
        self.state = GrblState.IDLE
        self._notify()
        await self._run_startup_lines()
        self._ok()
        return None

    async def _jog(self, body: str) -> GrblError | None:
        """``$J=``: gc_execute_line in jog mode on what follows ``=``."""
        try:
            result = parse_block(
                body, self._parser, self._offsets, unsupported=self.unsupported, jog=True
            )
        except GcodeError as exc:
            return exc.code
        self._parser = result.state
        for action in result.actions:
            if isinstance(action, Move):
                await self._queue_move(action)
        self._ok()
        return None

    async def _store_startup_line(self, index: int, body: str) -> GrblError | None:
        """``$Nx=line``: system.c runs the block through gc_execute_line first, so a startup
        line is *executed* when stored (``$N0=G0X500`` moves at once), then stores it; it runs
        again after every reset and homing (``system_execute_startup``). The firmware does not
        bound ``x``: ``$N2=`` and beyond write past the startup block (over the build info);
        kept in ``startup_overruns`` here and never run."""
        if body:
            code = await self._run_gcode(body)
            if code is not None:
                return code
        if index < len(self.startup_lines):
            self.startup_lines[index] = body
        else:
            self.startup_overruns[index] = body
        await self._eeprom_write()
        self._ok()
        return None

    async def _store_setting(self, key: int, value: float) -> GrblError | None:
        """``$x=value`` (settings.c ``settings_store_global_setting``)."""
        code = self.settings.store(key, value)
        if code is not None:
            return code
        await self._eeprom_write()
        self._ok()
        return None

    def _report_parameters(self) -> None:
        for index, coords in enumerate(self._offsets.coord_systems):
            self._reply(f"[G{54 + index}:{_fmt(coords)}]")
        self._reply(f"[G28:{_fmt(self._offsets.g28)}]")
        self._reply(f"[G30:{_fmt(self._offsets.g30)}]")
        self._reply(f"[G92:{_fmt(self._offsets.g92)}]")
        self._reply(f"[TLO:{self._offsets.tool_length:.3f}]")
        self._reply(f"[PRB:{_fmt(self._offsets.probe)}:{int(self._offsets.probe_succeeded)}]")

    # -- status report -----------------------------------------------------------------------

    def _status_report(self) -> str:
        position = self._mpos
        wco = self._parser.work_offset(self._offsets)
        mask = int(self.settings[10])
        busy = self.state not in (GrblState.IDLE, GrblState.ALARM, GrblState.CHECK, GrblState.SLEEP)
        fields = [self.state.value]
        if mask & 1:
            fields.append(f"MPos:{_fmt(position)}")
        else:
            work = (position[0] - wco[0], position[1] - wco[1], position[2] - wco[2])
            fields.append(f"WPos:{_fmt(work)}")
        if mask & 2:
            free_blocks = self.planner_blocks - len(self._planner)
            fields.append(f"Bf:{free_blocks},{self.rx_buffer - len(self._rx)}")
        feed = 0.0
        if self.state.is_moving and self._planner:
            head = self._planner[0]
            feed = head.rate_mm_min * self._speed_factor(head)
        speed = 0.0
        if self._parser.spindle != "M5":
            speed = self._parser.spindle_speed * self._spindle_ovr / 100.0
        fields.append(f"FS:{feed:.0f},{speed:.0f}")
        if self._wco_counter > 0:
            self._wco_counter -= 1
        else:
            self._wco_counter = (30 if busy else 10) - 1
            if self._ovr_counter == 0:
                self._ovr_counter = 1  # overrides wait for the next report
            fields.append(f"WCO:{_fmt(wco)}")
        if self._ovr_counter > 0:
            self._ovr_counter -= 1
        else:
            self._ovr_counter = (20 if busy else 10) - 1
            fields.append(f"Ov:{self._feed_ovr},{self._rapid_ovr},{self._spindle_ovr}")
            accessories = {"M3": "S", "M4": "C"}.get(self._parser.spindle, "")
            accessories += "F" if self._parser.flood else ""
            accessories += "M" if self._parser.mist else ""
            if accessories:
                fields.append(f"A:{accessories}")
        return "<" + "|".join(fields) + ">"


def _fmt(vec: Vec) -> str:
    return ",".join(f"{v:.3f}" for v in vec)


# -- command line: `station-agent emulate grbl` ------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    add_link_arguments(parser, baud=115_200, latency_ms=0.0)
    parser.add_argument("--motion", action="store_true", help="simulate motion timing")
    parser.add_argument("--record", default=None, help="append every executed line here")
    parser.add_argument(
        "--unsupported", default="", help="comma-separated commands this build lacks, e.g. M7"
    )
    parser.add_argument("--noise", type=float, default=0.0, help="junk-line probability 0..1")
    parser.add_argument("--seed", type=int, default=0, help="seed for the noise")
    add_wire_arguments(parser)


async def run_cli(args: argparse.Namespace) -> None:
    if args.wire_model:
        if args.motion or args.noise or args.unsupported or args.latency_ms:
            raise SystemExit("--wire-model takes none of --motion, --noise, --unsupported, "
                             "--latency-ms: its timing is the wire's and the ok delay's")
        await run_wire_cli(args)
        return
    unsupported = frozenset(
        name.strip().upper() for name in str(args.unsupported).split(",") if name.strip()
    )
    async with endpoint_from_args(args) as endpoint:
        emulator = GrblEmulator(
            endpoint,
            motion=bool(args.motion),
            unsupported=unsupported,
            record_path=Path(args.record) if args.record else None,
            noise=float(args.noise),
            seed=int(args.seed),
        )
        print(f"GRBL emulator on {args.link} -> {endpoint.slave_name}", flush=True)
        await emulator.run()
