"""/catchup end to end: a private summary of this channel since the asker's last message
(or the last hours), read from Discord's history, with links; long spans in parts."""

from __future__ import annotations

import re
from typing import Any

from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import Error, OpenAIStandIn, Reply


async def final_reply(discord_api: DiscordStandIn, sent: dict[str, Any]) -> dict[str, Any]:
    """The deferred reply once it holds the answer (not a progress line)."""

    def done() -> dict[str, Any] | None:
        for entry in reversed(discord_api.interaction_responses(sent)):
            text = entry["content"]
            if entry["kind"] == "edit" and not text.startswith(
                ("Reading…", "Summarising", "Putting")
            ):
                return entry
        return None

    return await discord_api.wait_for(done, timeout=15)


def link(discord_api: DiscordStandIn, message: dict[str, Any]) -> str:
    return (
        f"https://discord.com/channels/{discord_api.guild_id}/{message['channel_id']}/"
        f"{message['id']}"
    )


def transcript(request: Any) -> str:
    """The user message of a request (an `OpenAIRequest` or its JSON body)."""
    body = request if isinstance(request, dict) else request.json
    return body["messages"][-1]["content"]


async def test_catchup_summarises_only_this_channel_since_the_askers_last_message(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    say = discord_api.user_says
    await say("general", "bob", "old news from before", deliver=False)
    await say("general", "alice", "I'm off for lunch", deliver=False)
    ship = await say("general", "bob", "We decided to ship on Friday", deliver=False)
    review = await say("general", "carol", "Can someone review PR 42?", deliver=False)
    await say("random", "bob", "random chatter elsewhere", deliver=False)
    await start_bot()

    sent = await discord_api.user_runs_command("general", "alice", "catchup")
    reply = await final_reply(discord_api, sent)

    [request] = openai_api.completions
    text = transcript(request)
    assert "ship on Friday" in text and "review PR 42" in text
    assert "old news" not in text and "off for lunch" not in text and "random chatter" not in text
    assert "Alice" in request["messages"][0]["content"]  # written for the asker
    # The echo repeats the numbered transcript: each cited number became a link.
    content = reply["content"]
    assert content.startswith("**Catch-up in #general**: 2 messages since your last message")
    assert f"[1](<{link(discord_api, ship)}>)" in content
    assert f"[2](<{link(discord_api, review)}>)" in content
    responses = discord_api.interaction_responses(sent)
    assert responses[0]["deferred"] and all(r["ephemeral"] for r in responses)
    assert discord_api.bot_messages("general") == []  # nothing posted in the channel


async def missed(discord_api: DiscordStandIn, count: int) -> None:
    """Alice writes in #general, then bob and carol write `count` messages she missed."""
    await discord_api.user_says("general", "alice", "back later", deliver=False)
    filler = "we talked about the release train and the build queue and the docs again"
    for n in range(count):
        await discord_api.user_says(
            "general", ("bob", "carol")[n % 2], f"{n}: {filler}", deliver=False
        )


async def test_a_long_span_is_summarised_in_parts_with_progress(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await missed(discord_api, 300)
    openai_api.script(*(Reply(f"- point {k} [{k}]") for k in range(1, 30)))
    bot = await start_bot()

    sent = await discord_api.user_runs_command("general", "alice", "catchup")
    reply = await final_reply(discord_api, sent)

    requests = openai_api.chat_requests
    parts = [r for r in requests if "Messages in #general" in transcript(r)]
    merges = [r for r in requests if "Summaries of #general" in transcript(r)]
    assert len(parts) >= 3 and merges and len(parts) + len(merges) == len(requests)
    for request in requests:  # every request within the prompt budget
        assert request.usage is not None
        assert request.usage["prompt_tokens"] <= bot.settings.prompt_budget
    numbers = [int(n) for r in parts for n in re.findall(r"^\[(\d+)\]", transcript(r), re.M)]
    assert numbers == list(range(1, 301))  # each message once, in order
    shown = [r["content"] for r in discord_api.interaction_responses(sent) if r["kind"] == "edit"]
    assert {"Reading… 100 messages", "Reading… 300 messages"} <= set(shown)
    assert f"Summarising part 2 of {len(parts)}…" in shown
    assert f"Putting {len(parts)} parts together…" in shown
    assert reply["content"].startswith("**Catch-up in #general**: 300 messages")
    assert "discord.com/channels/" in reply["content"] and reply["ephemeral"]


async def test_merges_fit_the_budget_when_each_part_summary_is_as_long_as_allowed(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # Each part's summary near MAX_REPLY_TOKENS (1,300 of 1,400) while a prompt has
    # 1,600: two of them do not fit one merge, so each gets its share, cut.
    await missed(discord_api, 200)
    long = "\n".join(f"- point{k} [1]" for k in range(260))  # about 1,300 tokens
    openai_api.script(*(Reply(long) for _ in range(40)))
    bot = await start_bot(MAX_CONTEXT_TOKENS="3000", MAX_REPLY_TOKENS="1400")

    sent = await discord_api.user_runs_command("general", "alice", "catchup")
    reply = await final_reply(discord_api, sent)

    requests = openai_api.chat_requests
    merges = [r for r in requests if "Summaries of #general" in transcript(r)]
    assert merges and reply["content"].startswith("**Catch-up in #general**: 200 messages")
    for request in requests:
        assert request.usage is not None
        assert request.usage["prompt_tokens"] <= bot.settings.prompt_budget == 1600


async def test_nothing_new_and_the_last_hours(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    discord_api.past_messages("general", [("bob", "yesterday's plan")], days_ago=1)
    recent = discord_api.past_messages("general", [("bob", "this morning's plan")], days_ago=0.05)
    await discord_api.user_says("general", "alice", "I'm here", deliver=False)
    await start_bot()

    nothing = await discord_api.user_runs_command("general", "alice", "catchup")
    answer = await final_reply(discord_api, nothing)
    assert answer["content"].startswith("Nothing new in #general since your last message")
    assert openai_api.completions == []

    hours = await discord_api.user_runs_command("general", "alice", "catchup", {"hours": 6})
    answer = await final_reply(discord_api, hours)
    [request] = openai_api.completions
    assert "this morning's plan" in transcript(request) and "I'm here" in transcript(request)
    assert "yesterday" not in transcript(request)
    assert answer["content"].startswith("**Catch-up in #general**: 2 messages in the last 6 hours")
    assert link(discord_api, recent[0]) in answer["content"]


async def test_catchup_needs_the_bot_to_read_the_history(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await discord_api.user_says("general", "bob", "secret-ish", deliver=False)
    await start_bot()
    discord_api.forbid_read("general")
    sent = await discord_api.user_runs_command("general", "alice", "catchup")
    answer = await discord_api.wait_for_interaction_response(sent, timeout=5)
    assert answer["ephemeral"] and "Read Message History" in answer["content"]
    assert openai_api.completions == []


async def test_catchup_is_refused_to_a_member_who_cannot_read_the_history(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await discord_api.user_says("general", "bob", "for readers only", deliver=False)
    await start_bot()
    await discord_api.set_overwrite("general", "alice", deny=["READ_MESSAGE_HISTORY"], member=True)
    sent = await discord_api.user_runs_command("general", "alice", "catchup")
    answer = await discord_api.wait_for_interaction_response(sent, timeout=5)
    assert answer["ephemeral"] and "You need the Read Message History" in answer["content"]
    assert openai_api.completions == []
    allowed = await discord_api.user_runs_command("general", "bob", "catchup")
    assert (await final_reply(discord_api, allowed))["content"].startswith("Nothing new")


async def test_catchup_counts_against_the_daily_allowance(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await discord_api.user_says("general", "bob", "a long day of news", deliver=False)
    await start_bot(USER_DAILY_TOKENS="50")
    first = await discord_api.user_runs_command("general", "alice", "catchup")
    assert (await final_reply(discord_api, first))["content"].startswith("**Catch-up")
    again = await discord_api.user_runs_command("general", "alice", "catchup", {"hours": 1})
    answer = await final_reply(discord_api, again)
    assert "used your share of the model for today" in answer["content"]
    assert len(openai_api.completions) == 1  # the first request spent more than 50 tokens


async def test_a_model_failure_is_told_briefly_and_privately(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await discord_api.user_says("general", "bob", "news", deliver=False)
    openai_api.script(Error.bad_auth())
    await start_bot()
    sent = await discord_api.user_runs_command("general", "alice", "catchup")
    answer = await final_reply(discord_api, sent)
    assert answer["ephemeral"] and not answer["content"].startswith("**Catch-up")
    assert answer["content"] == (
        "The model service rejected the bot's API key. "
        "The bot's owner needs to check OPENAI_API_KEY."
    )
