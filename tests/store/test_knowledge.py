"""The knowledge index, on SQLite and PostgreSQL: upkeep, permission filter, odd queries,
ranking, reading windows and backfill progress."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import Backfill, IndexedMessage, Store, knowledge
from store.knowledge import parse_query

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
GUILD = 100
_ids = itertools.count(1_000)


def message(
    text: str,
    *,
    channel: int = 10,
    author: int = 1,
    parent: int | None = None,
    minutes: int | None = None,
    message_id: int | None = None,
) -> IndexedMessage:
    """A message; ids grow with time as Discord's snowflakes do."""
    number = next(_ids) if message_id is None else message_id
    at = START + dt.timedelta(minutes=number if minutes is None else minutes)
    return IndexedMessage(number, GUILD, channel, parent, author, f"user{author}", at, text)


async def found(store: Store, query: str, channels: list[int] | None = None, **kw) -> list[int]:
    hits = await store.search(query, channel_ids=channels or [10, 11, 12, 20, 21], **kw)
    return [hit.message.message_id for hit in hits]


async def test_a_message_round_trips_with_its_fields(store: Store) -> None:
    original = IndexedMessage(
        2**62 + 3, 2**61, 2**60, 2**59, 2**58, "Ana «🦜»", START, "tides at dawn 🌊 [file.pdf]"
    )
    await store.index_messages([original])
    (hit,) = await store.search("tides", channel_ids=[2**60])
    assert hit.message == original
    assert hit.rank > 0


async def test_an_edit_replaces_the_words(store: Store) -> None:
    first = message("the launch moves to tuesday")
    await store.index_messages([first])
    assert await found(store, "tuesday") == [first.message_id]
    edited = IndexedMessage(**{**_fields(first), "text": "the launch moves to thursday"})
    await store.index_messages([edited])
    assert await found(store, "tuesday") == []
    assert await found(store, "thursday") == [first.message_id]
    assert await found(store, "launch") == [first.message_id]  # one row, not two


async def test_an_edit_of_author_or_channel_moves_the_message_between_filters(
    store: Store,
) -> None:
    first = message("handover notes", author=1, channel=10)
    await store.index_messages([first])
    moved = IndexedMessage(**{**_fields(first), "author_id": 2, "channel_id": 11})
    await store.index_messages([moved])
    assert await found(store, "handover", author_id=1) == []
    assert await found(store, "handover", [10]) == []
    assert await found(store, "handover", [11], author_id=2) == [first.message_id]


async def test_a_forgotten_message_is_never_found_again(store: Store) -> None:
    kept, gone, also_gone = (message(f"incident report {n}") for n in range(3))
    await store.index_messages([kept, gone, also_gone])
    assert await store.forget_messages([gone.message_id, also_gone.message_id, 999_999]) == 2
    assert await found(store, "incident") == [kept.message_id]
    assert await store.forget_messages([]) == 0
    assert await store.around(10, gone.message_id, before=5, after=5) == [kept]


async def test_forget_channel_takes_its_threads_and_their_backfills(store: Store) -> None:
    in_channel = message("roadmap draft", channel=20)
    in_thread = message("roadmap thread reply", channel=21, parent=20)
    elsewhere = message("roadmap elsewhere", channel=10)
    await store.index_messages([in_channel, in_thread, elsewhere])
    for channel in (20, 21, 10):
        await store.save_backfill(Backfill(channel, GUILD, None, START, 0, False))
    assert await store.forget_channel(20) == 2
    assert await found(store, "roadmap") == [elsewhere.message_id]
    assert [b.channel_id for b in await store.backfills()] == [10]
    assert await store.forget_channel(20) == 0


async def test_forget_author_removes_exactly_their_messages_in_every_server(store: Store) -> None:
    mine = [message("my note", author=7), message("my other note", author=7, channel=12)]
    other = IndexedMessage(**{**_fields(message("my note too", author=7)), "guild_id": 5})
    theirs = message("their note", author=8)
    await store.index_messages([*mine, other, theirs])
    assert await store.forget_author(7) == 3
    assert await found(store, "note") == [theirs.message_id]


