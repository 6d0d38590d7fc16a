"""The knowledge tools (knowledge/tools.py) over the real store, SQLite and PostgreSQL: they
read only the answer's allowed channels, and anything else reads as not found."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from knowledge.tools import NOT_FOUND, Audience, KnowledgeTools, jump_link
from store import Store
from store.knowledge import IndexedMessage

GUILD = 900
PUBLIC, STAFF, THREAD = 10, 20, 11
NAMES = {PUBLIC: "general", STAFF: "staff", THREAD: "a thread"}
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
_ids = itertools.count(5_000)


def message(
    text: str, channel: int = PUBLIC, author: int = 1, name: str = "Alice"
) -> IndexedMessage:
    number = next(_ids)
    at = START + dt.timedelta(hours=number - 5_000)
    parent = PUBLIC if channel == THREAD else None
    return IndexedMessage(number, GUILD, channel, parent, author, name, at, text)


def toolbox(store: Store, allowed: set[int], home: int | None = PUBLIC) -> KnowledgeTools:
    async def compute() -> set[int]:
        calls.append(1)
        return allowed

    calls: list[int] = []
    tools = KnowledgeTools(store, Audience(compute, NAMES.get, home))
    tools.calls = calls  # type: ignore[attr-defined]
    return tools


@pytest.fixture
async def indexed(store: Store) -> dict[str, IndexedMessage]:
    messages = {
        "deploy": message("we decided to deploy on Fridays after the freeze"),
        "secret": message("the salary review and the deploy budget", STAFF, 2, "Carol"),
        "thread": message("deploy checklist lives in the wiki", THREAD, 3, "Zoë 🌟"),
        "long": message("lunch " + "word " * 400),
    }
    await store.index_messages(list(messages.values()))
    return messages


async def test_search_finds_only_allowed_channels_with_links(store, indexed) -> None:
    tools = toolbox(store, {PUBLIC, THREAD})
    result = await tools.call("search_messages", {"query": "deploy"})
    assert not result.is_error
    assert jump_link(indexed["deploy"]) in result.text
    assert jump_link(indexed["thread"]) in result.text
    assert "salary" not in result.text and str(indexed["secret"].message_id) not in result.text
    line = next(x for x in result.text.splitlines() if "Fridays" in x)
    assert line.startswith("- Alice in #general at ")
    assert indexed["deploy"].created_at.strftime("%Y-%m-%dT%H:%M:%SZ") in line
    assert f"https://discord.com/channels/{GUILD}/{PUBLIC}/{indexed['deploy'].message_id}" in line
    # Only the staff words: nothing, exactly as for words nobody wrote.
    nothing = await tools.call("search_messages", {"query": "salary"})
    assert nothing.text == (await tools.call("search_messages", {"query": "zebra"})).text
    assert tools.calls == [1]  # the allowed set is computed once per answer


async def test_staff_see_the_staff_channel(store, indexed) -> None:
    tools = toolbox(store, {PUBLIC, STAFF, THREAD})
    result = await tools.call("search_messages", {"query": "salary", "channel": "#staff"})
    assert jump_link(indexed["secret"]) in result.text and "Carol in #staff" in result.text


async def test_a_hidden_channel_reads_as_one_that_does_not_exist(store, indexed) -> None:
    tools = toolbox(store, {PUBLIC})
    results = [
        await tools.call("search_messages", {"query": "deploy", "channel": channel})
        for channel in ("staff", str(STAFF), f"<#{STAFF}>", "nowhere", "12345")
    ]
    assert all(r.is_error and "No channel" in r.text for r in results)
    assert "salary" not in "".join(r.text for r in results)
    hidden = await tools.call("read_around", {"message": jump_link(indexed["secret"])})
    missing = jump_link(message("never indexed"))
    assert hidden.text == NOT_FOUND == (await tools.call("read_around", {"message": missing})).text
    read = await tools.call("read_channel", {"channel": str(STAFF)})
    assert read.is_error and "salary" not in read.text


async def test_filters_by_author_and_dates(store, indexed) -> None:
    tools = toolbox(store, {PUBLIC, STAFF, THREAD})
    by_id = await tools.call("search_messages", {"query": "deploy", "author": "3"})
    assert "checklist" in by_id.text and "Fridays" not in by_id.text
    by_name = await tools.call("search_messages", {"query": "deploy", "author": "@zoë"})
    assert "checklist" in by_name.text and "Fridays" not in by_name.text
    day = indexed["thread"].created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    after = await tools.call("search_messages", {"query": "deploy", "after": day})
    assert "checklist" in after.text and "Fridays" not in after.text
    before = await tools.call("search_messages", {"query": "deploy", "before": day})
    assert "Fridays" in before.text and "checklist" not in before.text
    bad = await tools.call("search_messages", {"query": "deploy", "after": "last week"})
    assert bad.is_error and "not a date" in bad.text


async def test_read_around_and_read_channel_page_back(store, indexed) -> None:
    tools = toolbox(store, {PUBLIC, THREAD})
    around = await tools.call("read_around", {"message": jump_link(indexed["deploy"])})
    assert "→ - Alice" in around.text and "lunch" in around.text
    assert len(around.text) < 2_000  # long texts are shortened
    by_id = await tools.call("read_around", {"message": str(indexed["deploy"].message_id)})
    assert by_id.text == around.text  # a bare id is looked for where the question was asked
    await store.index_messages([message(f"note {n}") for n in range(25)])
    page = await tools.call("read_channel", {})
    assert page.text.startswith("20 messages, oldest first") and "note 24" in page.text
    oldest = page.text.rsplit("before=", 1)[1].rstrip(".)")
    older = await tools.call("read_channel", {"channel": "general", "before": oldest})
    assert "note 4" in older.text and "note 24" not in older.text and "Fridays" in older.text


async def test_bad_calls_are_errors_for_the_model(store, indexed) -> None:
    tools = toolbox(store, {PUBLIC}, home=None)
    assert (await tools.call("search_messages", {"query": "  "})).is_error
    assert (await tools.call("search_messages", {"words": "deploy"})).is_error
    assert (await tools.call("read_channel", {})).is_error  # a DM has no "here"
    assert (await tools.call("nope", {})).is_error
    await store.close()
    failed = await tools.call("search_messages", {"query": "deploy"})
    assert failed.is_error and "could not be read" in failed.text


async def test_across_servers_results_name_the_server_and_a_shared_name_is_asked(
    store, indexed
) -> None:
    far_general, far_guild = 30, GUILD + 1
    far = IndexedMessage(
        next(_ids), far_guild, far_general, None, 4, "Dan", START, "the deploy is cancelled"
    )
    await store.index_messages([far])
    servers = {PUBLIC: (GUILD, "Home"), THREAD: (GUILD, "Home"), far_general: (far_guild, "Far")}
    names = {**NAMES, far_general: "general"}

    async def both() -> set[int]:
        return {PUBLIC, THREAD, far_general}

    tools = KnowledgeTools(store, Audience(both, names.get, None, servers.get))
    result = await tools.call("search_messages", {"query": "deploy"})
    assert "Dan in #general (Far) at " in result.text
    assert "Alice in #general (Home) at " in result.text
    assert "in #a thread (Home) at " in result.text
    ambiguous = await tools.call("search_messages", {"query": "deploy", "channel": "general"})
    assert ambiguous.is_error and "#general (Home)" in ambiguous.text
    assert "#general (Far)" in ambiguous.text
    assert str(PUBLIC) in ambiguous.text and str(far_general) in ambiguous.text
    chosen = await tools.call("search_messages", {"query": "deploy", "channel": str(far_general)})
    assert "cancelled" in chosen.text and "Fridays" not in chosen.text
    # Within one server, the server goes unsaid.
    home = toolbox(store, {PUBLIC, THREAD})
    home.audience.server = servers.get
    assert "Alice in #general at " in (await home.call("search_messages", {"query": "deploy"})).text


async def test_out_of_range_arguments_are_argument_errors(store, indexed, caplog) -> None:
    tools = toolbox(store, {PUBLIC, THREAD})
    huge = "99999999999999999999"  # 20 digits: past any snowflake (64 bits)
    link = f"https://discord.com/channels/{GUILD}/{PUBLIC}/{huge}"
    calls = [
        ("search_messages", {"query": "deploy", "after": "0001-01-01T00:00:00+01:00"}, "after"),
        ("search_messages", {"query": "deploy", "before": "9999-12-31T23:59:59-05:00"}, "before"),
        ("search_messages", {"query": "deploy", "page": int(huge)}, "page"),
        ("search_messages", {"query": "deploy", "page": "-3"}, "page"),
        ("search_messages", {"query": "deploy", "page": "two"}, "page"),
        ("search_messages", {"query": "deploy", "author": huge}, "author"),
        ("search_messages", {"query": "deploy", "channel": huge}, huge),
        ("read_around", {"message": huge}, "message"),
        ("read_around", {"message": link}, "message"),
        ("read_channel", {"before": huge}, "before"),
        ("read_channel", {"before": "9" * 5000}, "before"),
        ("read_around", {"message": f"https://discord.com/channels/1/{'9' * 5000}/2"}, "message"),
        ("search_messages", {"query": "deploy", "page": "²"}, "page"),
        ("search_messages", {"query": "deploy", "author": "9" * 5000}, "author"),
    ]
    for name, arguments, named in calls:
        result = await tools.call(name, arguments)
        assert result.is_error, arguments
        assert "could not be read" not in result.text and named in result.text, result.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    schema = tools.tools()[0].parameters["properties"]["page"]
    assert schema["maximum"] == 100
    last = await tools.call("search_messages", {"query": "deploy", "page": 100})
    assert not last.is_error and last.text == "No more results."


async def test_a_query_with_no_searchable_word_says_so(store, indexed) -> None:
    # Emoji, stop words, "don't" (don + t), a phrase of stop words: nothing to look for,
    # which the model is told, instead of the newest messages passed off as matches.
    tools = toolbox(store, {PUBLIC, THREAD})
    for query in ("🎉", "don't", "the who", '"to be or not to be"', "-deploy", "-deploy -lunch"):
        result = await tools.call("search_messages", {"query": query})
        assert result.is_error, query
        assert "no searchable words" in result.text and "read_channel" in result.text
        assert "Fridays" not in result.text and "checklist" not in result.text
    excluded = await tools.call("search_messages", {"query": "-deploy"})
    assert "only excludes" in excluded.text


def test_the_tools_are_read_only_and_ask_for_links() -> None:
    tools = KnowledgeTools(None, Audience(set, NAMES.get))  # type: ignore[arg-type]
    assert {t.name for t in tools.tools()} == {"search_messages", "read_around", "read_channel"}
    for tool in tools.tools():
        assert not tool.needs_approval
        assert (
            "jump link" in tool.description and "https://discord.com/channels/" in tool.description
        )
