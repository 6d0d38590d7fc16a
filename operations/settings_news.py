"""Settings changes reaching every process that shares PostgreSQL: `SettingsNews`.

ChannelSettings caches each scope's settings for CACHE_SECONDS. When processes share
PostgreSQL, a change made through one of them is announced with NOTIFY on
SETTINGS_CHANNEL (its scope as the payload, "channel:123"), and every process LISTENs
on a connection of its own and drops that scope from its cache at once. After the
listening connection is made again (it dropped), the whole cache is dropped: news may
have been missed meanwhile. With SQLite (one process) none of this runs.
"""

from __future__ import annotations

import logging

from conversation.channel_settings import ChannelSettings
from store import SCOPE_KINDS, Listener, Scope, Store, StoreError

log = logging.getLogger("chatbot")

SETTINGS_CHANNEL = "chatbot_settings"


def payload(scope: Scope) -> str:
    """A scope as announced: "kind:id"."""
    return f"{scope.kind}:{scope.id}"


def scope_of(text: str) -> Scope | None:
    """The scope an announcement names, or None for text that names none."""
    kind, _, number = text.partition(":")
    if kind not in SCOPE_KINDS or not number.isdigit():
        return None
    return Scope(kind, int(number))  # type: ignore[arg-type]


class SettingsNews:
    """Announces this process's settings changes and applies the others' to `settings`."""

    def __init__(self, store: Store, settings: ChannelSettings) -> None:
        self.store = store
        self.settings = settings
        self.listener: Listener = store.listener(SETTINGS_CHANNEL, self._heard, settings.forget)
        settings.changed = self.announce

    def start(self) -> None:
        """Start listening (in the background; it reconnects by itself)."""
        self.listener.start()

    async def stop(self) -> None:
        """Stop listening and announcing."""
        self.settings.changed = None
        await self.listener.stop()

    async def announce(self, scope: Scope) -> None:
        """Tell every process that `scope`'s settings changed. Never raises: when the
        database fails, the others see the change within CACHE_SECONDS anyway."""
        try:
            await self.store.notify(SETTINGS_CHANNEL, payload(scope))
        except StoreError as error:
            log.warning("settings news: could not announce a change: %s", error)

    def _heard(self, text: str) -> None:
        scope = scope_of(text)
        if scope is None:
            log.warning("settings news: ignoring %r", text[:100])
            return
        self.settings.forget(scope)