async def test_forget_author_records_who_asked_and_when(store: Store) -> None:
    """The keeper and the backfill read it after a restart (knowledge/keeper.py)."""
    assert await store.forgotten_authors() == {}
    await store.index_messages([message("an old note", author=7)])
    asked = START + dt.timedelta(days=3)
    assert await store.forget_author(7, asked) == 1
    assert await store.forgotten_authors() == {7: asked}
    later = asked + dt.timedelta(hours=1, microseconds=5)
    assert await store.forget_author(7, later) == 0  # asked again: from the latest time
    await store.forget_author(8, asked)
    assert await store.forgotten_authors() == {7: later, 8: asked}
    await store.forget_author(7, asked)  # an older request arriving late (another process)
    assert await store.forgotten_authors() == {7: later, 8: asked}  # the latest still holds


async def test_forget_older_than_is_retention(store: Store) -> None:
    old = message("release notes", minutes=0)
    new = message("release notes again", minutes=60 * 24 * 400)
    await store.index_messages([old, new])
    assert await store.forget_older_than(START + dt.timedelta(days=365)) == 1
    assert await found(store, "release") == [new.message_id]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    placed=st.lists(st.tuples(st.integers(1, 12), st.booleans()), min_size=1, max_size=30),
    readable=st.sets(st.integers(1, 12), max_size=12),
)
async def test_search_never_returns_a_message_outside_the_readable_channels(
    store: Store, placed: list[tuple[int, bool]], readable: set[int]
) -> None:
    marker = f"zq{next(_ids)}"  # a word of this example only: examples share the store
    messages = [
        message(f"{marker} status" if matches else "unrelated chatter", channel=channel)
        for channel, matches in placed
    ]
    await store.index_messages(messages)
    expected = {m.message_id for m in messages if m.channel_id in readable and "zq" in m.text}
    # A few channels go into SQLite's FTS query as tags too; many only through SQL.
    for allowed in (readable, readable | set(range(1000, 1000 + knowledge.TAGGED_CHANNELS))):
        hits = await store.search(marker, channel_ids=allowed, limit=100)
        assert {hit.message.message_id for hit in hits} == expected
    everything = await store.search("unrelated or status", channel_ids=readable, limit=1000)
    assert all(hit.message.channel_id in readable for hit in everything)


ODD_QUERIES = [
    "", " ", '"', '""', '"unterminated', "a\"b'c", "NEAR(a b, 2)", "NEAR", "AND", "OR", "NOT",
    "a AND", "OR b", "-", "--", "-deploy", "*", "dep*", "^start", "col:value", "text:deploy",
    "(", ")", "((a)", "{}", "[", "\\", "\x00", "🎉", "🎉 deploy", "日本語のテキスト", "naïve café",
    "Ω≈ç√∫", "zero\u200bwidth", "a" * 2000, "or or or", "the", "- - -", "'; DROP TABLE x; --",
    "$1 ?", ":memory:", "deploy OR", "OR OR deploy",
]  # fmt: skip


async def test_odd_query_text_never_raises(store: Store) -> None:
    await store.index_messages([message("deploy to café on friday")])
    for query in ODD_QUERIES:
        hits = await store.search(query, channel_ids=[10])
        assert all(hit.message.channel_id == 10 for hit in hits)
    assert await found(store, '"deploy to" OR NEAR') != []
    assert await found(store, "CAFÉ") != []  # case folded


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(max_size=40))
async def test_any_text_is_a_query(store: Store, query: str) -> None:
    await store.search(query, channel_ids=[10], author_id=1, after=START, before=START)


async def test_both_backends_split_words_at_the_same_characters(store: Store) -> None:
    # Emails, host names, URLs, versions and numbers are words split at their
    # punctuation on both backends, as parse_query splits the query.
    texts = {
        "email": "email bob@example.com about the v2.0 release",
        "url": "see https://example.com/path?x=1 now",
        "pi": "50% off, $100 price; 3.14 pi",
        "names": "snake_case_name and kebab-case-name",
        "book": "O'Reilly book",
    }
    ids = {key: next(_ids) for key in texts}
    await store.index_messages([message(t, message_id=ids[k]) for k, t in texts.items()])
    expected = {
        "bob@example.com": {"email"},
        "example.com": {"email", "url"},
        "v2.0": {"email"},
        "3.14": {"pi"},
        "$100": {"pi"},
        "https://example.com/path?x=1": {"url"},
        "snake_case_name": {"names"},
        "kebab-case-name": {"names"},
        "kebab": {"names"},
        "O'Reilly": {"book"},
        "path": {"url"},
    }
    for query, keys in expected.items():
        assert set(await found(store, query, limit=100)) == {ids[k] for k in keys}, query
    # PostgreSQL's 'english' index holds no stop words: a phrase of them alone is no
    # search on either backend; within a phrase they are kept where SQLite needs them.
    assert parse_query('"to be or not to be"') is None
    assert parse_query('"the who" -"of the"') is None
    await store.index_messages([message("to be or not to be", message_id=ids["book"] + 100)])
    assert await found(store, '"deploy to café" or "bob example"') == [ids["email"]]
    # Both fold accented Latin letters: "cafe" finds "Café", "Pokémon" finds "pokemon".
    accents = [message("Café Zürich at noon"), message("pokemon cards")]
    await store.index_messages(accents)
    assert await found(store, "cafe zurich") == [accents[0].message_id]
    assert await found(store, "CAFÉ") == [accents[0].message_id]
    assert await found(store, "Pokémon") == [accents[1].message_id]


