"""The character-counting window never puts more than GRBL's receive buffer on the wire.

Property: for any line lengths GRBL accepts, any way the replies are cut into reads, and any
wire delay, the fake GRBL's 128-byte ring (127 usable) never overflows, the stream never counts
more than 127 bytes in flight, and every line arrives once, in order.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.transport import grbl_events as ev
from tests.grbl.fake_grbl import FakeGrbl
from tests.grbl.rig import StreamRig

_LINE = st.integers(min_value=0, max_value=74).map(lambda n: "G1X" + "1" * n)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=st.lists(_LINE, min_size=1, max_size=80),
       chunk=st.integers(min_value=1, max_value=64),
       lag=st.integers(min_value=0, max_value=3),
       passes=st.integers(min_value=1, max_value=3))
def test_window_never_exceeds_the_receive_buffer(program: list[str], chunk: int, lag: int,
                                                 passes: int) -> None:
    rig = StreamRig(FakeGrbl(passes_per_block=passes), chunk=chunk, lag=lag)
    rig.start(program)
    rig.run_until(rig.job_over, max_s=120)
    assert rig.has(ev.JobDone), rig.events[-3:]
    assert rig.fake.overflowed == 0
    assert rig.fake.max_rx <= 127
    assert rig.max_in_flight <= 127
    assert rig.fake.lines == [*program, "G4P0"]
