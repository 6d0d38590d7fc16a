"""The pure rules of keeping the knowledge index: which messages count, their text, the
setting, the backfill's paging and progress, and the keeper's queue over the real store
(SQLite; the index itself is tested on both backends in tests/store)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import load_settings
from conversation.channel_settings import Place, knowledge_place, parse, resolve, show
from knowledge import keeper as keeper_module
from knowledge.backfill import Progress, next_point
from knowledge.indexing import ATTACHED, is_kept, readable_text
from knowledge.keeper import Keeper
from store import Store, StoreError
from store.knowledge import IndexedMessage
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 - fixtures

SETTINGS = load_settings({"DISCORD_BOT_TOKEN": "x", "OPENAI_API_KEY": "sk"})
ME = 99
NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)


def test_knowledge_is_off_by_default_and_set_per_server_or_channel() -> None:
    effective = resolve(SETTINGS, [])
    assert effective.knowledge is False and effective.sources["knowledge"] == "default"
    layers = [("server default", {"knowledge": "on"}), ("parent channel", {}), ("this thread", {})]
    effective = resolve(SETTINGS, layers)
    assert (effective.knowledge, effective.sources["knowledge"]) == (True, "server default")
    layers = [("server default", {"knowledge": "on"}), ("this channel", {"knowledge": "off"})]
    assert resolve(SETTINGS, layers).knowledge is False
    assert "**Knowledge:** `off` (this channel)" in show(resolve(SETTINGS, layers))
    assert parse("knowledge", " ON ") == "on"
    with pytest.raises(ValueError, match="knowledge is one of on, off"):
        parse("knowledge", "yes")


def test_knowledge_is_set_for_a_channel_from_its_threads_and_never_in_a_dm() -> None:
    channel, thread, dm = Place(1, 2), Place(1, 3, parent_id=2), Place(None, 9)
    assert knowledge_place(channel) == channel
    assert knowledge_place(thread) == channel  # a thread or forum post follows its channel
    assert knowledge_place(dm) is None


def author(user_id: int, *, bot: bool = False) -> SimpleNamespace:
    return SimpleNamespace(id=user_id, bot=bot)


def kept(**facts: object) -> bool:
    base: dict[str, object] = dict(
        in_server=True, is_chat=True, author=author(1), webhook=False, silent=False, me_id=ME
    )
    return is_kept(**{**base, **facts})  # type: ignore[arg-type]


def test_people_and_this_bots_answers_count_other_bots_webhooks_and_system_do_not() -> None:
    assert kept()
    assert kept(silent=True)  # a person's silent message is still theirs
    assert kept(author=author(ME, bot=True))  # the bot's own answer
    assert not kept(author=author(ME, bot=True), silent=True)  # its notices are silent
    assert not kept(author=author(5, bot=True))  # another bot
    assert not kept(webhook=True)
    assert not kept(is_chat=False)  # a join, a pin
    assert not kept(in_server=False)  # a DM


def test_the_text_is_the_words_then_forwards_then_the_attachment_names() -> None:
    assert readable_text(" hello @Alice ", [], []) == "hello @Alice"
    text = readable_text("see this", ["the build is red"], ["log.txt", "shot.png"])
    assert text == f"see this\nthe build is red\n{ATTACHED} log.txt, shot.png"
    assert readable_text("", ["forwarded only"], []) == "forwarded only"
    assert readable_text("", [], ["roadmap.pdf"]) == f"{ATTACHED} roadmap.pdf"
    assert readable_text("  ", [" "], []) == ""  # a sticker alone: nothing to index


def test_a_page_of_history_gives_the_next_point_and_what_is_recent_enough() -> None:
    since = NOW - dt.timedelta(days=90)
    full = [(1000 - n, NOW - dt.timedelta(hours=n)) for n in range(100)]
    assert next_point(full, since) == (901, False, 100)
    past = [(1000 - n, NOW - dt.timedelta(days=50 + n)) for n in range(100)]
    assert next_point(past, since) == (901, True, 41)  # days 50..90 kept, then done
    assert next_point(full[:30], since) == (971, True, 30)  # a short page: the start
    assert next_point([], since) == (None, True, 0)


@given(st.lists(st.integers(0, 200), max_size=120))
def test_next_point_keeps_exactly_the_newest_messages_within_the_span(ages: list[int]) -> None:
    ages = sorted(ages)  # newest first: ages grow
    page = [(10_000 - n, NOW - dt.timedelta(days=age)) for n, age in enumerate(ages)]
    since = NOW - dt.timedelta(days=90)
    point, done, keep = next_point(page, since)
    assert keep == sum(1 for age in ages if age <= 90)
    assert all(when >= since for _, when in page[:keep])
    assert done == (len(page) < 100 or keep < len(page))
    assert point == (page[-1][0] if page else None)


def test_progress_reads_as_the_admin_sees_it() -> None:
    progress = Progress(channels=12, done=3, messages=4200)
    assert progress.line() == "Reading history: 3 of 12 channels, 4,200 messages"
    progress.finished = True
    assert progress.line() == "Read the history: 12 channels, 4,200 messages."
    assert Progress(channels=1, done=0).line() == "Reading history: 0 of 1 channel, 0 messages"


class Index:
    """The real store (SQLite in a temporary folder), with a switch that makes its
    writes fail as a database that stopped answering does (StoreError)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failing = False
        self.writes: list[int] = []  # messages per index_messages call

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.failing:
                raise StoreError(f"{name}: the database is not answering")
            if name == "index_messages":
                self.writes.append(len(args[0]))
            return await method(*args, **kwargs)

        return call

    async def held(self) -> dict[int, IndexedMessage]:
        found = {}
        for channel_id in (10, 11, 20, 30, 31):
            for m in await self.store.recent(channel_id, limit=1000):
                found[m.message_id] = m
        return found


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[Index]:
    store = await Store.open(str(tmp_path / "bot.db"))
    yield Index(store)
    await store.close()


