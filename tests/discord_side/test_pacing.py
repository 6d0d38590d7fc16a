"""The per-channel edit pacer, tested directly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discord_side.pacing import ChannelPacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_quiet_channel_may_be_edited_at_once() -> None:
    assert ChannelPacer(clock=Clock()).delay() == 0.0


def test_in_between_edits_are_spread_over_the_window() -> None:
    clock = Clock()
    pacer = ChannelPacer(writes=5, window=5.0, clock=clock)
    pacer.record()
    assert pacer.delay() == pytest.approx(1.0)
    clock.now += 0.4
    assert pacer.delay() == pytest.approx(0.6)
    clock.now += 0.6
    assert pacer.delay() == 0.0


def test_posts_and_final_edits_of_any_message_count_against_the_channel() -> None:
    clock = Clock()
    pacer = ChannelPacer(writes=5, window=5.0, clock=clock)
    for _ in range(5):  # say, two answers' posts and final edits, back to back
        pacer.record()
        clock.now += 0.1
    # Five writes from 0.5 s ago until 0.1 s ago: the next in-between edit waits for the oldest
    # to leave the window, not only for the spacing.
    assert pacer.delay() == pytest.approx(4.5)


def test_a_pacer_needs_a_budget() -> None:
    with pytest.raises(ValueError):
        ChannelPacer(writes=0)
    with pytest.raises(ValueError):
        ChannelPacer(window=0)


@given(
    st.lists(
        st.tuples(st.floats(0.0, 3.0), st.booleans()),  # (time passing, a final write?)
        max_size=60,
    )
)
def test_paced_writes_never_exceed_the_budget(steps: list[tuple[float, bool]]) -> None:
    """In-between edits sent only when delay() is 0 never make the channel exceed its
    budget unless final writes alone do; they keep their spacing from every write."""
    clock = Clock()
    pacer = ChannelPacer(writes=5, window=5.0, clock=clock)
    writes: list[tuple[float, bool]] = []
    for passed, final in steps:
        clock.now += passed
        if final:
            pacer.record()
            writes.append((clock.now, True))
        elif pacer.delay() == 0.0:
            pacer.record()
            writes.append((clock.now, False))
    for i, (at, final) in enumerate(writes):
        if final:
            continue
        earlier = [t for t, _ in writes[:i]]
        assert not earlier or at - earlier[-1] >= 1.0 - 1e-9
        assert len([t for t in earlier if t > at - 5.0]) < 5
