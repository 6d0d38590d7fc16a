"""The bot's persistent store: per-scope settings, per-person usage, running summaries,
the knowledge index of the server's messages, and the claims that let several processes
share one database.

One `Store` talks to either an SQLite file through aiosqlite (store.sqlite: the default,
one bot process) or PostgreSQL through an asyncpg pool (store.postgres: several bot
processes sharing state). Every query is one SQL text for both, written with `?`
placeholders; only the connection set-up, the timestamp column type and the value
encodings (store.values) differ, and full-text search (store.knowledge: FTS5 or tsvector,
with a migration's `PerBackend` DDL). Every failure of the database surfaces as `StoreError`
with a one-line reason.

A new table is a new `Migration` appended to store.migrations.MIGRATIONS plus a small
module beside store/settings.py with its rows' dataclasses and a `Table` mixin holding its
methods, which `Store` (store/store.py) then inherits.
"""

from store.claims import CLAIM_RETENTION, ClaimKind, RateCheck
from store.errors import StoreError
from store.knowledge import Backfill, Hit, IndexedMessage
from store.migrations import MIGRATIONS, Migration, PerBackend
from store.notifications import Listener
from store.settings import MAX_KEY_LENGTH, SCOPE_KINDS, Scope, ScopeKind, ScopeTarget, Setting
from store.store import Store
from store.summaries import Summary
from store.urls import DatabaseURL, database_url
from store.usage import (
    DEFAULT_RETENTION_DAYS,
    MAX_MODEL_LENGTH,
    ChannelUsage,
    Totals,
    UsageRow,
    UserTotals,
    UserUsage,
)

__all__ = [
    "CLAIM_RETENTION",
    "DEFAULT_RETENTION_DAYS",
    "MAX_KEY_LENGTH",
    "MAX_MODEL_LENGTH",
    "MIGRATIONS",
    "SCOPE_KINDS",
    "Backfill",
    "ChannelUsage",
    "ClaimKind",
    "DatabaseURL",
    "Hit",
    "IndexedMessage",
    "Listener",
    "Migration",
    "PerBackend",
    "RateCheck",
    "Scope",
    "ScopeKind",
    "ScopeTarget",
    "Setting",
    "Store",
    "StoreError",
    "Summary",
    "Totals",
    "UsageRow",
    "UserTotals",
    "UserUsage",
    "database_url",
]
