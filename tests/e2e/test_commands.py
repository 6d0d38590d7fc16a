"""/reset and /memory end to end: registration, permissions, and reset across restarts."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from conversation import services
from tests.helpers import conversation, replies, until, write_lock
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn


async def test_commands_are_registered_globally_or_in_the_dev_guild(
    start_bot, discord_api: DiscordStandIn
) -> None:
    first = await start_bot()
    names = {c["name"] for c in discord_api.registered_commands()}
    assert names == {"reset", "memory", "settings", "usage", "knowledge", "catchup"}
    await first.close()
    await start_bot(DEV_GUILD_ID=str(discord_api.guild_id))
    guild_commands = discord_api.registered_commands(discord_api.guild_id)
    assert {c["name"] for c in guild_commands} == {
        "reset",
        "memory",
        "settings",
        "usage",
        "knowledge",
        "catchup",
    }


async def test_reset_forgets_and_the_boundary_survives_a_restart(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot()
    await discord_api.user_says("general", "alice", "My name is Ana.")
    await replies(discord_api, "general")
    interaction = await discord_api.user_runs_command("general", "carol", "reset")
    response = await discord_api.wait_for_interaction_response(interaction)
    assert not response["ephemeral"] and "Conversation reset" in response["content"]
    await discord_api.user_says("general", "alice", "What is my name?")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2)
    assert conversation(openai_api.completions[-1]) == [("user", "What is my name?")]
    await replies(discord_api, "general", 3)  # answer, reset message, answer
    await first.close()

    await start_bot()
    await discord_api.user_says("general", "bob", "And now?")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 3)
    assert conversation(openai_api.completions[-1]) == [
        ("user", "Alice: What is my name?"),  # two speakers: each turn says who
        ("assistant", "echo: What is my name?"),
        ("user", "Zoe: And now?"),
    ]


async def test_reset_needs_manage_messages_in_a_server_unless_everyone_may(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot()
    await discord_api.user_says("thread", "alice", "remember this")
    await replies(discord_api, "thread")
    denied = await discord_api.user_runs_command("thread", "alice", "reset")
    response = await discord_api.wait_for_interaction_response(denied)
    assert response["ephemeral"] and "Manage Messages" in response["content"]
    in_dm = await discord_api.user_runs_command(discord_api.dm_channel("alice"), "alice", "reset")
    assert (
        "Conversation reset" in (await discord_api.wait_for_interaction_response(in_dm))["content"]
    )
    await discord_api.user_says("thread", "alice", "still there?")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2)
    assert conversation(openai_api.completions[-1])[0] == ("user", "remember this")
    await first.close()

    await start_bot(RESET_PERMISSION="everyone")
    allowed = await discord_api.user_runs_command("thread", "alice", "reset")
    assert (
        "Conversation reset"
        in (await discord_api.wait_for_interaction_response(allowed))["content"]
    )


async def test_memory_reports_privately(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot(MEMORY_STRATEGY="summarize")
    for text in ("one", "two"):
        await discord_api.user_says("random", "alice", text)
    await replies(discord_api, "random", 2)
    await first.close()

    await start_bot(MEMORY_STRATEGY="summarize")  # /memory reads the channel back first
    asked = await discord_api.user_runs_command("random", "bob", "memory")
    response = await discord_api.wait_for_interaction_response(asked)
    assert response["ephemeral"]
    text = response["content"]
    assert "4 messages" in text and "of 3,072 prompt tokens" in text
    assert "summarised when they no longer fit" in text
    assert "gpt-5.4-mini" in text and "posted when complete" in text
    assert "token counts exact" in text  # tiktoken knows the model
    assert len(discord_api.bot_messages("random")) == 2  # nothing posted in the channel


async def test_commands_follow_the_access_rules(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(BLOCKED_USER_IDS=str(discord_api.users["carol"].id))
    refused = await discord_api.user_runs_command("general", "carol", "reset")
    response = await discord_api.wait_for_interaction_response(refused)
    assert response["ephemeral"] and "can't use this bot" in response["content"]


# --- Discord's 3-second deadline ------------------------------------------------------------

CALLBACK = r"/interactions/\d+/[^/]+/callback"


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("settings streaming", {"mode": "on"}),
        ("settings persona", {"text": "You are terse."}),
        ("settings model", {"name": "gpt-4o"}),
        ("settings reset", {}),
    ],
)
async def test_a_settings_change_on_a_slow_store_is_deferred_in_time(
    start_bot, discord_api: DiscordStandIn, tmp_path: Path, command: str, options: dict
) -> None:
    await start_bot()
    # Another process holds the database's write lock for 4 s: the bot's write waits.
    holder = await write_lock(tmp_path / "data" / "bot.db")
    try:
        sent = await discord_api.user_runs_command("general", "owner", command, options)
        [first] = await discord_api.wait_for(
            lambda: discord_api.interaction_responses(sent), timeout=3
        )
        assert first["kind"] == "callback" and first["deferred"] and first["ephemeral"]
        await asyncio.sleep(1.5)  # past Discord's 3 s: the deferral kept the interaction alive
    finally:
        holder.execute("COMMIT")
        holder.close()
    answers = await discord_api.wait_for(
        lambda: len(r := discord_api.interaction_responses(sent)) >= 3 and r, timeout=10
    )
    assert [(a["kind"], a["ephemeral"]) for a in answers] == [
        ("callback", True),
        ("followup", True),  # fills in the private "thinking..." message
        ("followup", False),  # the announcement everyone sees
    ]
    assert answers[1]["content"] == "Done."
    assert answers[2]["content"].startswith("⚙️") and answers[2]["flags"] & (1 << 12)


@pytest.mark.parametrize(
    ("command", "expected"), [("settings show", "**Model:**"), ("usage me", "")]
)
async def test_a_private_answer_read_from_a_busy_store_is_deferred_first(
    start_bot, discord_api: DiscordStandIn, tmp_path: Path, command: str, expected: str
) -> None:
    await start_bot()
    holder = await write_lock(tmp_path / "data" / "bot.db")
    try:
        # The bot's own write waits for the lock, and its reads queue behind that write.
        await discord_api.user_runs_command("random", "owner", "settings streaming", {"mode": "on"})
        await asyncio.sleep(0.2)
        sent = await discord_api.user_runs_command("general", "alice", command)
        [first] = await discord_api.wait_for(
            lambda: discord_api.interaction_responses(sent), timeout=3
        )
        assert first["deferred"] and first["ephemeral"]
        await asyncio.sleep(3)  # past Discord's 3 s
    finally:
        holder.execute("COMMIT")
        holder.close()
    answer = await discord_api.wait_for_interaction_response(sent, timeout=10)
    assert answer["ephemeral"] and expected in answer["content"] and answer["content"]


async def test_a_refusal_on_a_fast_path_is_answered_at_once_and_privately(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    openai_api.models = ["gpt-4o"]
    await start_bot()
    sent = await discord_api.user_runs_command(
        "general", "owner", "settings model", {"name": "gpt-9"}
    )
    refused = await discord_api.wait_for_interaction_response(sent, timeout=3)
    assert refused["kind"] == "callback" and refused["ephemeral"] and not refused["deferred"]
    assert refused["content"].startswith("The model server does not offer `gpt-9`")


async def test_a_slow_model_list_is_read_once_for_many_keystrokes_and_suggested_later(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    openai_api.models = ["gpt-4o", "gpt-4o-mini"]
    openai_api.models_delay = 1.8  # longer than autocomplete may wait, within MODELS_SECONDS
    await start_bot()
    typing = [
        await discord_api.user_types_option("general", "alice", "settings model", "name", typed)
        for typed in ("g", "gp", "gpt")
    ]
    for sent in typing:  # each answered in time, with nothing yet
        assert await discord_api.wait_for_autocomplete(sent, timeout=3) == []
    assert "the model list is slow; no suggestions this time" in caplog.text
    await asyncio.sleep(0.5)  # the shared read lands in the cache
    sent = await discord_api.user_types_option("general", "alice", "settings model", "name", "mini")
    assert await discord_api.wait_for_autocomplete(sent, timeout=1) == [
        {"name": "gpt-4o-mini", "value": "gpt-4o-mini"}
    ]
    reads = [r for r in openai_api.requests if r.path == "/v1/models"]
    assert len(reads) == 1


async def test_a_failing_command_is_logged_by_name_and_a_failed_apology_raises_nothing(
    start_bot, discord_api: DiscordStandIn, caplog
) -> None:
    await start_bot()
    refused = {"code": 40333, "message": "internal network error"}
    discord_api.fail_requests("POST", CALLBACK, status=400, body=refused, times=2)
    sent = await discord_api.user_runs_command("general", "alice", "settings show")
    await until(lambda: "could not answer the failed command" in caplog.text, timeout=5)
    assert "command /settings show failed" in caplog.text
    assert "<discord.app_commands" not in caplog.text
    assert "never retrieved" not in caplog.text
    assert discord_api.interaction_responses(sent) == []
    # The bot answers the next command as usual.
    again = await discord_api.user_runs_command("general", "alice", "settings show")
    shown = await discord_api.wait_for_interaction_response(again, timeout=3)
    assert shown["ephemeral"] and "**Model:**" in shown["content"]


async def test_a_model_name_too_long_to_keep_usage_for_is_refused_by_slash_settings(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()  # a server that lists no models: any name it could hold is accepted
    sent = await discord_api.user_runs_command(
        "general", "owner", "settings model", {"name": "m" * 201}
    )
    refused = await discord_api.wait_for_interaction_response(sent, timeout=3)
    assert refused["ephemeral"]
    assert refused["content"] == (
        "Not changed: a model name is at most 200 characters (the store keeps usage per "
        "model), and this one has 201."
    )
    await discord_api.user_says("general", "alice", "hello")
    await openai_api.wait_for(lambda: openai_api.completions)
    assert openai_api.completions[0]["model"] == "gpt-5.4-mini"  # unchanged


async def test_a_model_list_slower_than_suggestions_still_checks_a_model_choice(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # A slow read is not "no list": /settings model (deferred) waits for it, and what
    # was not read is not cached as "any name goes".
    openai_api.models = ["gpt-4o", "gpt-4o-mini"]
    openai_api.models_delay = 3.0  # past MODELS_SECONDS (2 s)
    await start_bot()
    sent = await discord_api.user_runs_command(
        "general", "owner", "settings model", {"name": "gpt-9"}
    )
    refused = await discord_api.wait_for_interaction_response(sent, timeout=10)
    assert refused["content"].startswith("The model server does not offer `gpt-9`")


async def test_a_model_list_that_never_comes_is_not_cached_as_no_list(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, monkeypatch
) -> None:
    monkeypatch.setattr(services, "MODELS_READ_SECONDS", 0.3)
    openai_api.models = ["gpt-4o"]
    openai_api.models_delay = 1.0  # past the read's bound: unreachable, for the bot
    bot = await start_bot()
    assert await bot.services.model_list.models(wait=5) is None  # accepted as today
    openai_api.models_delay = 0
    assert await bot.services.model_list.models() == ["gpt-4o"]  # asked again, not cached
