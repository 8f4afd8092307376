"""The Marlin emulator's model and a :class:`MarlinFlow` on one simulated clock, without a pty.

Fast and deterministic: a 3,000-line job takes well under a second of CPU, and the same inputs
give the same run. What it models, and nothing more:

- Instant wire from host to board: bytes the flow writes at time t reach the board's receive
  buffer at t (:meth:`MarlinEmulator.arrive`), in one burst.
- Reply latency: every reply the board prints at t reaches the flow at ``t + latency_s`` plus
  up to ``jitter_s`` (seeded), never before an earlier reply. Jitter makes replies arrive in
  clumps, as through a USB adapter's latency timer or an OS read that collects several lines;
  a clump of oks makes the flow write a burst, which may reach the board in the middle of a
  command - the case where lines stay in the receive buffer.
- Processing: the board takes the oldest queued command (:meth:`MarlinEmulator.begin_command`),
  processes it for ``command_time_s`` (no transfer from the receive buffer meanwhile), then
  runs it, answers and frees its slot (:meth:`MarlinEmulator.end_command`), which moves waiting
  lines into the queue (Marlin's ``idle()`` between commands).
- The host reacts in no time: every reply is handled at once and the flow's output written.

Commands that wait (M109 with a target, G4 with a duration, G28) are not simulated: the run
raises :class:`SimulationError` on one. Use the pty emulator for those.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from agent.emulators.marlin import MarlinEmulator
from agent.emulators.pty import PtyEndpoint
from agent.profiles.marlin import MarlinSettings
from agent.transport.marlin_flow import FirmwareCaps, MarlinFlow, Phase


class SimulationError(RuntimeError):
    pass


class _Endpoint:
    """Collects what the board prints (the emulator's only use of its endpoint is send())."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


FlowFactory = Callable[[Sequence[str], MarlinSettings, FirmwareCaps], MarlinFlow]


@dataclass(frozen=True)
class SimResult:
    phase: Phase
    seconds: float  # simulated time from the first byte to the end of the job
    lines: int
    rx_overflows: int
    resend_requests: int
    max_rx_bytes: int
    max_in_flight: int
    executed: list[str]

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


def _run_now(emulator: MarlinEmulator, command: str) -> bool:
    """Run one command that does not wait (its coroutine finishes without suspending)."""
    coro = emulator._execute(command)
    try:
        coro.send(None)
    except StopIteration as stop:
        return bool(stop.value)
    coro.close()
    raise SimulationError(f"{command!r} waits; the simulation runs only commands that do not")


def simulate(
    lines: Sequence[str],
    settings: MarlinSettings,
    *,
    advanced_ok: bool,
    latency_s: float,
    command_time_s: float,
    bufsize: int,
    rx_buffer_bytes: int,
    jitter_s: float = 0.0,
    seed: int = 0,
    flow_factory: FlowFactory | None = None,
    limit_s: float = 3600.0,
) -> SimResult:
    """Stream ``lines`` through a flow to the emulator's model; return what happened."""
    endpoint = _Endpoint()
    board = MarlinEmulator(
        cast(PtyEndpoint, endpoint),
        bufsize=bufsize,
        rx_buffer_bytes=rx_buffer_bytes,
        advanced_ok=advanced_ok,
        command_time_s=command_time_s,
    )
    caps = FirmwareCaps(capabilities={"BUSY_PROTOCOL": True}, advanced_ok=advanced_ok)
    settings = settings.model_copy(update={"rx_buffer_bytes": rx_buffer_bytes})
    if flow_factory is None:
        flow = MarlinFlow(lines, settings, caps, now=0.0)
    else:
        flow = flow_factory(lines, settings, caps)
    replies: deque[tuple[float, bytes]] = deque()
    done_at: float | None = None  # when the command being processed is done
    current: tuple[str, int | None] | None = None
    now = 0.0
    rng = random.Random(seed)

    def settle() -> None:
        nonlocal done_at, current
        for data in endpoint.sent:
            due = now + latency_s + (rng.uniform(0.0, jitter_s) if jitter_s else 0.0)
            if replies and replies[-1][0] > due:
                due = replies[-1][0]
            replies.append((due, data))
        endpoint.sent.clear()
        if current is None and board.queue_length:
            current = board.begin_command()
            done_at = now + command_time_s

    def write() -> None:
        data = flow.output()
        if data:
            board.arrive(data)
        settle()

    write()
    active = (Phase.SYNCING, Phase.STREAMING)
    while flow.phase in active:
        deadline = flow.next_deadline()
        times = [t for t in (done_at, replies[0][0] if replies else None, deadline)
                 if t is not None]
        if not times:
            raise SimulationError("nothing in flight, nothing to send, and the job not done")
        now = max(now, min(times))
        if now > limit_s:
            raise SimulationError(f"the job did not finish within {limit_s:g} simulated s")
        if done_at is not None and done_at <= now and current is not None:
            command, number = current
            answered = _run_now(board, command)
            current, done_at = None, None
            board.end_command(number, answered)
            settle()
        elif replies and replies[0][0] <= now:
            # Everything due now comes in one read, as the driver handles it.
            data = bytearray()
            while replies and replies[0][0] <= now:
                data += replies.popleft()[1]
            flow.receive(bytes(data), now)
            write()
        else:
            flow.tick(now)
            write()
    return SimResult(
        phase=flow.phase,
        seconds=now,
        lines=flow.acknowledged,
        rx_overflows=board.rx_overflows,
        resend_requests=board.resend_requests,
        max_rx_bytes=board.max_rx_bytes,
        max_in_flight=flow.max_in_flight,
        executed=list(board.executed),
    )


class PreIssue14Flow(MarlinFlow):
    """The window as it was before issue 14, kept only to show what the new one prevents (the
    benchmark's comparison and a test that the model catches it): the oldest
    ``command_queue`` unacknowledged lines were taken to be in the queue already, which a board
    that reads serial only between commands does not do, and nothing held at long commands."""

    def _fits(self, size: int, m105: bool = False) -> bool:
        acked = self._acked_n
        if self._next_n - acked - 1 <= 0:
            return True
        if self._settings.stop_and_wait or self.phase is Phase.SYNCING:
            return False
        first_rx = acked + 1 + self._slots
        if first_rx >= self._next_n:
            return True
        return size + sum(self._sizes[first_rx:self._next_n]) <= self._rx_limit


def pre_issue14_flow(lines: Sequence[str], settings: MarlinSettings,
                     caps: FirmwareCaps) -> MarlinFlow:
    return PreIssue14Flow(lines, settings, caps, now=0.0)
