"""The built-in knowledge tools (issue 23): a `Toolbox` of read-only tools over the
server's message index, bound to one answer's audience.

- `search_messages`: ranked hits for a person's words, optionally in one channel, by one
  author, and within dates;
- `read_around`: the messages around one (a jump link, or an id);
- `read_channel`: a channel's recent messages, paged back with `before`.

Every result line gives the author, the channel, the time (UTC, ISO 8601), the text
shortened, and the message's jump link (https://discord.com/channels/<server>/<channel>/
<message>); the descriptions ask the model to cite the messages it used by those links.

Only the channel ids in the answer's allowed set (readers.py's rule, computed once, on the
first call: `Audience.allowed`) are ever read: the store filters searches by them, and a
link, id or channel name outside them reads exactly as one that does not exist. The tools
change nothing (needs_approval False); what they return is untrusted text to the tool loop
(tool_rounds.py marks it so) and is never remembered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Protocol, TypeVar

from store.knowledge import Hit, IndexedMessage
from store.knowledge_query import only_excludes, parse_query
from text.markdown import one_line
from tools.base import Tool, ToolResult

log = logging.getLogger("chatbot")
T = TypeVar("T")

SEARCH_LIMIT = 10  # hits per page
MAX_SEARCH_LIMIT = 25
WINDOW = 8  # messages on each side of the one read around
PAGE = 20  # messages of a channel per page
SNIPPET = 300  # characters of a message's text in a search hit
TEXT = 600  # characters of a message's text when reading a channel
AUTHOR_SCAN = 50  # hits scanned when the author is given by name
MAX_PAGE = 100  # the last page of search results offered (1,000 hits)
MAX_ID = 2**63 - 1  # Discord's snowflakes are 64-bit; the store keeps them as BIGINT
JUMP = "https://discord.com/channels/{guild}/{channel}/{message}"
LINK = re.compile(r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(\d+)/(\d+)/(\d+)")
CHANNEL_MENTION = re.compile(r"<#(\d+)>")
USER_MENTION = re.compile(r"<@!?(\d+)>")
NOT_FOUND = "No such message was found (it may not exist, or may not be readable here)."
NO_CHANNEL = "No channel {name!r} was found among those readable here."
SEVERAL = "Several channels are named {name!r}: {choices}. Call again with the channel's id."
CITE = (
    " Cite every message you use by its jump link (https://discord.com/channels/…), "
    "written as a plain link, so people can check it."
)


class Index(Protocol):
    """The store's knowledge index (store/knowledge.py: `KnowledgeTable`)."""

    async def search(
        self,
        query: str,
        *,
        channel_ids: Collection[int],
        author_id: int | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Hit]: ...

    async def around(
        self, channel_id: int, message_id: int, *, before: int, after: int
    ) -> list[IndexedMessage]: ...

    async def recent(
        self, channel_id: int, *, limit: int, before_id: int | None = None,
        after: datetime | None = None,
    ) -> list[IndexedMessage]: ...  # fmt: skip


@dataclass(slots=True)
class Audience:
    """Who an answer is for: `allowed` gives the channel and thread ids its messages may
    come from (awaited once, on the first tool call); `names` gives a channel's name for
    people (None: unknown); `home` is the channel asked in (None in a DM); `server`
    gives the (id, name) of a channel's server (None: unknown), said in results and
    asked for when the allowed channels span several servers (a DM)."""

    allowed: Callable[[], Awaitable[Collection[int]]]
    names: Callable[[int], str | None]
    home: int | None = None
    server: Callable[[int], tuple[int, str] | None] = lambda _: None


class ToolError(Exception):
    """A bad argument: its message goes back to the model."""


TOOLS = (
    Tool(
        "search_messages",
        "knowledge: search messages",
        "Search this Discord server's past messages (those the people reading your answer "
        "may read) for words, best matches first. Each result has the author, channel, time "
        "(UTC), text (shortened) and jump link." + CITE,
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "words to look for"},
                "channel": {"type": "string", "description": "only this channel: name or id"},
                "author": {"type": "string", "description": "only this author: name or id"},
                "after": {"type": "string", "description": "only after this date (YYYY-MM-DD)"},
                "before": {"type": "string", "description": "only before this date"},
                "page": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PAGE,
                    "description": "page of results",
                },
            },
            "required": ["query"],
        },
        needs_approval=False,
    ),
    Tool(
        "read_around",
        "knowledge: read around",
        "Read the messages just before and after one message, for its context. Give the "
        "message's jump link (from search results)." + CITE,
        {
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "the jump link, or the id"},
                "channel": {"type": "string", "description": "the channel, with a bare id"},
            },
            "required": ["message"],
        },
        needs_approval=False,
    ),
    Tool(
        "read_channel",
        "knowledge: read channel",
        f"Read a channel's most recent messages, {PAGE} at a time, oldest first; for older "
        "ones, call again with `before` set to the oldest id shown." + CITE,
        {
            "type": "object",
            "properties": {
                "channel": {"type": "string", "description": "name or id (default: here)"},
                "before": {"type": "string", "description": "only messages before this id"},
            },
        },
        needs_approval=False,
    ),
)