async def test_ranking_puts_the_best_match_first(store: Store) -> None:
    weak = message("a long message that mentions the outage once among many other words here")
    strong = message("outage outage: outage review")
    both = message("database outage postmortem")
    await store.index_messages([weak, strong, both])
    hits = await store.search("outage", channel_ids=[10])
    assert hits[0].message.message_id == strong.message_id
    assert [h.rank for h in hits] == sorted((h.rank for h in hits), reverse=True)
    assert await found(store, "database outage") == [both.message_id]
    assert set(await found(store, "database or review")) == {both.message_id, strong.message_id}
    assert await found(store, "outage -database -review") == [weak.message_id]
    assert await found(store, '"outage review"') == [strong.message_id]


async def test_words_are_stemmed_and_stop_words_ignored_alike(store: Store) -> None:
    decided = message("we decided to ship the deployments")
    await store.index_messages([decided])
    assert await found(store, "decide deployment") == [decided.message_id]
    assert await found(store, "what did we decide about the shipping") == [decided.message_id]


async def test_filters_by_author_and_time_and_pages(store: Store) -> None:
    messages = [message(f"standup {n}", author=n % 2, minutes=n) for n in range(1, 8)]
    await store.index_messages(messages)
    by_one = await found(store, "standup", author_id=1, limit=100)
    assert sorted(by_one) == sorted(m.message_id for m in messages if m.author_id == 1)
    window = await found(
        store,
        "standup",
        after=START + dt.timedelta(minutes=3),
        before=START + dt.timedelta(minutes=6),
    )
    assert sorted(window) == [m.message_id for m in messages[2:5]]
    first = await found(store, "standup", limit=3)
    second = await found(store, "standup", limit=3, offset=3)
    assert len(first) == 3 and len(second) == 3 and not set(first) & set(second)
    assert await store.search("standup", channel_ids=[]) == []
    with pytest.raises(ValueError):
        await store.search("standup", channel_ids=[10], limit=-1)


async def test_a_wordless_query_finds_nothing_and_an_exclusion_always_excludes(
    store: Store,
) -> None:
    messages = [message(f"note {n}", minutes=n, message_id=n) for n in range(1, 6)]
    launch = message("launch day", minutes=6, message_id=6)
    await store.index_messages([*messages, launch])
    for query in ("🎉 the", "", "don't", '"the who"', "-launch", "-launch -note"):
        assert await store.search(query, channel_ids=[10], limit=3) == [], query
    assert await found(store, "note -launch", [10], limit=10) == [5, 4, 3, 2, 1]


