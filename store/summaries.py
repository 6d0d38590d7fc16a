"""The summaries table: each channel's running summary."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from store.database import Table
from store.values import read_moment


@dataclass(frozen=True, slots=True)
class Summary:
    """A channel's running summary; it covers messages up to `last_message_id` inclusive."""

    channel_id: int
    text: str
    tokens: int
    last_message_id: int
    updated_at: dt.datetime


class SummariesTable(Table):
    """`Store`'s summary methods."""

    async def get_summary(self, channel_id: int) -> Summary | None:
        """The channel's running summary, or None."""
        rows = await self._fetch(
            "read a summary",
            "SELECT channel_id, text, tokens, last_message_id, updated_at FROM summaries "
            "WHERE channel_id = ?",
            channel_id,
        )
        if not rows:
            return None
        found_id, text, tokens, last_message_id, updated_at = rows[0]
        return Summary(found_id, text, tokens, last_message_id, read_moment(updated_at))

    async def put_summary(
        self, channel_id: int, text: str, *, tokens: int, last_message_id: int
    ) -> None:
        """Store the channel's summary, replacing the previous one."""
        await self._execute(
            "save a summary",
            """
            INSERT INTO summaries (channel_id, text, tokens, last_message_id, updated_at)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (channel_id) DO UPDATE SET
                text = excluded.text,
                tokens = excluded.tokens,
                last_message_id = excluded.last_message_id,
                updated_at = excluded.updated_at""",
            channel_id,
            text,
            tokens,
            last_message_id,
            dt.datetime.now(dt.UTC),
        )

    async def delete_summary(self, channel_id: int) -> bool:
        """Forget the channel's summary; True if there was one."""
        deleted = await self._execute(
            "delete a summary", "DELETE FROM summaries WHERE channel_id = ?", channel_id
        )
        return deleted > 0
