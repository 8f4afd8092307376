"""How long a GRBL job has been in feed hold with nobody acting on it (sans I/O).

The hold counts from the later of the first report saying ``Hold`` and a person's last pause or
resume: a job someone paused a minute ago is being looked after; one nobody has touched for
``limit_s`` is told once (:class:`~agent.transport.grbl_events.HoldChanged`), and told again
as ended when a report leaves Hold or the job ends.
"""

from __future__ import annotations

from agent.transport.grbl_events import HoldChanged


class HoldClock:
    def __init__(self, limit_s: float, *, now: float) -> None:
        self.limit_s = limit_s
        self._person_at = now
        self._since: float | None = None
        self._told = False
        self._held_for = 0.0

    @property
    def held_s(self) -> float | None:
        """Seconds held with nobody acting, once past the limit; None otherwise."""
        return self._held_for if self._told else None

    def person_acted(self, now: float) -> None:
        self._person_at = now

    def on_report(self, held: bool, now: float) -> HoldChanged | None:
        """A status report during a job: ``held`` if it says Hold."""
        if held:
            if self._since is None:
                self._since = now
            return self.check(now)
        return self.end()

    def check(self, now: float) -> HoldChanged | None:
        if self._since is None:
            return None
        self._held_for = now - max(self._since, self._person_at)
        if self._held_for > self.limit_s and not self._told:
            self._told = True
            return HoldChanged(True, self._held_for, self.limit_s)
        return None

    def end(self) -> HoldChanged | None:
        """The hold (or the job) ended."""
        told = self._told
        self._since = None
        self._told = False
        return HoldChanged(False, self._held_for, self.limit_s) if told else None
