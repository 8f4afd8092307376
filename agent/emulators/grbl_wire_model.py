"""GRBL 1.1 at the wire's limit, sans I/O: bytes and time in, replies and their times out.

A model of what a host sees of a GRBL 1.1 controller on a real UART when the machine itself
is never the bottleneck (motion is not simulated: every line is answered after a fixed delay).
It exists to measure a host, so every rule comes from the firmware or the wire, not from any
host's assumptions:

- **The wire** (a UART at ``baud``, 8N1): a byte takes 10 bit times in each direction, and
  bytes cross one after another. Host bytes are queued on the wire in the order written and
  reach the controller back to back; replies leave in the order written, each byte paced too.
  A reply reaches the host when its last byte has crossed (a host cannot act on half a line).
- **The receive buffer** (serial.c): a 128-byte ring, 127 bytes usable (one slot stays free).
  A byte that arrives while it is full is lost (``serial.c``'s RX interrupt simply drops it;
  counted in ``lost_bytes``). A line's bytes count against the ring until its ``ok`` is
  written: interface.md's character-counting contract ("the host keeps a tally of the
  characters sent and subtracts each line's when its ``ok`` arrives") is taken as the
  firmware's own accounting, so a host that counts more than 127 bytes in flight loses bytes
  here as it would on a controller whose main loop is busy.
- **Realtime bytes** (serial.c's RX interrupt picks out ``?``, ``!``, ``~``, 0x18 and every byte
  above 0x7F before the ring): ``?`` is answered at once, the report queued on the return wire
  the moment the ``?`` arrives; ``!`` holds (no ``ok`` is written while held, as protocol.c
  parses no line in a hold), ``~`` resumes, 0x18 empties the ring and answers with the banner.
- **Answers** (protocol.c ``protocol_main_loop`` then ``report_status_message``): one ``ok\\r\\n``
  per line, written on its own ``ok_delay_s`` after the line's newline is parsed (the newline
  is parsed as it arrives: the main loop reads the ring faster than the wire fills it). Lines
  are pipelined: a fast machine is modelled, so the wire is the only limit. CR and LF both end
  a line (so CRLF gets two answers); a line over 79 characters is answered ``error:11``
  (``grbl_lines``). ``$I`` answers its ``[VER:]`` and ``[OPT:]`` lines before the ``ok``.

**Idle-wire counter.** While a host streams (a *run*: line bytes with gaps shorter than
``run_gap_s``), every moment the host-to-controller wire is idle is put down to one cause,
judged with the last line's size ``L`` against the 127 usable bytes:

- ``host_late``: by the character count the host should keep, it had room for another line and
  wrote nothing;
- ``rx_full``: the host's count had room but the ring did not (a host counting lost bytes, or
  counting fewer bytes than it sent; zero for a host that counts as interface.md says);
- ``emulator_late``: the count was full and an answer was due but not yet handed over (the
  emulator process woke late: not the host's fault);
- ``return_wire_busy``: the count was full and the awaited ``ok`` was on the return wire (for
  instance behind a status report);
- ``window_full``: the count was full and the awaited ``ok`` was still in the firmware's delay.

``busy_s / elapsed_s`` of a run is its share of the link.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.emulators.grbl_codes import REALTIME_BYTES, Realtime, is_realtime_byte
from agent.emulators.grbl_lines import LineAssembler

# Idle episodes are counted by length: up to each bound (seconds), and beyond the last.
_EPISODE_BUCKETS = ("<0.1ms", "<1ms", "<5ms", "<20ms", ">=20ms")
_EPISODE_BOUNDS = (0.0001, 0.001, 0.005, 0.02)
_LONGEST_KEPT = 20
CAUSES = ("window_full", "host_late", "rx_full", "return_wire_busy", "emulator_late")
VERSION = "1.1h"
BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
# An answer handed over this much after its time counts as late (a timer's normal jitter).
LATE_TOLERANCE_S = 0.0002


@dataclass
class Run:
    """One stretch of streaming: line bytes with no gap longer than the run gap."""

    start: float
    end: float
    busy_s: float = 0.0
    lines: int = 0
    line_bytes: int = 0
    idle_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0.0))

    def as_dict(self) -> dict[str, Any]:
        elapsed = self.end - self.start
        return {
            "start": round(self.start, 6),
            "elapsed_s": round(elapsed, 6),
            "busy_s": round(self.busy_s, 6),
            "link_share": round(self.busy_s / elapsed, 5) if elapsed > 0 else None,
            "lines": self.lines,
            "line_bytes": self.line_bytes,
            "lines_per_s": round(self.lines / elapsed, 2) if elapsed > 0 else None,
            "idle_s": {k: round(v, 6) for k, v in self.idle_s.items()},
        }


@dataclass
class _Answer:
    due: float
    size: int  # the line's bytes in the ring, freed when the answer is written
    replies: list[bytes]


class GrblWireModel:
    """Feed host bytes with :meth:`feed`; hand over what :meth:`advance` returns at the time
    :meth:`next_deadline` names. Times are seconds on any monotonic clock."""

    def __init__(
        self,
        *,
        baud: int = 115_200,
        rx_buffer: int = 128,
        ok_delay_s: float = 0.002,
        run_gap_s: float = 0.5,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.byte_s = 10.0 / baud
        self.capacity = rx_buffer - 1
        self.rx_buffer = rx_buffer
        self.ok_delay_s = ok_delay_s
        self.run_gap_s = run_gap_s
        self.on_line = on_line
        self.lost_bytes = 0
        self.lines: list[str] = []
        self.system_commands: list[str] = []
        self.runs: list[Run] = []
        self.held = False
        # Host -> controller wire: bytes not yet arrived; the first arrives at _rx_next_at.
        self._rx_wire = bytearray()
        self._rx_next_at = 0.0
        self._rx_last_at = 0.0
        # Ring: bytes of the line being received, and of lines waiting for their answer.
        self._ring_used = 0
        self._line_size = 0
        self._assembler = LineAssembler()
        self._answers: deque[_Answer] = deque()
        # Controller -> host wire: (time written, reply, is an ok) in order; the head is being
        # sent from _tx_start_at.
        self._tx: deque[tuple[float, bytes, bool]] = deque()
        self._tx_free_at = 0.0
        self._tx_oks = 0
        # Handed over late: (time it was due, line size it frees in the host's count).
        self._overdue: list[tuple[float, int]] = []
        self._out: list[bytes] = []
        # The host's character count, as a host following interface.md keeps it.
        self._host_count = 0
        self._host_sizes: deque[int] = deque()
        self._host_partial = 0
        self._last_line = 0
        self._clock = 0.0
        self._run: Run | None = None
        self._gap_busy = 0.0
        self._gap_idle: dict[str, float] = dict.fromkeys(CAUSES, 0.0)
        # Idle episodes inside runs: (start, seconds, cause that held longest), longest kept.
        self._episode: list[Any] | None = None
        self._gap_episodes: list[tuple[float, float, str]] = []
        self.longest_idle: list[tuple[float, float, str]] = []
        self.idle_episodes = dict.fromkeys(_EPISODE_BUCKETS, 0)

    # -- input -------------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> None:
        """Bytes the host wrote at ``now``: queued on the wire behind any still crossing."""
        self._advance_to(now)
        if not self._rx_wire:
            self._rx_next_at = max(now, self._rx_last_at) + self.byte_s
        self._rx_wire += data
        self._count_host_bytes(data)

    def power_on(self, now: float) -> None:
        """The banner GRBL prints at start-up (``report_init_message``)."""
        self._advance_to(now)
        self._write(now, BANNER, is_ok=False)

    def advance(self, now: float) -> list[bytes]:
        """Replies whose last byte has crossed by ``now``, each to be written on its own."""
        self._advance_to(now)
        for _due, size in self._overdue:
            self._release_host(size)
        self._overdue.clear()
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`advance` next has something to hand over (or to decide), else None."""
        times = []
        if self._tx:
            times.append(self._tx_end())
        if self._answers and not self.held:
            times.append(self._answers[0].due)
        if self._rx_wire:
            # Only a newline (its answer, ok_delay_s later) or a realtime byte (at once) makes
            # something to hand over: no wake-up for the bytes between.
            answer_at = None
            for i, byte in enumerate(self._rx_wire):
                arrives = self._rx_next_at + i * self.byte_s
                if answer_at is not None and arrives >= answer_at:
                    break
                if is_realtime_byte(byte):
                    answer_at = arrives
                    break
                if answer_at is None and byte in (0x0A, 0x0D):
                    answer_at = arrives + self.ok_delay_s
            if answer_at is not None:
                times.append(answer_at)
        return min(times) if times else None

    # -- statistics --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        runs = [run.as_dict() for run in self.runs]
        longest = max(self.runs, key=lambda r: r.lines, default=None)
        return {
            "model": {"baud": round(10 / self.byte_s), "rx_buffer": self.rx_buffer,
                      "ok_delay_ms": self.ok_delay_s * 1000, "run_gap_s": self.run_gap_s},
            "lost_bytes": self.lost_bytes,
            "lines": len(self.lines),
            "runs": runs,
            "job": longest.as_dict() if longest is not None else None,
            # Over all runs; the gap after a run's last line byte is not an episode.
            "idle_episodes": dict(self.idle_episodes),
            "longest_idle": [{"at": round(at, 6), "ms": round(s * 1000, 3), "cause": cause}
                             for at, s, cause in self.longest_idle],
        }

    # -- the event loop ----------------------------------------------------------------------

    def _tx_end(self) -> float:
        written, reply, _ok = self._tx[0]
        return max(written, self._tx_free_at) + len(reply) * self.byte_s

    def _advance_to(self, now: float) -> None:
        while True:
            t_rx = self._rx_next_at if self._rx_wire else None
            t_ok = self._answers[0].due if self._answers and not self.held else None
            t_tx = self._tx_end() if self._tx else None
            t = min((x for x in (t_rx, t_ok, t_tx) if x is not None), default=None)
            if t is None or t > now:
                break
            self._integrate(t)
            if t == t_tx:
                self._deliver(t)
            elif t == t_ok:
                self._answer(t)
            else:
                self._arrive(t)
        self._integrate(now)

    def _deliver(self, t: float) -> None:
        _written, reply, is_ok = self._tx.popleft()
        self._tx_free_at = t
        self._out.append(reply)
        if is_ok:
            self._tx_oks -= 1
            size = self._host_sizes.popleft() if self._host_sizes else 0
            self._overdue.append((t, size))

    def _release_host(self, size: int) -> None:
        self._host_count = max(0, self._host_count - size)

    def _answer(self, t: float) -> None:
        answer = self._answers.popleft()
        self._ring_used -= answer.size
        for reply in answer.replies:
            self._write(t, reply, is_ok=reply in (b"ok\r\n",) or reply.startswith(b"error:"))

    def _write(self, t: float, reply: bytes, *, is_ok: bool) -> None:
        if not self._tx:
            self._tx_free_at = max(self._tx_free_at, t)
        self._tx.append((t, reply, is_ok))
        if is_ok:
            self._tx_oks += 1

    def _arrive(self, t: float) -> None:
        byte = self._rx_wire[0]
        del self._rx_wire[0]
        self._rx_last_at = t
        self._rx_next_at = t + self.byte_s
        if is_realtime_byte(byte):
            self._realtime(byte, t)
            return
        self._note_line_byte(t)
        if self._ring_used >= self.capacity:
            self.lost_bytes += 1
            return
        self._ring_used += 1
        self._line_size += 1
        line = self._assembler.feed(byte)
        if line is None:
            return
        size, self._line_size = self._line_size, 0
        self._last_line = size
        if self._run is not None:
            self._run.lines += 1
        replies = [b"error:11\r\n"] if line.overflow else [*self._system_answer(line.text),
                                                           b"ok\r\n"]
        if line.text.startswith("$"):
            self.system_commands.append(line.text)
        elif line.text and not line.overflow:
            # Like GrblEmulator.executed: the G-code lines answered ok, normalised.
            self.lines.append(line.text)
            if self.on_line is not None:
                self.on_line(line.text)
        self._answers.append(_Answer(t + self.ok_delay_s, size, replies))

    def _system_answer(self, text: str) -> list[bytes]:
        if text == "$I":
            return [f"[VER:{VERSION}.20190825:]\r\n".encode(),
                    f"[OPT:V,15,{self.rx_buffer}]\r\n".encode()]
        return []

    def _realtime(self, byte: int, t: float) -> None:
        command = REALTIME_BYTES.get(byte)
        if command is Realtime.STATUS_REPORT:
            self._write(t, self._status_report().encode() + b"\r\n", is_ok=False)
        elif command is Realtime.FEED_HOLD:
            self.held = True
        elif command is Realtime.CYCLE_START and self.held:
            self.held = False
            for answer in self._answers:
                answer.due = max(answer.due, t + self.ok_delay_s)
        elif command is Realtime.SOFT_RESET:
            self.held = False
            self._answers.clear()
            self._ring_used = 0
            self._line_size = 0
            self._assembler.reset()
            self._host_count = 0
            self._host_sizes.clear()
            self._write(t, BANNER, is_ok=False)

    def _status_report(self) -> str:
        if self.held:
            state = "Hold:0"
        elif self._answers or self._ring_used:
            state = "Run"
        else:
            state = "Idle"
        free = self.rx_buffer - self._ring_used
        return f"<{state}|MPos:0.000,0.000,0.000|Bf:15,{free}|FS:0,0>"

    # -- the idle counter --------------------------------------------------------------------

    def _note_line_byte(self, t: float) -> None:
        """A line byte arrived at ``t``: it extends the current run or starts a new one."""
        start = t - self.byte_s
        run = self._run
        if run is None or start - run.end > self.run_gap_s:
            run = self._run = Run(start=start, end=t, busy_s=self.byte_s)
            self.runs.append(run)
        else:
            run.busy_s += self._gap_busy
            for cause, seconds in self._gap_idle.items():
                run.idle_s[cause] += seconds
            for episode in self._gap_episodes:
                self._file_episode(*episode)
            run.end = t
        run.line_bytes += 1
        self._gap_busy = 0.0
        self._gap_idle = dict.fromkeys(CAUSES, 0.0)
        self._gap_episodes.clear()

    def _count_host_bytes(self, data: bytes) -> None:
        """The host's own count: every byte of a line in flight until its answer is in."""
        for byte in data:
            if is_realtime_byte(byte):
                continue
            self._host_partial += 1
            if byte in (0x0A, 0x0D):
                self._host_sizes.append(self._host_partial)
                self._host_count += self._host_partial
                self._host_partial = 0

    def _integrate(self, t: float) -> None:
        span = t - self._clock
        if span <= 0:
            return
        start = self._clock
        self._clock = t
        if self._run is None:
            return
        if self._rx_wire:
            self._gap_busy += span
            self._end_episode()
            return
        cause = self._idle_cause(start)
        self._gap_idle[cause] += span
        if self._episode is None:
            self._episode = [start, 0.0, dict.fromkeys(CAUSES, 0.0)]
        self._episode[1] += span
        self._episode[2][cause] += span

    def _end_episode(self) -> None:
        """Busy again: the idle episode that just ended waits, like the gap's idle time, to
        see whether the run goes on."""
        episode, self._episode = self._episode, None
        if episode is not None:
            start, seconds, causes = episode
            self._gap_episodes.append((start, seconds, max(causes, key=causes.__getitem__)))

    def _file_episode(self, start: float, seconds: float, cause: str) -> None:
        index = sum(1 for bound in _EPISODE_BOUNDS if seconds >= bound)
        self.idle_episodes[_EPISODE_BUCKETS[index]] += 1
        if len(self.longest_idle) < _LONGEST_KEPT or seconds > self.longest_idle[-1][1]:
            self.longest_idle.append((start, seconds, cause))
            self.longest_idle.sort(key=lambda e: -e[1])
            del self.longest_idle[_LONGEST_KEPT:]

    def _idle_cause(self, at: float) -> str:
        room = self._last_line
        if self._host_count + room <= self.capacity:
            return "rx_full" if self._ring_used + room > self.capacity else "host_late"
        if any(due <= at for due, _size in self._overdue):
            return "emulator_late"
        if self._tx_oks:
            return "return_wire_busy"
        return "window_full"