def message(message_id: int, channel_id: int = 10, parent_id: int | None = None, **kw: object):
    fields: dict[str, object] = dict(
        message_id=message_id, guild_id=1, channel_id=channel_id, parent_id=parent_id,
        author_id=5, author_name="Alice", created_at=NOW, text=f"words {message_id}",
    )  # fmt: skip
    return IndexedMessage(**{**fields, **kw})  # type: ignore[arg-type]


def keeper(index: Index, on: Collection[int] = (10, 20), batch: int = 200) -> Keeper:
    async def knowledge_on(place: Place) -> bool:
        return place.channel_id in on or place.parent_id in on

    return Keeper(index, knowledge_on, lambda: ME, batch=batch)  # type: ignore[arg-type]


async def test_the_queue_is_written_in_batches_only_where_knowledge_is_on(index: Index) -> None:
    kept = keeper(index, batch=3)
    for n in range(7):
        kept.queue(message(n))
    kept.queue(message(50, channel_id=30))  # knowledge off there
    kept.queue(message(60, channel_id=31, parent_id=20))  # a thread of a channel where on
    kept.queue(None)
    await kept.flush()
    assert sorted(await index.held()) == [0, 1, 2, 3, 4, 5, 6, 60]
    assert index.writes == [3, 3, 2]
    kept.queue(message(3, text="new words"))  # an edit replaces the text
    await kept.flush()
    assert (await index.held())[3].text == "new words"


async def test_a_deleted_message_is_never_written_or_found_and_a_backfill_cannot_restore_it(
    index: Index,
) -> None:
    kept = keeper(index)
    kept.queue(message(1))
    kept.queue(message(2))
    kept.deleted([1])  # still queued: never written
    await kept.flush()
    assert sorted(await index.held()) == [2]
    kept.deleted([2])
    await kept.flush()
    assert await index.held() == {}
    assert await kept.write([message(1), message(2), message(3)]) == 1  # a stale page
    assert sorted(await index.held()) == [3]
    kept.queue(message(2))  # a late event for a deleted message
    await kept.flush()
    assert sorted(await index.held()) == [3]


async def test_a_deleted_channel_takes_its_threads_and_queued_messages(index: Index) -> None:
    kept = keeper(index)
    for n, (channel, parent) in enumerate([(10, None), (11, 10), (20, None)]):
        kept.queue(message(n, channel, parent))
    await kept.flush()
    kept.queue(message(7, 11, 10))
    kept.channel_deleted(10)
    await kept.flush()
    assert sorted(await index.held()) == [2]


async def test_nothing_of_a_deleted_channel_or_thread_is_written_later(index: Index) -> None:
    kept = keeper(index)
    kept.channel_deleted(11)  # a thread of channel 10
    kept.channel_deleted(20)  # a channel, with its threads
    await kept.flush()
    # A backfill page read before the deletions, written after them: none of it lands.
    page = [message(1, 11, 10), message(2, 20), message(3, 31, 20), message(4, 10)]
    assert await kept.write(page) == 1
    assert kept.channel_gone(11, 10) and kept.channel_gone(31, 20)
    assert not kept.channel_gone(10, None)
    for late in page:  # late events (an edit, a new message) are dropped too
        kept.queue(late)
    await kept.flush()
    assert sorted(await index.held()) == [4]


