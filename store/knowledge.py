"""The knowledge index (issue 23): the server's messages, searchable, and backfill progress.

Rows live in knowledge_messages (migration 4). SQLite searches an FTS5 index of their
text (Porter-stemmed unicode61 words, diacritics folded: "cafe" finds "café"), PostgreSQL
a generated tsvector ('english') of the text with its punctuation made spaces and its
accented Latin letters folded (migration 4; the query folded alike), with a GIN index. A
person's query is read by `parse_query` (store/knowledge_query.py) the way
PostgreSQL's websearch_to_tsquery reads it and rendered for each backend from that one
reading, so no text can be an FTS syntax error and both backends find the same messages.

Permission filtering is the caller's: every search names the channel and thread ids it
may return, and SQL returns nothing outside them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from store.database import Table
from store.knowledge_query import parse_query
from store.migrations import ACCENTED, UNACCENTED
from store.postgres import PostgreSQL
from store.values import read_moment

# Search ranks at most this many matches, the newest first (message ids are Discord
# snowflakes, so id order is time order): a word found in 300,000 messages is not
# scored 300,000 times. Past it, older matches are not seen; narrowing the query (more
# words, a channel, an author, a time range) reaches them. A search asking for more
# (offset + limit) ranks that many.
SEARCH_CANDIDATES = 500
# And it examines first this many of a word's newest matches in the whole index when
# the channels are filtered in SQL alone (see KnowledgeTable._floor); a page that pass
# leaves short is searched again over all of them.
SEARCH_SCAN = 4_000
_NO_FLOOR = -(2**63)
# PostgreSQL's query folded as migration 4 folds its text (SQLite's FTS5 folds both).
_UNACCENT = str.maketrans(ACCENTED, UNACCENTED)


# At most this many channel ids also go into SQLite's FTS5 query as tags (see
# migration 4): a search in a few channels then reads only their matches. The SQL filter
# on channel_id stays the rule either way. (Measured at 1,000,000 messages on a loaded
# 2-core machine: a common word in 1-8 channels took 3-34 ms by tags against 80-330 ms
# by lookups; in 16 to 249 channels the tags' OR took 31-170 ms, more than lookups.)
TAGGED_CHANNELS = 8

# CROSS JOIN keeps the FTS index as the outer loop, read newest first and stopped at the
# candidate bound; each match's filters are one rowid lookup. Only the page of hits
# asked for reads its columns. bm25's weights: the words count, the tags do not.
_FTS5_SEARCH = """
SELECT m.message_id, m.guild_id, m.channel_id, m.parent_id, m.author_id, m.author_name,
    m.created_at, m.text, c.score
FROM (
    SELECT knowledge_fts.rowid AS id, -bm25(knowledge_fts, 1.0, 0.0) AS score
    FROM knowledge_fts CROSS JOIN knowledge_messages AS f ON f.message_id = knowledge_fts.rowid
    WHERE knowledge_fts MATCH ? AND {filters} AND knowledge_fts.rowid >= ?
    ORDER BY knowledge_fts.rowid DESC LIMIT ?
) AS c CROSS JOIN knowledge_messages AS m ON m.message_id = c.id
ORDER BY c.score DESC, c.id DESC LIMIT ? OFFSET ?"""

_TSQUERY_SEARCH = """
SELECT * FROM (
    SELECT f.message_id, f.guild_id, f.channel_id, f.parent_id, f.author_id, f.author_name,
        f.created_at, f.text, ts_rank(f.words, q) AS score
    FROM knowledge_messages AS f, websearch_to_tsquery('english', ?) AS q
    WHERE f.words @@ q AND {filters} AND f.message_id >= ?
    ORDER BY f.message_id DESC LIMIT ?
) AS c
ORDER BY c.score DESC, c.message_id DESC LIMIT ? OFFSET ?"""

_COLUMNS = "message_id, guild_id, channel_id, parent_id, author_id, author_name, created_at, text"


@dataclass(frozen=True, slots=True)
class IndexedMessage:
    """One message as the index holds it."""

    message_id: int
    guild_id: int
    channel_id: int  # the channel, or the thread, the message is in
    parent_id: int | None  # a thread's parent channel (a forum for forum posts); None otherwise
    author_id: int
    author_name: str  # display name when written
    created_at: dt.datetime  # aware UTC
    text: str  # as people read it (mentions as names), attachment names appended


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result; `rank` is higher for a better match."""

    message: IndexedMessage
    rank: float


