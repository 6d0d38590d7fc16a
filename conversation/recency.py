"""Which keys were used most recently: `RecentlyUsed`, a bound on what the bot keeps per
channel (conversations.py) and per user (access.py, audience.py), and on the events it
remembers (claims, deletions: operations/claims.py, knowledge/keeper.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)


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

    def overflow(self, busy: Callable[[Key], bool] = lambda _key: False) -> list[Key]:
        """Remove and return the least recently used keys beyond `limit`, oldest first.

        The most recently used key is always kept (it was just used: its owner is
        about to store something for it).
        """
        gone: list[Key] = []
        if len(self._order) <= self.limit:
            return gone
        newest = next(reversed(self._order))
        # Each key is looked at once at most: a busy key moves behind the newest.
        while len(self._order) > self.limit:
            key = next(iter(self._order))
            if key == newest:
                break
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