async def test_a_common_word_ranks_only_the_newest_candidates(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(knowledge, "SEARCH_CANDIDATES", 3)
    best_but_old = message("sync sync sync sync", message_id=1, minutes=1)
    newer = [message(f"sync job {n}", message_id=n, minutes=n) for n in range(2, 7)]
    await store.index_messages([best_but_old, *newer])
    assert set(await found(store, "sync", limit=2)) <= {4, 5, 6}  # the 3 newest, ranked
    assert (await found(store, "sync", limit=10))[0] == 1  # asked for more: more are ranked
    assert await found(store, "sync", author_id=1, before=START + dt.timedelta(minutes=2)) == [1]


async def test_a_readable_match_is_found_however_common_its_word_is_elsewhere(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The floor (SEARCH_SCAN newest matches in the whole index) may only save work: a
    # page it leaves short is searched again in full, so a readable match a narrower
    # search finds is never hidden by other channels' traffic.
    monkeypatch.setattr(knowledge, "SEARCH_SCAN", 3)
    mine = message("rollout plan", channel=10, message_id=1, minutes=1)
    others = [message("rollout", channel=99, message_id=n, minutes=n) for n in range(2, 6)]
    await store.index_messages([mine, *others])
    many = [10, *range(1000, 1000 + knowledge.TAGGED_CHANNELS)]
    assert await found(store, "rollout", many, limit=1) == [1]
    assert await found(store, "rollout", many, limit=5) == [1]
    assert await found(store, "rollout", [10]) == [1]
    assert await found(store, "rollout plan", many) == [1]
    assert await found(store, "rollout", many, limit=1, offset=1) == []


async def test_the_floor_never_hides_a_match_with_the_real_bounds(store: Store) -> None:
    mine = message("rollout plan for the mobile app", channel=10, message_id=1, minutes=1)
    others = [
        message(f"rollout step {n}", channel=99, message_id=n, minutes=n)
        for n in range(2, 2 + knowledge.SEARCH_SCAN + 1)
    ]
    await store.index_messages([mine, *others])
    many = [10, *range(1000, 1000 + knowledge.TAGGED_CHANNELS)]
    assert await found(store, "rollout", [10]) == [1]
    assert await found(store, "rollout", many) == [1]


async def test_around_and_recent_windows(store: Store) -> None:
    messages = [message(f"m{n}", minutes=n, message_id=n) for n in range(1, 11)]
    other = message("other channel", channel=11, message_id=50)
    await store.index_messages([*messages, other])
    ids = [m.message_id for m in await store.around(10, 5, before=2, after=3)]
    assert ids == [3, 4, 5, 6, 7, 8]
    assert [m.message_id for m in await store.around(10, 1, before=2, after=1)] == [1, 2]
    await store.forget_messages([5])
    assert [m.message_id for m in await store.around(10, 5, before=1, after=1)] == [4, 6]
    assert [m.message_id for m in await store.recent(10, limit=3)] == [8, 9, 10]
    assert [m.message_id for m in await store.recent(10, limit=3, before_id=8)] == [4, 6, 7]
    after = START + dt.timedelta(minutes=9)
    assert [m.message_id for m in await store.recent(10, limit=5, after=after)] == [9, 10]
    assert await store.recent(99, limit=5) == []


async def test_backfill_progress_is_saved_and_resumed(store: Store) -> None:
    started = Backfill(10, GUILD, None, START, 0, False)
    await store.save_backfill(started)
    await store.save_backfill(Backfill(11, GUILD, None, START, 0, False))
    assert await store.backfills() == [started, Backfill(11, GUILD, None, START, 0, False)]
    progressed = Backfill(10, GUILD, 2**62, START, 300, False)
    await store.save_backfill(progressed)
    done = Backfill(11, GUILD, 77, START, 12, True)
    await store.save_backfill(done)
    assert await store.backfills() == [progressed]
    assert await store.backfills(unfinished_only=False) == [progressed, done]
    await store.forget_backfill(10)
    await store.forget_backfill(10)
    assert await store.backfills(unfinished_only=False) == [done]


async def test_many_messages_index_in_one_call(store: Store) -> None:
    batch = [message(f"bulk {n} item", channel=10 + n % 3, message_id=n + 1) for n in range(500)]
    await store.index_messages(batch)
    await store.index_messages(batch)  # replayed: still one row each
    assert len(await found(store, "bulk", limit=1000)) == 500
    await store.index_messages([])


def test_parse_query_reads_a_person_s_words_as_websearch_does() -> None:
    assert parse_query("") is None
    assert parse_query('"" 🎉 ** the of') is None
    assert parse_query("-deploy") is None
    parsed = parse_query('Deploy "on Friday" or monday -staging NEAR(x)')
    assert parsed is not None
    assert parsed.groups == ((("deploy",),), (("on", "friday"), ("monday",)), (("near", "x"),))
    assert parsed.excluded == (("staging",),)
    assert parsed.fts5() == (
        'text : ((("deploy") AND ("on friday" OR "monday") AND ("near x")) NOT "staging")'
    )
    assert parsed.fts5([["a7"], ["c1", "c2"]]).endswith(
        ' NOT "staging") AND tags : ("a7") AND tags : ("c1" OR "c2")'
    )
    assert parsed.websearch() == '"deploy" "on friday" or "monday" "near x" -"staging"'


def _fields(m: IndexedMessage) -> dict[str, object]:
    return {name: getattr(m, name) for name in IndexedMessage.__slots__}