@dataclass(frozen=True, slots=True)
class Backfill:
    """How far reading a channel's history back has come."""

    channel_id: int
    guild_id: int
    before_id: int | None  # resume point: read history before this message id (None: newest)
    since: dt.datetime  # how far back to read (aware UTC)
    messages: int  # indexed so far
    finished: bool


def _tags(channel_ids: Collection[int], author_id: int | None) -> list[list[str]]:
    """The FTS5 tags a search's filters require (see migration 4 and TAGGED_CHANNELS)."""
    tags = [[f"a{int(author_id)}"]] if author_id is not None else []
    if len(channel_ids) <= TAGGED_CHANNELS:
        tags.append([f"c{int(c)}" for c in channel_ids])
    return tags


def _message(row: Sequence[Any]) -> IndexedMessage:
    message_id, guild_id, channel_id, parent_id, author_id, name, created_at, text = row[:8]
    return IndexedMessage(
        message_id, guild_id, channel_id, parent_id, author_id, name, read_moment(created_at),
        text,
    )  # fmt: skip


class KnowledgeTable(Table):
    """`Store`'s knowledge-index methods. Times are aware UTC; ids are Discord snowflakes."""

    @property
    def _postgres(self) -> bool:
        return isinstance(self._db, PostgreSQL)

    async def index_messages(self, messages: Sequence[IndexedMessage]) -> None:
        """Add or replace messages, by message_id, in one transaction: an edit's new text
        replaces the old, whose words no longer find it."""
        if not messages:
            return
        # PostgreSQL's text cannot hold NUL; nobody reads one in a message either.
        rows = [
            (m.message_id, m.guild_id, m.channel_id, m.parent_id, m.author_id,
             m.author_name.replace("\x00", ""), m.created_at, m.text.replace("\x00", ""))
            for m in messages
        ]  # fmt: skip
        async with self._failing_as("index messages"), self._db.transaction() as tx:
            await tx.execute_many(
                f"INSERT INTO knowledge_messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (message_id) DO UPDATE SET guild_id = excluded.guild_id, "
                "channel_id = excluded.channel_id, parent_id = excluded.parent_id, "
                "author_id = excluded.author_id, author_name = excluded.author_name, "
                "created_at = excluded.created_at, text = excluded.text",
                rows,
            )

    async def forget_messages(self, message_ids: Collection[int]) -> int:
        """Remove these messages; how many were indexed."""
        if not message_ids:
            return 0
        in_ids, arg = self._in_list(message_ids)
        return await self._execute(
            "forget messages", f"DELETE FROM knowledge_messages WHERE message_id {in_ids}", arg
        )

    async def forget_channel(self, channel_id: int) -> int:
        """Remove a channel's messages and its threads' (parent_id = it), and the backfill
        rows of it and of those threads; how many messages were removed."""
        async with self._failing_as("forget a channel"), self._db.transaction() as tx:
            await tx.execute(
                "DELETE FROM knowledge_backfills WHERE channel_id = ? OR channel_id IN "
                "(SELECT DISTINCT channel_id FROM knowledge_messages WHERE parent_id = ?)",
                channel_id,
                channel_id,
            )
            return await tx.execute(
                "DELETE FROM knowledge_messages WHERE channel_id = ? OR parent_id = ?",
                channel_id,
                channel_id,
            )

    async def forget_author(self, author_id: int, asked_at: dt.datetime | None = None) -> int:
        """Remove everything this person wrote, in every server, and record that they
        asked at `asked_at` (default: now; asked again, the latest time is kept) for
        `forgotten_authors`; how many messages were removed."""
        asked_at = asked_at or dt.datetime.now(dt.UTC)
        async with self._failing_as("forget an author's messages"), self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO knowledge_forgotten (author_id, asked_at) VALUES (?, ?) "
                "ON CONFLICT (author_id) DO UPDATE SET asked_at = CASE WHEN "
                "excluded.asked_at > knowledge_forgotten.asked_at THEN excluded.asked_at "
                "ELSE knowledge_forgotten.asked_at END",
                author_id,
                asked_at,
            )
            return await tx.execute("DELETE FROM knowledge_messages WHERE author_id = ?", author_id)

    async def forgotten_authors(self) -> dict[int, dt.datetime]:
        """Who asked to be forgotten, and when they last asked (aware UTC)."""
        rows = await self._fetch(
            "read who asked to be forgotten", "SELECT author_id, asked_at FROM knowledge_forgotten"
        )
        return {int(author_id): read_moment(asked_at) for author_id, asked_at in rows}

    async def forget_older_than(self, cutoff: dt.datetime) -> int:
        """Remove messages written before `cutoff` (retention); how many."""
        return await self._execute(
            "forget old messages", "DELETE FROM knowledge_messages WHERE created_at < ?", cutoff
        )

    async def search(
        self,
        query: str,
        *,
        channel_ids: Collection[int],
        author_id: int | None = None,
        after: dt.datetime | None = None,
        before: dt.datetime | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Hit]:
        """Messages in `channel_ids` matching a person's words, best first (ties: newest).

        Only messages whose channel_id is in `channel_ids` (the caller's permission
        filter, applied in SQL); empty -> []. Optionally by `author_id` and written at or
        after `after` and before `before`. Any text is accepted (see `parse_query`); a
        query with no word to look for (emoji, stop words, only `-excluded` words) finds
        nothing: an exclusion alone excludes, it never lists the rest. Ranking (SQLite's
        bm25, PostgreSQL's ts_rank) covers the newest SEARCH_CANDIDATES (or `offset` +
        `limit`, if more) matches that pass the filters, so a very common word costs a
        bounded scan. With more than
        TAGGED_CHANNELS channels, a word's newest SEARCH_SCAN (or `offset` + `limit`)
        matches in the whole index are examined first (`_floor`), so a common word in a
        small share of the index is not looked up in all of it; when they give fewer
        than `limit` hits, all matches are examined, so the permission filter never hides
        a match that a search in fewer channels finds. Raises ValueError for a negative
        limit or offset.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        parsed = parse_query(query)
        if not channel_ids or limit == 0 or parsed is None:
            return []
        filters, args = self._filters(channel_ids, author_id, after, before)
        candidates = max(SEARCH_CANDIDATES, offset + limit)
        scan = max(SEARCH_SCAN, offset + limit) if len(channel_ids) > TAGGED_CHANNELS else 0
        async with self._failing_as("search messages"), self._db.transaction() as tx:
            if self._postgres:
                sql = _TSQUERY_SEARCH.format(filters=filters)
                words = parsed.websearch().translate(_UNACCENT)
            else:
                sql = _FTS5_SEARCH.format(filters=filters)
                words = parsed.fts5(_tags(channel_ids, author_id))
            floor = await self._floor(tx, words, author_id, scan)
            rows = await tx.fetch(sql, words, *args, floor, candidates, limit, offset)
            if floor != _NO_FLOOR and len(rows) < limit:
                # The floor left the page short: the readable matches may be older than
                # the other channels' newest. Only a full search can tell.
                rows = await tx.fetch(sql, words, *args, _NO_FLOOR, candidates, limit, offset)
        return [Hit(_message(row), float(row[8])) for row in rows]

    async def around(
        self, channel_id: int, message_id: int, *, before: int, after: int
    ) -> list[IndexedMessage]:
        """Up to `before` messages before `message_id` in its channel, the message itself
        if indexed, and up to `after` after it; oldest first."""
        async with self._failing_as("read around a message"), self._db.transaction() as tx:
            older = await tx.fetch(
                f"SELECT {_COLUMNS} FROM knowledge_messages WHERE channel_id = ? "
                "AND message_id < ? ORDER BY message_id DESC LIMIT ?",
                channel_id, message_id, max(before, 0),
            )  # fmt: skip
            newer = await tx.fetch(
                f"SELECT {_COLUMNS} FROM knowledge_messages WHERE channel_id = ? "
                "AND message_id >= ? ORDER BY message_id LIMIT ?",
                channel_id, message_id, max(after, 0) + 1,
            )  # fmt: skip
        if newer and newer[0][0] != message_id:
            newer = newer[: max(after, 0)]
        return [_message(row) for row in [*reversed(older), *newer]]

    async def recent(
        self,
        channel_id: int,
        *,
        limit: int,
        before_id: int | None = None,
        after: dt.datetime | None = None,
    ) -> list[IndexedMessage]:
        """The channel's newest `limit` messages (older than `before_id`, written at or
        after `after`, when given), oldest first."""
        where = ["channel_id = ?"]
        args: list[object] = [channel_id]
        if before_id is not None:
            where.append("message_id < ?")
            args.append(before_id)
        if after is not None:
            where.append("created_at >= ?")
            args.append(after)
        rows = await self._fetch(
            "read a channel's messages",
            f"SELECT {_COLUMNS} FROM knowledge_messages WHERE {' AND '.join(where)} "
            "ORDER BY message_id DESC LIMIT ?",
            *args, max(limit, 0),
        )  # fmt: skip
        return [_message(row) for row in reversed(rows)]

    async def save_backfill(self, backfill: Backfill) -> None:
        """Record a channel's backfill progress, replacing what was recorded."""
        await self._execute(
            "save backfill progress",
            "INSERT INTO knowledge_backfills (channel_id, guild_id, before_id, since, "
            "messages, finished) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id) DO UPDATE "
            "SET guild_id = excluded.guild_id, before_id = excluded.before_id, "
            "since = excluded.since, messages = excluded.messages, finished = excluded.finished",
            backfill.channel_id, backfill.guild_id, backfill.before_id, backfill.since,
            backfill.messages, backfill.finished,
        )  # fmt: skip

    async def backfills(self, *, unfinished_only: bool = True) -> list[Backfill]:
        """The recorded backfills (by default those not finished), by channel id."""
        rows = await self._fetch(
            "read backfill progress",
            "SELECT channel_id, guild_id, before_id, since, messages, finished "
            f"FROM knowledge_backfills {'WHERE NOT finished' if unfinished_only else ''} "
            "ORDER BY channel_id",
        )
        return [
            Backfill(channel, guild, before, read_moment(since), messages, bool(finished))
            for channel, guild, before, since, messages, finished in rows
        ]

    async def forget_backfill(self, channel_id: int) -> None:
        """Drop a channel's backfill record (knowledge turned off there)."""
        await self._execute(
            "forget backfill progress",
            "DELETE FROM knowledge_backfills WHERE channel_id = ?",
            channel_id,
        )

    def _filters(
        self,
        channel_ids: Collection[int],
        author_id: int | None,
        after: dt.datetime | None,
        before: dt.datetime | None,
    ) -> tuple[str, list[object]]:
        """A search's WHERE conditions on its rows `f`, and their arguments."""
        in_channels, channels_arg = self._in_list(channel_ids)
        where = [f"f.channel_id {in_channels}"]
        args: list[object] = [channels_arg]
        for condition, value in (
            ("f.author_id = ?", author_id),
            ("f.created_at >= ?", after),
            ("f.created_at < ?", before),
        ):
            if value is not None:
                where.append(condition)
                args.append(value)
        return " AND ".join(where), args

    async def _floor(self, tx: Any, words: str, author_id: int | None, scan: int) -> int:
        """The lowest message id a first search pass examines: that of the `scan`-th newest match
        of `words` (by `author_id`, if given); no floor for `scan` 0. Used when the
        channels are filtered in SQL alone (more than TAGGED_CHANNELS): each match then
        costs a row lookup, and a common word in a small share of the index would be
        looked up everywhere."""
        if scan <= 0:
            return _NO_FLOOR
        if self._postgres:
            by = "" if author_id is None else f" AND author_id = {int(author_id)}"
            sql = (
                "SELECT message_id FROM knowledge_messages WHERE words @@ "
                f"websearch_to_tsquery('english', ?){by} ORDER BY message_id DESC "
                "LIMIT 1 OFFSET ?"
            )
        else:  # the author is in `words` already, as a tag
            sql = (
                "SELECT rowid FROM knowledge_fts WHERE knowledge_fts MATCH ? "
                "ORDER BY rowid DESC LIMIT 1 OFFSET ?"
            )
        rows = await tx.fetch(sql, words, scan - 1)
        return int(rows[0][0]) if rows else _NO_FLOOR

    def _in_list(self, ids: Collection[int]) -> tuple[str, object]:
        """`IN ...` for a set of ids as ONE parameter (any number of ids): a JSON array
        on SQLite, a bigint[] on PostgreSQL; the SQL text and its argument."""
        if self._postgres:
            return "= ANY(?::bigint[])", [int(i) for i in ids]
        return "IN (SELECT value FROM json_each(?))", json.dumps([int(i) for i in ids])
