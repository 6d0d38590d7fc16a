"""Small bounded structures the bot keeps per channel and per user, tested directly.

* `ChannelPacer`: how long a streamed answer's next in-between edit must wait so that
  the bot's writes in one channel stay within Discord's per-channel budget.
* `RecentlyUsed`: which channels (or users) were active most recently, so that the
  least recently used beyond a bound can give up what the bot keeps for them.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

# Discord does not document its per-channel limit on sends and edits; about 5 per 5 s,
# edits included, is what is commonly observed (discord.py waits out a 429 itself).
CHANNEL_WRITES = 5
CHANNEL_WINDOW = 5.0  # seconds

Key = TypeVar("Key", bound=Hashable)


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
        self._recent: deque[float] = deque(maxlen=writes)  # the last `writes` write times

    @property
    def interval(self) -> float:
        """Seconds between in-between edits when nothing else is written."""
        return self.window / self.writes

    def record(self) -> None:
        """Note a write to the channel, now."""
        self._recent.append(self.clock())

    def delay(self) -> float:
        """Seconds until an in-between edit may be sent; 0.0 if it may go now."""
        if not self._recent:
            return 0.0
        due = self._recent[-1] + self.interval
        if len(self._recent) == self.writes:  # the window is full: wait for its oldest
            due = max(due, self._recent[0] + self.window)
        return max(0.0, due - self.clock())


class RecentlyUsed(Generic[Key]):
    """Keys in order of last use, of which at most `limit` are kept.

    `use(key)` marks a key as the most recently used. `overflow(busy)` removes and
    returns the least recently used keys beyond `limit`, skipping (and marking as
    used) those for which `busy(key)` is true: they are in use and kept, so the
    bound can be exceeded while more keys than `limit` are busy at once.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._order: OrderedDict[Key, None] = OrderedDict()

    def use(self, key: Key) -> None:
        """Mark `key` as the most recently used."""
        self._order[key] = None
        self._order.move_to_end(key)

    def discard(self, key: Key) -> None:
        """Forget `key` if it is there."""
        self._order.pop(key, None)

    def overflow(self, busy: Callable[[Key], bool] = lambda _key: False) -> list[Key]:
        """Remove and return the least recently used keys beyond `limit`, oldest first."""
        gone: list[Key] = []
        # Each key is looked at once at most: a busy key moves to the newest end.
        for _ in range(len(self._order)):
            if len(self._order) <= self.limit:
                break
            key = next(iter(self._order))
            if busy(key):
                self._order.move_to_end(key)
            else:
                del self._order[key]
                gone.append(key)
        return gone

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Key]:
        """Keys from the least to the most recently used."""
        return iter(self._order)
