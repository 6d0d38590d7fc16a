"""/reset and /memory end to end: registration, permissions, and reset across restarts."""

from __future__ import annotations

from tests.helpers import conversation, replies
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn


async def test_commands_are_registered_globally_or_in_the_dev_guild(
    start_bot, discord_api: DiscordStandIn
) -> None:
    first = await start_bot()
    names = {c["name"] for c in discord_api.registered_commands()}
    assert names == {"reset", "memory", "settings", "usage"}
    await first.close()
    await start_bot(DEV_GUILD_ID=str(discord_api.guild_id))
    guild_commands = discord_api.registered_commands(discord_api.guild_id)
    assert {c["name"] for c in guild_commands} == {"reset", "memory", "settings", "usage"}


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