def jump_link(message: IndexedMessage) -> str:
    """The message's jump link (links never ping: the bot posts with no mentions)."""
    return JUMP.format(
        guild=message.guild_id, channel=message.channel_id, message=message.message_id
    )


def when(moment: datetime) -> str:
    """`moment` as UTC ISO 8601 to the second: 2026-12-07T23:15:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_moment(text: str, *, end_of_day: bool = False) -> datetime:
    """A date (YYYY-MM-DD: its start, or its end with `end_of_day`) or an ISO 8601 time
    (naive: UTC) as an aware UTC datetime; ToolError when it is neither."""
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.max if end_of_day else time.min, UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ToolError(f"{text!r} is not a date (YYYY-MM-DD) or time (ISO 8601)") from None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved across midnight UTC
        raise ToolError(f"{text!r} is out of range: give a date from 0001 to 9999") from None


def argument(name: str, parse: Callable[[str], T], text: str) -> T:
    """`parse(text)`, a ToolError from it naming the argument `name`."""
    try:
        return parse(text)
    except ToolError as error:
        raise ToolError(f"Bad {name}: {error}") from None


def parse_page(text: str | None) -> int:
    """A search's page number, 1 to MAX_PAGE (None: 1); ToolError otherwise."""
    if text is None:
        return 1
    number = snowflake(text.strip())
    if number is not None and 1 <= number <= MAX_PAGE:
        return number
    raise ToolError(f"Bad page: {text.strip()[:30]!r} is not a page from 1 to {MAX_PAGE}.")


def parse_message(text: str) -> tuple[int | None, int]:
    """The (channel id or None, message id) a jump link or a bare id gives; ToolError
    for anything else, ids past 64 bits included."""
    link = LINK.search(text)
    channel_id, message_id = (snowflake(link[2]), snowflake(link[3])) if link else (0, None)
    if not link:
        message_id = parse_id(text)
    if channel_id is None or message_id is None:
        raise ToolError(f"{text.strip()[:120]!r} is not a jump link or a message id.")
    return channel_id or None, message_id


def no_words(query: str) -> str:
    """What the model is told when `query` has no word to look for (see parse_query)."""
    why = (
        "it only excludes words (-word); say what to look for too"
        if only_excludes(query)
        else "very common words (the, to, don't), punctuation and emoji are not indexed"
    )
    return (
        f"{query.strip()[:80]!r} has no searchable words: {why}. Add a distinctive word, "
        "or use read_channel to read a channel's recent messages."
    )


def parse_id(text: str) -> int | None:
    """A snowflake id in `text` (digits, a <#id> or <@id> mention), or None."""
    text = text.strip()
    if found := CHANNEL_MENTION.fullmatch(text) or USER_MENTION.fullmatch(text):
        return int(found[1])
    return snowflake(text)


def snowflake(digits: str) -> int | None:
    """`digits` as an id (ASCII digits, at most MAX_ID), or None."""
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 20):
        return None
    return int(digits) if int(digits) <= MAX_ID else None


