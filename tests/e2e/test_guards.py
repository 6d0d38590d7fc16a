"""Who may use the bot and how much, end to end through the stand-ins."""

from __future__ import annotations

import pytest

from tests.helpers import answered, final_messages, replies
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply


async def test_a_burst_from_one_user_gets_one_notice_and_stays_in_context(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(USER_RATE_LIMIT="3")
    for i in range(8):
        await discord_api.user_says("general", "alice", f"spam {i}")
    # Three answered at most (some may be answered together), one notice, no more.
    await discord_api.wait_for(
        lambda: any(
            "faster than I can answer" in m["content"] for m in discord_api.bot_messages("general")
        )
    )
    await discord_api.user_says("general", "bob", "bob is not limited")
    await discord_api.wait_for(
        lambda: any(
            m["content"] == "echo: Zoe: bob is not limited"  # two speakers: named
            for m in discord_api.bot_messages("general")
        )
    )
    notices = [m for m in discord_api.bot_messages("general") if "faster" in m["content"]]
    assert len(notices) == 1
    assert "spam 3" not in answered(openai_api)
    # Every message, limited or not, is still in the conversation the model sees.
    last = openai_api.completions[-1]
    users = [m["content"] for m in last["messages"] if m["role"] == "user"]
    assert users == [f"Alice: spam {i}" for i in range(8)] + ["Zoe: bob is not limited"]


@pytest.mark.discord_world(extra_text_channels=30)
async def test_thirty_channels_against_a_slow_model_stay_within_the_concurrency_bound(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(MAX_CONCURRENT_REQUESTS="4")
    openai_api.script(*[Reply(f"answer {n}", delay=0.3) for n in range(30)])
    channels = [f"channel-{n}" for n in range(30)]
    for channel in channels:
        await discord_api.user_says(channel, "alice", f"hello from {channel}")
    for channel in channels:
        await replies(discord_api, channel)
    spans = [(r.at, r.finished_at) for r in openai_api.chat_requests]
    assert len(spans) == 30 and all(end is not None for _, end in spans)
    most_at_once = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert most_at_once == 4


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_a_blocked_role_is_ignored_silently(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    await start_bot(BLOCKED_ROLE_IDS=str(discord_api.moderators_role_id), STREAM_REPLIES=stream)
    await discord_api.user_says("general", "carol", "I am a moderator")  # blocked role
    await discord_api.user_says("general", "alice", "I am not")
    await final_messages(discord_api, "general", 1)
    assert answered(openai_api) == ["I am not"]
    assert "I am a moderator" not in str(openai_api.completions)


async def test_a_thread_in_an_allowed_category_is_answered(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(ALLOWED_CHANNEL_IDS=str(discord_api.category.id))
    await discord_api.user_says("thread", "alice", "in a thread of the category")
    await replies(discord_api, "thread")
    await discord_api.user_says("random", "alice", "in a channel of the category")
    await replies(discord_api, "random")
    assert answered(openai_api) == ["in a thread of the category", "in a channel of the category"]


async def test_a_blocked_user_is_told_once_in_dm_and_ignored_in_channels(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(BLOCKED_USER_IDS=str(discord_api.users["alice"].id))
    await discord_api.user_says("general", "alice", "hello?")
    for text in ("let me in", "please"):
        await discord_api.user_dms("alice", text)
    await discord_api.user_dms("bob", "hi")
    await replies(discord_api, "dm:bob")
    [note] = await replies(discord_api, "dm:alice")
    assert note["content"] == "Sorry, you can't use this bot."
    assert answered(openai_api) == ["hi"]
    assert discord_api.bot_messages("general") == []


async def test_dms_off_except_for_admins(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(ALLOW_DMS="false", ADMIN_USER_IDS=str(discord_api.users["carol"].id))
    await discord_api.user_dms("alice", "can I DM?")
    await discord_api.user_dms("carol", "admin here")
    await replies(discord_api, "dm:carol")
    assert answered(openai_api) == ["admin here"]
    assert discord_api.bot_messages("dm:alice") == []


async def test_daily_token_allowance(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(USER_DAILY_TOKENS="50")
    await discord_api.user_says("general", "alice", "one")  # the system prompt alone is more
    await replies(discord_api, "general")
    await discord_api.user_says("general", "alice", "two")
    await discord_api.user_says("general", "alice", "three")
    await discord_api.user_says("general", "bob", "four")
    posted = await replies(discord_api, "general", 3)
    assert "used your share of the model for today" in posted[1]["content"]
    assert "00:00 UTC" in posted[1]["content"]
    assert answered(openai_api) == ["one", "Zoe: four"]  # a second speaker is named


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_reasoning_is_neither_posted_nor_remembered(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    await start_bot(STREAM_REPLIES=stream)
    text = "<think>The user wants a greeting. Keep it short.</think>\n\nHello there!"
    openai_api.script(
        Reply(
            text,
            chunks=[
                "<thi",
                "nk>The user wants",
                " a greeting. Keep it short.</th",
                "ink>\n\nHello",
                " there!",
            ],
        )
    )
    await discord_api.user_says("general", "alice", "greet me")
    assert await final_messages(discord_api, "general", 1) == ["Hello there!"]
    assert all("user wants" not in p.json["content"] for p in discord_api.posts("general"))
    assert all("user wants" not in e.json["content"] for e in discord_api.edits("general"))
    await discord_api.user_says("general", "alice", "again")
    await final_messages(discord_api, "general", 2)
    assert openai_api.completions[-1]["messages"][-2] == {
        "role": "assistant",
        "content": "Hello there!",
    }
