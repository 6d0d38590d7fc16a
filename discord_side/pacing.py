"""How fast the bot writes in one channel: `ChannelPacer`, shared by its replies.

A streamed answer's in-between edits only show it sooner, so they wait for the
channel's budget; posts and final edits never wait (see replies.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Discord does not document its per-channel limit on sends and edits; about 5 per 5 s,
# edits included, is what is commonly observed (discord.py waits out a 429 itself).
CHANNEL_WRITES = 5
CHANNEL_WINDOW = 5.0  # seconds


class ChannelPacer:
    """Paces the in-between edits of streamed answers in one channel.

    Every write of the bot's in the channel (a post, an edit, of any of its messages)
    is `record`ed. An in-between edit (one that only shows a growing answer sooner) may
    go `delay()` seconds from now: at most `writes` writes in any `window` seconds,
    and spread out, one per `window / writes` seconds at most. Posts and the final edit
    of an answer never wait here: they are recorded and count against the in-between
    edits that follow, and if Discord still says 429 discord.py waits it out.
    """

    def __init__(
        self,
        writes: int = CHANNEL_WRITES,
        window: float = CHANNEL_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if writes < 1 or window <= 0:
            raise ValueError("a pacer needs at least one write per positive window")
        self.writes = writes
        self.window = window
        self.clock = clock
        # The last `writes` write times, oldest first (a list: thousands of channels
        # hold one each, and an empty deque is ~0.6 KB).
        self._recent: list[float] = []

    @property
    def interval(self) -> float:
        """Seconds between in-between edits when nothing else is written."""
        return self.window / self.writes

    def record(self) -> None:
        """Note a write to the channel, now."""
        self._recent.append(self.clock())
        del self._recent[: -self.writes]

    def delay(self) -> float:
        """Seconds until an in-between edit may be sent; 0.0 if it may go now."""
        if not self._recent:
            return 0.0
        due = self._recent[-1] + self.interval
        if len(self._recent) == self.writes:  # the window is full: wait for its oldest
            due = max(due, self._recent[0] + self.window)
        return max(0.0, due - self.clock())