async def test_a_failed_deletion_is_tried_again_and_a_failed_write_dropped(index: Index) -> None:
    kept = keeper(index)
    kept.queue(message(1))
    await kept.flush()
    index.failing = True
    kept.deleted([1])
    kept.queue(message(2))
    await kept.flush()  # logged, not raised
    index.failing = False
    await kept.flush()
    assert await index.held() == {}


async def test_forgetting_a_person_drops_their_queued_messages_first(index: Index) -> None:
    kept = keeper(index)
    kept.queue(message(1, author_id=7))
    kept.queue(message(2, author_id=8))
    await kept.settle_author(7)
    assert sorted(await index.held()) == [2]
    # A backfill page read afterwards brings back none of what they had written...
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    old, new = message(3, author_id=7), message(4, author_id=7, created_at=later)
    assert await kept.write([old, new, message(5, author_id=8)]) == 2
    assert sorted(await index.held()) == [2, 4, 5]  # ...but what they write next is kept


async def test_a_forgotten_person_stays_forgotten_after_a_restart(index: Index) -> None:
    kept = keeper(index)
    kept.queue(message(1, author_id=7))
    await kept.flush()
    assert await kept.forget_author(7) == 1
    await kept.close()
    restarted = keeper(index)  # knows of the forgetting from the store alone
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    old, new = message(3, author_id=7), message(4, author_id=7, created_at=later)
    assert await restarted.write([old, new, message(5, author_id=8)]) == 2  # a backfill page
    restarted.queue(message(6, author_id=7))  # an old message of theirs, edited
    await restarted.flush()
    assert sorted(await index.held()) == [4, 5]


async def test_retention_forgets_what_is_older_than_the_setting(index: Index) -> None:
    kept = keeper(index)
    kept.queue(message(1, created_at=NOW - dt.timedelta(days=400)))
    kept.queue(message(2, created_at=NOW - dt.timedelta(days=10)))
    await kept.flush()
    assert await kept.forget_old(365, now=NOW) == 1
    assert sorted(await index.held()) == [2]


async def test_the_background_writer_flushes_soon_and_at_close(index: Index) -> None:
    kept = Keeper(index, lambda place: _true(), lambda: ME, flush_seconds=0.05)  # type: ignore[arg-type]
    kept.start(365)
    kept.queue(message(1))
    for _ in range(100):
        if await index.held():
            break
        await asyncio.sleep(0.01)
    assert sorted(await index.held()) == [1]
    kept.queue(message(2))
    await kept.close()
    assert sorted(await index.held()) == [1, 2]


async def _true() -> bool:
    return True


async def test_a_forget_me_made_through_another_process_reaches_this_one(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes on one PostgreSQL: a person forgotten through one is not indexed
    again by the other's backfill page or edit, once its list is read again."""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    monkeypatch.setattr(keeper_module, "FORGOTTEN_READ_SECONDS", 0.0)
    url = server.create_database()
    first, second = await Store.open(url), await Store.open(url)
    try:
        here, there = keeper(Index(first)), keeper(Index(second))
        assert await here.write([message(1, author_id=8)]) == 1  # `here` has read the list
        assert await there.forget_author(7) == 0  # through the other process
        assert await here.write([message(2, author_id=7), message(3, author_id=8)]) == 1
        here.queue(message(4, author_id=7))  # an old message of theirs, edited
        await here.flush()
        assert sorted(await Index(first).held()) == [1, 3]
        await here.close()
        await there.close()
    finally:
        await first.close()
        await second.close()
        server.drop_database(url.rsplit("/", 1)[1])


async def test_close_ends_the_writer_when_a_wake_up_races_the_cancellation(index: Index) -> None:
    # The writer's wake-up completing in the same loop turn as close()'s cancel once
    # swallowed the cancellation (Python 3.11's wait_for), so close() never returned.
    kept = keeper(index)
    kept.start(retention_days=30)
    await asyncio.sleep(0.05)  # the writer waits for its wake-up
    kept.deleted([1])  # sets the wake-up ...
    closing = asyncio.create_task(kept.close())  # ... and cancels the writer in the same turn
    done, _ = await asyncio.wait([closing], timeout=5)  # (a timeout that cancels: swallowed)
    assert closing in done