class KnowledgeTools:
    """The knowledge tools for one answer (a `Toolbox`): reads `index` within
    `audience`'s allowed channels."""

    def __init__(self, index: Index, audience: Audience) -> None:
        self.index = index
        self.audience = audience
        self._allowed: frozenset[int] | None = None
        self._servers: dict[int, str] = {}  # channel id -> its server's name, when several

    def tools(self) -> Sequence[Tool]:
        return TOOLS

    async def allowed(self) -> frozenset[int]:
        """The allowed channel ids, computed on first use."""
        if self._allowed is None:
            self._allowed = frozenset(await self.audience.allowed())
            known = {c: self.audience.server(c) for c in self._allowed}
            if len({s[0] for s in known.values() if s is not None}) > 1:
                self._servers = {c: s[1] for c, s in known.items() if s is not None}
        return self._allowed

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run the tool `name`; a bad argument or a failure is an error result."""
        run = {
            "search_messages": self.search_messages,
            "read_around": self.read_around,
            "read_channel": self.read_channel,
        }.get(name)
        if run is None:
            return ToolResult(f"There is no tool named {name!r}.", is_error=True)
        try:
            return ToolResult(await run(**_strings(arguments)))
        except ToolError as error:
            return ToolResult(str(error), is_error=True)
        except TypeError as error:  # an unknown or missing argument
            return ToolResult(f"Bad arguments: {error}", is_error=True)
        except Exception as error:  # the store failed: the model may say so; logged
            log.error("knowledge tool %s failed", name, exc_info=error)
            return ToolResult("The message index could not be read just now.", is_error=True)

    async def search_messages(
        self,
        query: str,
        channel: str | None = None,
        author: str | None = None,
        after: str | None = None,
        before: str | None = None,
        page: str | None = None,
    ) -> str:
        if not query.strip():
            raise ToolError("Give some words to search for.")
        if parse_query(query) is None:
            raise ToolError(no_words(query))
        number = parse_page(page)
        since = argument("after", parse_moment, after) if after else None
        until = argument("before", parse_moment, before) if before else None
        author_id = parse_id(author) if author else None
        if author and author_id is None and author.strip().isdigit():
            raise ToolError(f"Bad author: {author.strip()[:30]!r} is not a user id or name.")
        allowed = await self.allowed()
        channels = allowed if channel is None else {await self.channel_id(channel)}
        by_name = author is not None and author_id is None
        limit = AUTHOR_SCAN if by_name else SEARCH_LIMIT
        hits = await self.index.search(
            query,
            channel_ids=channels,
            author_id=author_id,
            after=since,
            before=until,
            limit=limit,
            offset=0 if by_name else (number - 1) * SEARCH_LIMIT,
        )
        found = [hit.message for hit in hits if hit.message.channel_id in allowed]
        if by_name and author is not None:
            wanted = author.strip().lstrip("@").casefold()
            found = [m for m in found if wanted in m.author_name.casefold()]
            found = found[(number - 1) * SEARCH_LIMIT : number * SEARCH_LIMIT]
        if not found:
            return "No messages found." if number == 1 else "No more results."
        lines = [self.line(message, SNIPPET) for message in found]
        more = (
            f"\n(For more, call again with page={number + 1}.)"
            if len(found) == SEARCH_LIMIT
            else ""
        )
        return f"{len(found)} messages, best match first:\n" + "\n".join(lines) + more

    async def read_around(self, message: str, channel: str | None = None) -> str:
        allowed = await self.allowed()
        linked_channel, message_id = argument("message", parse_message, message)
        if linked_channel is not None:
            channel_id = linked_channel
        elif channel is not None:
            channel_id = await self.channel_id(channel)
        elif self.audience.home is not None:
            channel_id = self.audience.home
        else:
            raise ToolError("Give the message's jump link, or its channel too.")
        if channel_id not in allowed or not message_id:
            return NOT_FOUND
        window = await self.index.around(channel_id, message_id, before=WINDOW, after=WINDOW)
        if not any(m.message_id == message_id for m in window):
            return NOT_FOUND
        lines = [
            ("→ " if m.message_id == message_id else "") + self.line(m, TEXT)
            for m in window
            if m.channel_id in allowed
        ]
        return "Messages around it, oldest first (→ marks it):\n" + "\n".join(lines)

    async def read_channel(self, channel: str | None = None, before: str | None = None) -> str:
        if channel is None:
            if self.audience.home is None:
                raise ToolError("Name the channel to read.")
            channel_id = self.audience.home
            if channel_id not in await self.allowed():
                return "This channel's messages are not in the index."
        else:
            channel_id = await self.channel_id(channel)
        before_id = argument("before", parse_message, before)[1] if before else None
        messages = await self.index.recent(channel_id, limit=PAGE, before_id=before_id)
        if not messages:
            return "No messages found." if before_id is None else "No older messages."
        lines = [self.line(message, TEXT) for message in messages]
        more = ""
        if len(messages) == PAGE:
            more = f"\n(Older ones: call again with before={messages[0].message_id}.)"
        return f"{len(messages)} messages, oldest first:\n" + "\n".join(lines) + more

    async def channel_id(self, text: str) -> int:
        """The allowed channel `text` names (an id, a <#id> mention, a link, or a name,
        with or without #); ToolError, the same for a hidden one as for none."""
        allowed = await self.allowed()
        link = LINK.search(text)
        wanted = snowflake(link[2]) if link else parse_id(text)
        if wanted is not None:
            if wanted in allowed:
                return wanted
            raise ToolError(NO_CHANNEL.format(name=text.strip()))
        name = text.strip().lstrip("#").casefold()
        named = [c for c in sorted(allowed) if (self.audience.names(c) or "").casefold() == name]
        if len(named) > 1:
            choices = ", ".join(f"{self.channel_name(c)} (id {c})" for c in named)
            raise ToolError(SEVERAL.format(name=text.strip(), choices=choices))
        if named:
            return named[0]
        raise ToolError(NO_CHANNEL.format(name=text.strip()))

    def channel_name(self, channel_id: int) -> str:
        """The "#name" people know it by, and its server's when the allowed set spans
        several servers."""
        name = f"#{self.audience.names(channel_id) or channel_id}"
        server = self._servers.get(channel_id)
        return name if server is None else f"{name} ({one_line(server, 60)})"

    def line(self, message: IndexedMessage, limit: int) -> str:
        """One message for the model: author, channel, time, text, jump link."""
        channel = self.channel_name(message.channel_id)
        author = one_line(message.author_name, 80)
        text = one_line(message.text, limit)
        return (
            f"- {author} in {channel} at {when(message.created_at)}: {text} <{jump_link(message)}>"
        )


def _strings(arguments: dict[str, Any]) -> dict[str, str]:
    """The model's arguments as text (None dropped): numbers and ids may come as either."""
    return {key: str(value) for key, value in arguments.items() if value is not None}
