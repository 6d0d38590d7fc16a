"""The settings table: values per scope (a guild's defaults, a channel or thread, a DM)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from store.database import Table
from store.values import read_moment

ScopeKind = Literal["guild", "channel", "dm"]
SCOPE_KINDS: tuple[ScopeKind, ...] = ("guild", "channel", "dm")
# What a settings command aims at: the place itself, or its server's defaults.
ScopeTarget = Literal["channel", "server"]

# The key column's width, checked before writing: PostgreSQL enforces it and SQLite does
# not, so an over-long key must fail the same way (ValueError) on both.
MAX_KEY_LENGTH = 100


class Scope(NamedTuple):
    """Where a setting applies: a guild's defaults, a channel or thread, or a DM channel."""

    kind: ScopeKind
    id: int


@dataclass(frozen=True, slots=True)
class Setting:
    """One stored setting; `updated_at` is timezone-aware UTC."""

    scope: Scope
    key: str
    value: str
    updated_by: int | None
    updated_at: dt.datetime


def _check_scope(scope: Scope) -> Scope:
    kind, scope_id = scope
    if kind not in SCOPE_KINDS:
        raise ValueError(f"scope kind must be one of {SCOPE_KINDS}, not {kind!r}")
    return Scope(kind, int(scope_id))


class SettingsTable(Table):
    """`Store`'s settings methods."""

    async def set_setting(
        self, scope: Scope, key: str, value: str, *, updated_by: int | None = None
    ) -> None:
        """Store `value` for `key` in `scope`, replacing any value it had.

        Raises ValueError for an unknown scope kind or a key that is empty or longer
        than MAX_KEY_LENGTH. Safe against concurrent writers in this and other processes.
        """
        scope = _check_scope(scope)
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ValueError(f"setting key must be 1 to {MAX_KEY_LENGTH} characters")
        # One statement, so two writers of the same new key cannot both INSERT it:
        # PostgreSQL turns the second INSERT into the UPDATE, SQLite writers are serial.
        await self._execute(
            "save a setting",
            """
            INSERT INTO settings (scope_kind, scope_id, "key", value, updated_by, updated_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (scope_kind, scope_id, "key") DO UPDATE SET
                value = excluded.value,
                updated_by = excluded.updated_by,
                updated_at = excluded.updated_at""",
            scope.kind,
            scope.id,
            key,
            value,
            updated_by,
            dt.datetime.now(dt.UTC),
        )

    async def delete_setting(self, scope: Scope, key: str) -> bool:
        """Remove `key` from `scope`; True if it was set."""
        scope = _check_scope(scope)
        deleted = await self._execute(
            "delete a setting",
            'DELETE FROM settings WHERE scope_kind = ? AND scope_id = ? AND "key" = ?',
            scope.kind,
            scope.id,
            key,
        )
        return deleted > 0

    async def clear_scope(self, scope: Scope) -> int:
        """Remove every setting of `scope`; returns how many there were."""
        scope = _check_scope(scope)
        return await self._execute(
            "clear settings",
            "DELETE FROM settings WHERE scope_kind = ? AND scope_id = ?",
            scope.kind,
            scope.id,
        )

    async def scopes_where(self, key: str, value: str) -> list[Scope]:
        """Every scope whose setting `key` is `value` (any server, channel or thread)."""
        rows = await self._fetch(
            "read settings",
            'SELECT scope_kind, scope_id FROM settings WHERE "key" = ? AND value = ?',
            key,
            value,
        )
        return [Scope(kind, int(scope_id)) for kind, scope_id in rows]

    async def get_settings(self, scopes: Sequence[Scope]) -> dict[Scope, dict[str, Setting]]:
        """The settings of each of `scopes`, in one query: {scope: {key: Setting}}.

        Every requested scope is a key of the result, with {} when it has none.
        """
        wanted = [_check_scope(scope) for scope in scopes]
        result: dict[Scope, dict[str, Setting]] = {scope: {} for scope in wanted}
        if not wanted:
            return result
        distinct = list(dict.fromkeys(wanted))
        matches = " OR ".join(["(scope_kind = ? AND scope_id = ?)"] * len(distinct))
        rows = await self._fetch(
            "read settings",
            'SELECT scope_kind, scope_id, "key", value, updated_by, updated_at FROM settings '
            f"WHERE {matches}",
            *(part for scope in distinct for part in scope),
        )
        for kind, scope_id, key, value, updated_by, updated_at in rows:
            scope = Scope(kind, scope_id)
            result[scope][key] = Setting(scope, key, value, updated_by, read_moment(updated_at))
        return result
