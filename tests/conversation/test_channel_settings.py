"""The pure rules of settings per channel and of usage reports, and the cache's fallback."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import load_settings
from conversation.channel_settings import (
    CACHE_LIMIT,
    MAX_CHOICE_LENGTH,
    MAX_SUGGESTIONS,
    ChannelSettings,
    Place,
    model_suggestions,
    parse,
    persona_refusal,
    reply_to_refusal,
    resolve,
    show,
)
from conversation.usage import Prices, UsageLedger, personal_report, usage_csv
from discord_side.permissions import change_refusal
from store import Scope, Store, Totals, UsageRow, UserTotals

SETTINGS = load_settings({"DISCORD_BOT_TOKEN": "x", "OPENAI_API_KEY": "sk"})


def test_a_thread_inherits_its_parent_over_the_server_over_the_environment() -> None:
    chain = Place(guild_id=1, channel_id=3, parent_id=2).chain()
    assert [scope for scope, _ in chain] == [
        Scope("guild", 1),
        Scope("channel", 2),
        Scope("channel", 3),
    ]
    assert Place(None, 9).chain() == [(Scope("dm", 9), "this DM")]
    layers = [
        ("server default", {"model": "gpt-4o", "reply_to": "mention"}),
        ("parent channel", {"model": "o3", "streaming": "off", "reply_to": "sometimes"}),
        ("this thread", {}),
    ]
    effective = resolve(SETTINGS, layers)
    assert (effective.model, effective.reply_to, effective.streaming) == ("o3", "mention", False)
    assert effective.persona == SETTINGS.system_prompt and effective.reasoning_effort is None
    assert dict(effective.sources) == {
        "persona": "environment (SYSTEM_PROMPT)",
        "model": "parent channel",
        "reply_to": "server default",  # the parent's value is not a valid one
        "reasoning_effort": "not set",
        "streaming": "parent channel",
        "tools": "default",
        "knowledge": "default",
    }


def test_tools_are_on_by_default_and_the_most_specific_scope_turns_them_off_or_on() -> None:
    assert resolve(SETTINGS, []).tools is True
    layers = [("server default", {"tools": "off"}), ("this channel", {})]
    effective = resolve(SETTINGS, layers)
    assert (effective.tools, effective.sources["tools"]) == (False, "server default")
    layers = [("server default", {"tools": "off"}), ("this channel", {"tools": "on"})]
    assert resolve(SETTINGS, layers).tools is True
    # A stored value this bot cannot read is skipped, as for every setting.
    assert resolve(SETTINGS, [("this channel", {"tools": "maybe"})]).tools is True
    assert parse("tools", " OFF ") == "off"
    with pytest.raises(ValueError, match="tools is one of on, off"):
        parse("tools", "sometimes")
    assert "**Tools:** `off` (server default)" in show(effective := resolve(SETTINGS, layers[:1]))
    assert effective.tools is False


@pytest.mark.parametrize("mode", ["all", "mention", "thread", "mention-thread"])
def test_every_reply_mode_is_kept_as_set_and_inherited(mode: str) -> None:
    effective = resolve(SETTINGS, [("parent channel", {"reply_to": mode}), ("this thread", {})])
    assert (effective.reply_to, effective.sources["reply_to"]) == (mode, "parent channel")
    environment = load_settings({"DISCORD_BOT_TOKEN": "x", "OPENAI_API_KEY": "s", "REPLY_TO": mode})
    assert resolve(environment, []).reply_to == mode


def test_thread_modes_are_refused_where_no_thread_can_start() -> None:
    channel, thread, dm = Place(1, 2), Place(1, 3, parent_id=2), Place(None, 9)
    for mode in ("thread", "mention-thread"):
        assert reply_to_refusal(mode, channel, "channel") is None
        assert reply_to_refusal(mode, thread, "server") is None  # the server's default
        assert reply_to_refusal(mode, dm, "channel") == (
            "There are no threads in a DM: choose all or mention here."
        )
        assert reply_to_refusal(mode, thread, "channel") == (
            "A thread can't start threads: set this mode on its channel (its threads "
            "inherit it), or choose all or mention for this thread."
        )
    for mode in ("all", "mention"):
        assert {reply_to_refusal(mode, p, "channel") for p in (channel, thread, dm)} == {None}


def test_who_may_change_what() -> None:
    def refusal(target, **kw):
        flags = {"in_dm": False, "is_admin": False, "manage_channels": False, "manage_guild": False}
        return change_refusal(target, **(flags | kw))

    assert "Manage Channels" in refusal("channel", manage_guild=True)
    assert refusal("channel", manage_channels=True) is None
    assert "Manage Server" in refusal("server", manage_channels=True)
    assert refusal("server", is_admin=True) is None
    assert refusal("channel", in_dm=True) is None
    assert refusal("server", in_dm=True).startswith("There is no server here")


def test_a_persona_may_use_half_the_prompt_budget() -> None:
    assert persona_refusal(1536, 3072) is None
    assert persona_refusal(1537, 3072) == (
        "That persona is 1,537 tokens; a persona may use at most 1,536 of the 3,072-token "
        "prompt budget, so the conversation keeps room. Shorten it."
    )


def test_reports_and_csv() -> None:
    totals = UserTotals(Totals(1000, 500, 2), Totals(1000, 500, 2), Totals(3000, 1500, 5))
    text = personal_report(totals, Prices(2.0, 8.0))
    assert "**Today:** 1,500 tokens (1,000 in, 500 out), 2 answers, cost 0.0060" in text
    assert "cost" not in personal_report(totals, None)
    assert usage_csv([]).decode() == (
        "day,user_id,guild_id,channel_id,model,prompt_tokens,completion_tokens,answers,"
        "cached_tokens\n"
    )
    # Cached prompt tokens are shown, and priced at their own price when it is set.
    cached = UserTotals(*[Totals(1000, 500, 2, cached_tokens=800)] * 3)
    assert "**Today:** 1,500 tokens (1,000 in, 800 of them cached, 500 out), 2 answers, " in (
        personal_report(cached, Prices(2.0, 8.0))
    )
    assert "cost 0.0060" in personal_report(cached, Prices(2.0, 8.0))  # billed as input
    # 200 x 2.0 + 800 x 0.2 + 500 x 8.0 per million
    assert "cost 0.0046" in personal_report(cached, Prices(2.0, 8.0, 0.2))


def break_table(path: Path, table: str, away: bool) -> None:
    with sqlite3.connect(path) as db:
        old, new = (table, f"{table}_away") if away else (f"{table}_away", table)
        db.execute(f"ALTER TABLE {old} RENAME TO {new}")


async def test_settings_come_from_the_last_good_read_while_the_database_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bot.db"
    store = await Store.open(str(path))
    clock = [0.0]
    settings = ChannelSettings(store, SETTINGS, ttl=10, clock=lambda: clock[0])
    place = Place(1, 2)
    await settings.change(Scope("channel", 2), "model", "o3", by=7)
    assert (await settings.effective(place)).model == "o3"
    break_table(path, "settings", away=True)
    clock[0] = 60.0  # the cache is stale: it reads, fails, and keeps the last good read
    assert (await settings.effective(place)).model == "o3"
    assert "using the last good read" in caplog.text
    break_table(path, "settings", away=False)
    await store.close()


async def test_the_cache_does_not_grow_with_every_channel_seen(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "bot.db"))
    clock = [0.0]
    settings = ChannelSettings(store, SETTINGS, ttl=10, clock=lambda: clock[0])
    await settings.change(Scope("channel", 2), "model", "o3", by=7)
    for channel in range(CACHE_LIMIT):  # a crowd of DMs, each its own scope
        await settings.effective(Place(None, 1_000 + channel))
    # The cache has no public view: its size, under test, is read from the private table.
    assert len(settings._read) > CACHE_LIMIT // 2
    clock[0] = 60.0  # all of those are now stale
    assert (await settings.effective(Place(1, 2))).model == "o3"  # read again, still right
    assert len(settings._read) <= 3  # the server, the channel, and nothing else kept
    await store.close()


async def test_usage_is_counted_in_memory_until_the_database_answers(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = await Store.open(str(path))
    ledger = UsageLedger(store, retry_seconds=0.05)
    break_table(path, "usage", away=True)
    ledger.record(
        user_id=5, guild_id=1, channel_id=2, model="m", prompt_tokens=10, completion_tokens=3
    )
    ledger.record(
        user_id=5, guild_id=1, channel_id=2, model="m", prompt_tokens=20, completion_tokens=4
    )
    today = dt.datetime.now(dt.UTC).date()
    assert ledger.unwritten_tokens(5, today) == 37
    break_table(path, "usage", away=False)
    await ledger.flush()
    assert await store.tokens_on_day(5, today) == 37
    assert (await store.user_totals(5)).today.answers == 2
    await ledger.close()
    await store.close()


class CountingStore(Store):
    """The real store, noting how many rows each record_usage transaction carried."""

    batches: list[int]

    async def record_usage(self, rows: Sequence[UsageRow]) -> None:
        self.batches.append(len(rows))
        await super().record_usage(rows)


async def test_answers_recorded_meanwhile_are_written_in_one_transaction(tmp_path: Path) -> None:
    # One commit (an fsync) per answer fell behind a bot answering many new DM users,
    # and the unwritten counts grew without bound (issue 16).
    store = await CountingStore.open(str(tmp_path / "bot.db"))
    store.batches = []
    ledger = UsageLedger(store)
    for user in range(1, 301):
        ledger.record(
            user_id=user, guild_id=None, channel_id=user, model="m",
            prompt_tokens=10, completion_tokens=1,
        )  # fmt: skip
    await ledger.flush()
    assert store.batches == [300]
    today = dt.datetime.now(dt.UTC).date()
    assert [await store.tokens_on_day(user, today) for user in (1, 150, 300)] == [11, 11, 11]
    await ledger.close()
    await store.close()


def test_model_suggestions_start_with_what_is_typed_then_contain_it() -> None:
    models = ["gpt-4o", "o3", "GPT-4o-mini", "my-gpt-4o", "gpt-4o", "o" * 101, "o4-mini"]
    assert model_suggestions(models, " o") == [
        "o3",
        "o4-mini",
        "gpt-4o",
        "GPT-4o-mini",
        "my-gpt-4o",
    ]
    assert model_suggestions(models, "4O") == ["gpt-4o", "GPT-4o-mini", "my-gpt-4o"]
    assert model_suggestions(models, "") == ["gpt-4o", "o3", "GPT-4o-mini", "my-gpt-4o", "o4-mini"]
    assert model_suggestions(models, "llama") == []
    assert model_suggestions([f"m{n}" for n in range(40)], "m") == [f"m{n}" for n in range(25)]


@given(st.lists(st.text(max_size=120)), st.text(max_size=10))
def test_model_suggestions_keep_discords_limits(models: list[str], typed: str) -> None:
    suggested = model_suggestions(models, typed)
    wanted = typed.strip().casefold()
    usable = {m for m in models if 1 <= len(m) <= MAX_CHOICE_LENGTH and wanted in m.casefold()}
    assert len(suggested) == len(set(suggested)) == min(len(usable), MAX_SUGGESTIONS)
    assert set(suggested) <= usable
    starts = [m.casefold().startswith(wanted) for m in suggested]
    assert starts == sorted(starts, reverse=True)  # those starting with it come first
