"""Glue between a :class:`GrblStream` and a :class:`FakeGrbl` on a made-up clock.

One :meth:`StreamRig.step` is one firmware pass of ``dt`` seconds: the fake runs a pass, its
output reaches the stream in chunks (``chunk`` bytes at a time, optionally mangled on the way),
then the stream is ticked; whatever the stream writes reaches the fake before its next pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agent.profiles.grbl import GrblSettings
from agent.transport import grbl_events as ev
from agent.transport.grbl_stream import GrblStream
from tests.grbl.fake_grbl import FakeGrbl

Mangle = Callable[[bytes], bytes]


class StreamRig:
    def __init__(self, fake: FakeGrbl | None = None, *, chunk: int = 4096, dt: float = 0.01,
                 mangle: Mangle | None = None, lag: int = 0, **settings: object) -> None:
        """``lag``: passes the fake's output spends on the wire before the stream reads it."""
        defaults: dict[str, object] = {"response_timeout_s": 2.0, "hold_timeout_s": 3.0}
        defaults.update(settings)
        self.settings = GrblSettings.model_validate(defaults)
        self.fake = fake or FakeGrbl()
        self.now = 0.0
        self.dt = dt
        self.chunk = chunk
        self.mangle = mangle
        self.stream = GrblStream(self.settings, now=self.now)
        self.events: list[ev.Event] = []
        self.wire: list[tuple[float, bytes]] = []  # everything the stream wrote
        self.max_in_flight = 0
        self.lag = lag
        self._on_wire: list[bytes] = []
        self.silent = False  # the fake's output never arrives (a dead link)

    def apply(self, out: ev.Output) -> None:
        for data in (out.urgent, out.write):
            if data:
                self.wire.append((self.now, data))
                self.fake.receive(data)
        self.events.extend(out.events)
        self.max_in_flight = max(self.max_in_flight, self.stream.counter.in_flight_bytes)

    def step(self) -> None:
        self.now += self.dt
        self.fake.step()
        self._on_wire.append(self.fake.take())
        if len(self._on_wire) <= self.lag:
            self.apply(self.stream.tick(self.now))
            return
        data = self._on_wire.pop(0)
        if self.silent:
            data = b""
        if self.mangle is not None and data:
            data = self.mangle(data)
        for i in range(0, len(data), self.chunk):
            self.apply(self.stream.feed(data[i:i + self.chunk], self.now))
        self.apply(self.stream.tick(self.now))

    def run_until(self, done: Callable[[], bool], *, max_s: float = 60.0) -> None:
        end = self.now + max_s
        while not done():
            assert self.now < end, f"nothing happened in {max_s} s: {self.events[-5:]}"
            self.step()

    def start(self, lines: Sequence[str]) -> None:
        self.apply(self.stream.start_job(lines, self.now))

    def of(self, kind: type[ev.Event]) -> list[ev.Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def has(self, kind: type[ev.Event]) -> bool:
        return any(isinstance(e, kind) for e in self.events)

    def job_over(self) -> bool:
        return self.has(ev.JobDone) or self.has(ev.JobFailed) or self.has(ev.JobStopped)

    def written(self) -> bytes:
        return b"".join(data for _, data in self.wire)

    def written_after(self, marker: bytes) -> bytes:
        data = self.written()
        return data[data.index(marker) + len(marker):]


def lines_of(n: int, width: int = 20) -> list[str]:
    """``n`` distinct G1 lines of about ``width`` characters."""
    out = []
    for i in range(n):
        line = f"G1X{i}Y{i % 7}F1000"
        out.append(line + "0" * max(0, width - len(line)) if width > len(line) else line)
    return out
