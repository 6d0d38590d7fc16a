"""/settings and /usage end to end, and the state that survives a restart."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from config import DEFAULT_SYSTEM_PROMPT
from tests.helpers import dotenv_for, finish, launch, replies, run_command
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn
from text.markdown import BACKTICK_LOOKALIKE

PIRATE = "You are a pirate. Answer like one."


async def ask(discord_api, openai_api, channel: str, user: str, text: str) -> dict:
    """`user` says `text` in `channel`; the model request it causes."""
    before = len(openai_api.completions)
    await discord_api.user_says(channel, user, text)
    await discord_api.wait_for(lambda: len(openai_api.completions) > before)
    return openai_api.completions[-1]


async def test_a_persona_applies_in_its_channel_and_its_threads_only(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    changed = await run_command(discord_api, "general", "owner", "settings persona", text=PIRATE)
    assert not changed["ephemeral"]
    assert changed["content"].startswith("⚙️") and PIRATE in changed["content"]
    assert changed["flags"] & (1 << 12)  # silent: no notification, and nobody pinged

    request = await ask(discord_api, openai_api, "general", "alice", "hello")
    assert request["messages"][0] == {"role": "system", "content": PIRATE}
    await replies(discord_api, "general", 2)  # the settings line, the answer
    request = await ask(discord_api, openai_api, "random", "alice", "hello")
    assert request["messages"][0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    request = await ask(discord_api, openai_api, "thread", "bob", "and here?")
    assert request["messages"][0] == {"role": "system", "content": PIRATE}
    # The settings line is not part of the conversation read back in general.
    assert [m["content"] for m in request["messages"][1:]] == ["and here?"]

    shown = await run_command(discord_api, "thread", "alice", "settings show")
    assert shown["ephemeral"]
    assert "**Persona:** “You are a pirate. Answer like one.” (parent channel)" in shown["content"]
    assert "**Model:** `gpt-5.4-mini` (environment (OPENAI_MODEL))" in shown["content"]


async def test_changing_needs_the_permission_and_server_defaults_sit_below_channels(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(ADMIN_USER_IDS=str(discord_api.users["bob"].id))
    refused = await run_command(discord_api, "general", "carol", "settings persona", text=PIRATE)
    assert refused["ephemeral"]
    assert refused["content"] == (
        "You need the Manage Channels permission to change this channel's settings."
    )
    refused = await run_command(
        discord_api, "general", "carol", "settings reply-to", mode="mention"
    )
    assert "Manage Channels" in refused["content"]
    refused = await run_command(
        discord_api, "general", "alice", "settings streaming", mode="on", scope="server"
    )
    assert refused["content"] == (
        "You need the Manage Server permission to change the server's defaults."
    )
    assert discord_api.bot_messages("general") == []  # nothing announced

    # An admin (ADMIN_USER_IDS) may change the server's defaults; a channel's own wins.
    await run_command(
        discord_api, "general", "bob", "settings persona", text="Server.", scope="server"
    )
    await run_command(discord_api, "random", "owner", "settings persona", text="Random.")
    general = await ask(discord_api, openai_api, "general", "alice", "one")
    random = await ask(discord_api, openai_api, "random", "alice", "two")
    assert general["messages"][0]["content"] == "Server."
    assert random["messages"][0]["content"] == "Random."
    await run_command(discord_api, "random", "owner", "settings reset")
    random = await ask(discord_api, openai_api, "random", "alice", "three")
    assert random["messages"][0]["content"] == "Server."

    # In a DM, its person sets its settings.
    dm = discord_api.dm_channel("alice")
    done = await run_command(discord_api, dm, "alice", "settings persona", text="Just for me.")
    assert "this DM" in done["content"]
    request = await ask(discord_api, openai_api, dm, "alice", "hi")
    assert request["messages"][0]["content"] == "Just for me."


async def test_a_persona_too_long_for_the_budget_is_refused_with_the_numbers(
    start_bot, discord_api: DiscordStandIn
) -> None:
    await start_bot(MAX_CONTEXT_TOKENS="1500", MAX_REPLY_TOKENS="500")
    refused = await run_command(
        discord_api, "general", "owner", "settings persona", text="word " * 600
    )
    assert refused["ephemeral"]
    assert refused["content"] == (
        "That persona is 604 tokens; a persona may use at most 500 of the 1,000-token "
        "prompt budget, so the conversation keeps room. Shorten it."
    )


async def test_the_model_must_be_one_the_server_lists_and_is_used_with_its_settings(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    openai_api.models = ["gpt-4o", "gpt-5.4-mini", "o3"]
    await start_bot()
    refused = await run_command(discord_api, "general", "owner", "settings model", name="llama-9")
    assert refused["ephemeral"]
    assert refused["content"] == (
        "The model server does not offer `llama-9`. It offers: gpt-4o, gpt-5.4-mini, o3"
    )
    await run_command(discord_api, "general", "owner", "settings model", name="o3")
    await run_command(discord_api, "general", "owner", "settings reasoning-effort", level="low")
    request = await ask(discord_api, openai_api, "general", "alice", "think")
    assert (request["model"], request["reasoning_effort"]) == ("o3", "low")
    other = await ask(discord_api, openai_api, "random", "alice", "plain")
    assert other["model"] == "gpt-5.4-mini" and "reasoning_effort" not in other

    # gpt-4o counts with o200k_base too; gpt-4 with cl100k_base, loaded on demand.
    openai_api.models.append("gpt-4")
    changed = await run_command(discord_api, "random", "owner", "settings model", name="gpt-4")
    assert changed["content"].endswith("set the model for this channel: `gpt-4`")
    request = await ask(discord_api, openai_api, "random", "alice", "naïve café ✨ emoji")
    [record] = [r for r in openai_api.chat_requests if r.json is request]
    assert request["model"] == "gpt-4"
    assert record.usage is not None
    await replies(discord_api, "random", 3)


async def test_streaming_and_reply_to_follow_the_channel(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    await run_command(discord_api, "general", "owner", "settings streaming", mode="on")
    await run_command(discord_api, "random", "owner", "settings reply-to", mode="mention")
    streamed = await ask(discord_api, openai_api, "general", "alice", "stream please")
    assert streamed.get("stream") is True
    await discord_api.user_says("random", "alice", "not for you")
    await discord_api.user_says("random", "alice", "still not")
    await discord_api.user_says("random", "alice", "now you", mention_bot=True)
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2)
    contents = [m["content"] for m in openai_api.completions[-1]["messages"][1:]]
    assert contents[:2] == ["not for you", "still not"]


async def test_settings_usage_and_the_daily_allowance_survive_a_restart(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot(USER_DAILY_TOKENS="20", PRICE_INPUT_PER_MILLION="2")
    await run_command(discord_api, "general", "owner", "settings persona", text=PIRATE)
    await ask(discord_api, openai_api, "general", "alice", "hello there")
    await replies(discord_api, "general", 2)
    await first.close()

    await start_bot(USER_DAILY_TOKENS="20", PRICE_INPUT_PER_MILLION="2")
    billed = [r.usage for r in openai_api.chat_requests]
    prompt = sum(u["prompt_tokens"] for u in billed)
    completion = sum(u["completion_tokens"] for u in billed)
    assert prompt + completion >= 20  # one answer used up alice's allowance
    mine = await run_command(discord_api, "general", "alice", "usage me")
    assert mine["ephemeral"]
    cost = prompt * 2 / 1_000_000
    assert (
        f"**Today:** {prompt + completion:,} tokens ({prompt:,} in, {completion:,} out), "
        f"1 answer, cost {cost:.4f}" in mine["content"]
    )

    await discord_api.user_says("general", "alice", "again?")
    notice = await replies(discord_api, "general", 3)
    assert "used your share of the model for today" in notice[-1]["content"]
    assert len(openai_api.completions) == 1  # not asked again after the restart
    request = await ask(discord_api, openai_api, "general", "bob", "ahoy")
    assert request["messages"][0]["content"] == PIRATE  # the persona is still set


async def test_usage_server_reports_top_users_and_channels_with_a_csv(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    await ask(discord_api, openai_api, "general", "alice", "one")
    await ask(discord_api, openai_api, "general", "alice", "two")
    await ask(discord_api, openai_api, "random", "bob", "three")
    await replies(discord_api, "random")
    refused = await run_command(discord_api, "general", "carol", "usage server")
    assert refused["content"] == "You need the Manage Server permission to see the server's usage."
    report = await run_command(discord_api, "general", "owner", "usage server")
    assert report["ephemeral"]
    alice, bob = discord_api.users["alice"].id, discord_api.users["bob"].id
    text = report["content"]
    assert text.index(f"<@{alice}>") < text.index(f"<@{bob}>")
    [attachment] = report["payload"].get("attachments") or [{}]
    assert attachment.get("filename", "").endswith(".csv")
    [upload] = [
        r for r in discord_api.requests if r.files and r.path.startswith("/api/v10/webhooks")
    ]
    rows = list(csv.DictReader(io.StringIO(upload.files[0]["data"].decode())))
    billed = [r.usage for r in openai_api.chat_requests]
    assert sum(int(r["prompt_tokens"]) for r in rows) == sum(u["prompt_tokens"] for u in billed)
    assert sum(int(r["answers"]) for r in rows) == 3
    assert {int(r["user_id"]) for r in rows} == {alice, bob}


async def test_bot_py_stops_on_a_database_it_cannot_open(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    dotenv = {**dotenv_for(discord_api, openai_api), "DATABASE_URL": "blocker/bot.db"}
    status, printed = await finish(await launch(tmp_path, dotenv))
    assert status == 1
    assert "Traceback" not in printed
    [line] = [text for text in printed.splitlines() if "error" in text.lower()]
    assert (
        line
        == "Configuration error: DATABASE_URL: cannot create blocker: blocker is not a directory"
    )


async def suggested(discord_api: DiscordStandIn, channel: str, typed: str) -> list[dict]:
    """The choices the bot suggests while `typed` is the model name in /settings model."""
    sent = await discord_api.user_types_option(channel, "alice", "settings model", "name", typed)
    return await discord_api.wait_for_autocomplete(sent, timeout=5)


async def test_typing_a_model_name_suggests_the_servers_matching_models(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    very_long = "org/" + "x" * 120  # no choice may be longer than 100 characters
    openai_api.models = ["o3", "gpt-4o", "gpt-4o-mini", very_long, "my-4o-tune", "gpt-5.4-mini"]
    openai_api.models += [f"gpt-4o-ft-{n}" for n in range(30)]
    await start_bot()
    choices = await suggested(discord_api, "general", "GPT-4O-M")
    assert choices == [{"name": "gpt-4o-mini", "value": "gpt-4o-mini"}]
    choices = await suggested(discord_api, "thread", "4o")
    listed = sorted(openai_api.models)  # the bot keeps the list sorted
    assert [c["value"] for c in choices] == [m for m in listed if "4o" in m][:25]  # Discord: 25
    choices = await suggested(discord_api, "thread", "O")
    assert [c["value"] for c in choices][:2] == ["o3", "gpt-4o"]  # starting with it first
    assert await suggested(discord_api, "random", "tune") == [
        {"name": "my-4o-tune", "value": "my-4o-tune"}
    ]
    choices = await suggested(discord_api, "general", "")
    assert len(choices) == 25 and very_long not in [c["value"] for c in choices]
    assert all(c["name"] == c["value"] for c in choices)
    assert await suggested(discord_api, "general", "llama") == []
    # The list is read once and cached, not per keystroke.
    assert sum(r.path == "/v1/models" for r in openai_api.requests) == 1
    # A suggestion is only a suggestion: the model is set by running the command.
    changed = await run_command(
        discord_api, "general", "owner", "settings model", name="gpt-4o-mini"
    )
    assert changed["content"].endswith("set the model for this channel: `gpt-4o-mini`")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_server_without_a_model_list_suggests_only_the_model_in_use(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    assert openai_api.models is None  # GET /v1/models answers 404
    await start_bot(OPENAI_MODEL="local-model")
    assert await suggested(discord_api, "general", "") == [
        {"name": "local-model", "value": "local-model"}
    ]
    assert await suggested(discord_api, "general", "LOCAL") == [
        {"name": "local-model", "value": "local-model"}
    ]
    assert await suggested(discord_api, "general", "gpt") == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_model_name_with_a_backtick_is_announced_in_one_code_span(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # A server without a model list accepts any name; its announcement stays one code span
    # (the backtick shown as a look-alike), and the request names the model as typed.
    await start_bot(OPENAI_MODEL="local-model")
    changed = await run_command(
        discord_api, "general", "owner", "settings model", name="my`tuned-model"
    )
    shown = "`my" + BACKTICK_LOOKALIKE + "tuned-model`"
    assert changed["content"].endswith(f"set the model for this channel: {shown}")
    assert (await ask(discord_api, openai_api, "general", "alice", "hi"))["model"] == (
        "my`tuned-model"
    )
