"""A small fake GRBL 1.1 for driving :class:`GrblStream` pass by pass, written from grbl's own
rules (gnea/grbl ``grbl/serial.c``, ``protocol.c``, ``report.c``; ``doc/markdown/interface.md``),
not from the agent's stream:

- serial.c: the receive ISR picks the realtime bytes ``?`` ``!`` ``~`` and 0x18 out of the stream
  and sets an execution flag; every other byte goes into a 128-byte ring that holds 127 (one
  slot is kept free); a byte arriving when it is full is lost.
- protocol.c ``protocol_exec_rt_system``: a pass handles, in order, a reset, the status report
  (so a report asked for before ``!`` and handled in the same pass still shows the old state:
  the report lags the realtime byte), the feed hold, then the cycle start. A cycle start is
  taken only once the hold is complete (``Hold:0``); during ``Hold:1`` it is ignored.
- protocol.c main loop: one line is taken from the ring per pass, and only when the planner has
  room and the machine is not held (GRBL parses no lines in hold); every line gets exactly one
  ``ok`` or ``error:N``; an empty line gets ``ok``. ``G4`` waits for the planner to empty
  (``protocol_buffer_synchronize``) before it is answered.
- A soft reset while moving (Run, Hold:1) raises ``ALARM:3`` and locks the machine; at rest it
  does not. Either way the ring and planner are emptied and the banner is printed.
- Several ``?`` before one pass give one report (one flag).
"""

from __future__ import annotations

from collections import deque

RX_BUFFER = 128
BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"


class FakeGrbl:
    def __init__(self, *, passes_per_block: int = 2, decel_passes: int = 3,
                 planner_blocks: int = 15) -> None:
        self.passes_per_block = passes_per_block
        self.decel_passes = decel_passes
        self.planner_blocks = planner_blocks
        self.rx = bytearray()
        self.out = bytearray()
        self.planner: deque[int] = deque()  # passes left per block
        self.state = "Idle"
        self.hold_sub: int | None = None
        self.decel_left = 0
        self.status_flag = self.hold_flag = self.start_flag = self.reset_flag = False
        self.overflowed = 0
        self.max_rx = 0
        self.lines: list[str] = []  # every line parsed, in order
        self.errors: dict[str, int] = {}  # line -> error code to answer it with
        self.ignored_starts = 0
        self.resets = 0
        self.alarm3 = 0

    # -- serial ISR ------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        for b in data:
            if b == 0x3F:
                self.status_flag = True
            elif b == 0x21:
                self.hold_flag = True
            elif b == 0x7E:
                self.start_flag = True
            elif b == 0x18:
                self.reset_flag = True
            elif len(self.rx) < RX_BUFFER - 1:
                self.rx.append(b)
            else:
                self.overflowed += 1
        self.max_rx = max(self.max_rx, len(self.rx))

    def take(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data

    # -- one pass of the main loop ---------------------------------------------------------

    def step(self) -> None:
        if self.reset_flag:
            self._reset()
            return
        if self.status_flag:
            self.status_flag = False
            self.out += self.report().encode() + b"\r\n"
        if self.hold_flag:
            self.hold_flag = False
            if self.state in ("Run", "Idle"):
                moving = self.state == "Run"
                self.state, self.hold_sub = "Hold", 1 if moving else 0
                self.decel_left = self.decel_passes if moving else 0
        if self.start_flag:
            self.start_flag = False
            if self.state == "Hold" and self.hold_sub == 0:
                self.state, self.hold_sub = ("Run" if self.planner else "Idle"), None
            elif self.state == "Hold":
                self.ignored_starts += 1
        self._motion()
        self._parse_one()

    def report(self) -> str:
        state = self.state if self.hold_sub is None else f"{self.state}:{self.hold_sub}"
        free_blocks = self.planner_blocks - len(self.planner)
        return (f"<{state}|MPos:0.000,0.000,0.000|Bf:{free_blocks},{RX_BUFFER - 1 - len(self.rx)}"
                "|FS:0,0>")

    def _motion(self) -> None:
        if self.state == "Hold" and self.hold_sub == 1:
            self.decel_left -= 1
            if self.decel_left <= 0:
                self.hold_sub = 0
            return
        if self.state != "Run":
            return
        self.planner[0] -= 1
        if self.planner[0] <= 0:
            self.planner.popleft()
        if not self.planner:
            self.state = "Idle"

    def _parse_one(self) -> None:
        if self.state in ("Hold", "Alarm") or len(self.planner) >= self.planner_blocks:
            return
        nl = self.rx.find(b"\n")
        if nl < 0:
            return
        line = self.rx[:nl].decode("ascii").strip().upper()
        if line.startswith("G4") and self.planner:
            return  # protocol_buffer_synchronize: answered once motion has finished
        del self.rx[: nl + 1]
        self.lines.append(line)
        if line in self.errors:
            self.out += f"error:{self.errors[line]}\r\n".encode()
            return
        if line and not line.startswith(("$", "G4")):
            self.planner.append(self.passes_per_block)
            self.state = "Run"
        self.out += b"ok\r\n"

    def power_cycle(self) -> None:
        """The board restarted under the host (brown-out, DTR): everything gone, banner."""
        self.rx.clear()
        self.planner.clear()
        self.state, self.hold_sub = "Idle", None
        self.status_flag = self.hold_flag = self.start_flag = self.reset_flag = False
        self.out += BANNER

    def hard_limit(self) -> None:
        """A limit switch: motion killed at once, ALARM:1 (protocol.c / limits.c)."""
        self.rx.clear()
        self.planner.clear()
        self.state, self.hold_sub = "Alarm", None
        self.out += b"ALARM:1\r\n"

    def _reset(self) -> None:
        self.reset_flag = self.status_flag = self.hold_flag = self.start_flag = False
        moving = self.state == "Run" or (self.state == "Hold" and self.hold_sub == 1)
        self.rx.clear()
        self.planner.clear()
        self.hold_sub = None
        self.resets += 1
        if moving:
            self.alarm3 += 1
            self.out += b"ALARM:3\r\n"
        self.state = "Alarm" if moving or self.state == "Alarm" else "Idle"
        self.out += BANNER
        if self.state == "Alarm":
            self.out += b"[MSG:'$H'|'$X' to unlock]\r\n"
