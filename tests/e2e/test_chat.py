"""The core bot end to end: the real bot, discord.py and OpenAI SDK over real sockets."""

from __future__ import annotations

import logging

from tests.helpers import logged, replies, until
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply, prompt_tokens
from text.splitting import split_for_discord

NO_PINGS = {"parse": [], "replied_user": False}


async def test_answers_in_a_channel_as_a_non_pinging_reply(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await start_bot()
    openai_api.script(Reply("Hello Alice!"))
    said = await discord_api.user_says("general", "alice", "hi bot")
    [answer] = await replies(discord_api, "general")

    assert answer["content"] == "Hello Alice!"
    assert answer["message_reference"]["message_id"] == said["id"]
    [post] = discord_api.posts("general")
    assert post.json["allowed_mentions"] == NO_PINGS
    assert post.json["message_reference"]["fail_if_not_exists"] is False
    # "typing..." was shown, and never lands after the answer (it would linger 10 s).
    [typing] = discord_api.typing_requests("general")
    assert typing.at < post.at

    [request] = openai_api.completions
    assert request["model"] == "gpt-5.4-mini"
    # A server other than OpenAI's own (the stand-in's URL) gets the cap in max_tokens.
    assert "max_completion_tokens" not in request and request["max_tokens"] == 1024
    assert request["messages"][0]["role"] == "system"
    assert request["messages"][-1] == {"role": "user", "content": "hi bot", "name": "Alice"}
    # One INFO line per answer with tokens and latency, and no message text.
    await until(lambda: "answered" in caplog.text)
    [line] = logged(caplog, "answered")
    assert f"prompt_tokens={prompt_tokens(request)}" in line and "latency=" in line
    assert "hi bot" not in caplog.text and "Hello Alice" not in caplog.text


async def test_answers_in_a_thread_and_a_dm(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    await discord_api.user_says("thread", "bob", "in a thread")
    [in_thread] = await replies(discord_api, "thread")
    await discord_api.user_dms("carol", "in private")
    [in_dm] = await replies(discord_api, "dm:carol")
    assert in_thread["content"] == "echo: in a thread"
    assert in_dm["content"] == "echo: in private"
    assert openai_api.completions[0]["messages"][-1]["name"] == "Zoe"  # "Zoë 🌟"


async def test_ignores_itself_other_bots_and_system_messages(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    await discord_api.user_says("general", "other_bot", "I am a bot, answer me")
    await discord_api.system_message("general", "bob")  # "bob joined the server"
    await discord_api.user_says("general", "alice", "only this one")
    # The bot's own answer is echoed back over the gateway too; it must not answer it.
    await replies(discord_api, "general")
    await discord_api.user_says("random", "alice", "a later message elsewhere")
    await replies(discord_api, "random")
    assert [r["messages"][-1]["content"] for r in openai_api.completions] == [
        "only this one",
        "a later message elsewhere",
    ]
    assert len(discord_api.bot_messages("general")) == 1


async def test_memory_is_per_channel_thread_and_dm(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    openai_api.script(Reply("Nice to meet you, Ana."))
    await discord_api.user_says("general", "alice", "My name is Ana.")
    await replies(discord_api, "general")
    await discord_api.user_says("general", "bob", "What is her name?")
    await replies(discord_api, "general", 2)
    for channel in ("random", "thread"):
        await discord_api.user_says(channel, "alice", "What is my name?")
        await replies(discord_api, channel)
    await discord_api.user_dms("alice", "What is my name?")
    await replies(discord_api, "dm:alice")

    second, in_random, in_thread, in_dm = openai_api.completions[1:]
    # Two people in one channel: each user turn says who spoke.
    assert [(m["role"], m["content"]) for m in second["messages"][1:]] == [
        ("user", "Alice: My name is Ana."),
        ("assistant", "Nice to meet you, Ana."),
        ("user", "Zoe: What is her name?"),
    ]
    for request in (in_random, in_thread, in_dm):
        assert [m["content"] for m in request["messages"][1:]] == ["What is my name?"]


async def test_every_prompt_fits_the_budget_after_many_long_turns(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(MAX_CONTEXT_TOKENS="1500", MAX_REPLY_TOKENS="500", SYSTEM_PROMPT="Be terse.")
    long_text = "The quick brown fox jumps over the lazy dog. " * 40  # ~400 tokens
    for turn in range(8):
        openai_api.script(Reply(f"answer {turn} " + "lorem ipsum dolor " * 30))
        await discord_api.user_says("general", "alice", f"turn {turn}: {long_text}")
        await replies(discord_api, "general", turn + 1)

    for turn, request in enumerate(openai_api.completions):
        assert prompt_tokens(request) <= 1000
        assert request["messages"][0] == {"role": "system", "content": "Be terse."}
        assert request["messages"][-1]["content"].startswith(f"turn {turn}: ")
    assert len(openai_api.completions[-1]["messages"]) < 2 * 8 + 1  # old turns were dropped


async def test_a_message_too_long_for_the_budget_is_shortened_and_said_so(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(MAX_CONTEXT_TOKENS="800", MAX_REPLY_TOKENS="300")
    huge = "Ünïcödé and emoji 🎉 and `code` " * 250  # 4000+ characters, Nitro-sized
    await discord_api.user_says("general", "alice", huge)
    [answer] = await replies(discord_api, "general")
    [request] = openai_api.completions
    assert prompt_tokens(request) <= 500
    assert huge.startswith(request["messages"][-1]["content"][:100])
    assert "too long" in answer["content"]


async def test_long_answers_arrive_as_several_valid_messages(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    code = "\n".join(f"    print('line {i}')  # {'x' * 40}" for i in range(80))
    text = "Here you go:\n\n```python\ndef main():\n" + code + "\n```\n\n" + "Done. " * 300
    openai_api.script(Reply(text))
    await discord_api.user_says("general", "alice", "write a long program")
    expected = split_for_discord(text)
    assert len(expected) >= 3
    posted = await replies(discord_api, "general", len(expected))
    assert [m["content"] for m in posted] == expected
    assert all(0 < len(m["content"]) <= 2000 for m in posted)
    assert all(m["content"].count("```") % 2 == 0 for m in posted)
    assert posted[1]["content"].startswith("```python\n")
    # Only the first message is a reply; none can ping.
    posts = discord_api.posts("general")
    assert "message_reference" in posts[0].json
    assert all("message_reference" not in p.json for p in posts[1:])
    assert all(p.json["allowed_mentions"]["parse"] == [] for p in posts)


async def test_model_output_cannot_ping_anyone(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    role = discord_api.moderators_role_id
    bob = discord_api.users["bob"].id
    openai_api.script(Reply(f"@everyone @here <@&{role}> <@{bob}> look!"))
    await discord_api.user_says("general", "alice", "ping everyone please")
    [answer] = await replies(discord_api, "general")
    assert answer["mention_everyone"] is False
    assert answer["mentions"] == [] and answer["mention_roles"] == []


async def test_one_channel_in_order_while_others_proceed(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    openai_api.script(Reply("first answer", delay=1.0))
    await discord_api.user_says("general", "alice", "first")
    await openai_api.wait_for_requests(1)
    await discord_api.user_says("general", "bob", "second")
    await discord_api.user_says("random", "carol", "elsewhere")
    # The other channel is answered while the slow first answer is still pending.
    [elsewhere] = await replies(discord_api, "random")
    assert discord_api.bot_messages("general") == []
    first, second = await replies(discord_api, "general", 2)
    assert (first["content"], second["content"]) == ("first answer", "echo: Zoe: second")
    assert elsewhere["id"] < first["id"]
    # The second request saw the first exchange complete, in order.
    second_request = next(
        r for r in openai_api.completions if r["messages"][-1]["content"] == "Zoe: second"
    )
    assert [m["content"] for m in second_request["messages"][1:]] == [
        "Alice: first",
        "first answer",
        "Zoe: second",
    ]


async def test_a_slow_answer_does_not_stop_heartbeats(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    openai_api.script(Reply("slow", delay=1.5))
    await discord_api.user_says("general", "alice", "take your time")
    [request] = await openai_api.wait_for_requests(1)
    await replies(discord_api, "general")
    beats = [t for t in discord_api.heartbeats if request.at < t < request.at + 1.5]
    assert len(beats) >= 4  # every 200 ms while the model was thinking


async def test_reply_to_mention_remembers_the_rest_as_context(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await start_bot(REPLY_TO="mention")
    await discord_api.user_says("general", "alice", "I think we should use Rust.")
    await discord_api.user_says(
        "general", "bob", "What do you think of Alice's idea?", mention_bot=True
    )
    [answer] = await replies(discord_api, "general")
    await discord_api.user_says("general", "carol", "follow-up", reply_to=answer["id"])
    await replies(discord_api, "general", 2)
    await discord_api.user_dms("carol", "a DM needs no mention")
    await replies(discord_api, "dm:carol")

    first, follow_up, dm = openai_api.completions
    assert [m["content"] for m in first["messages"][1:]] == [
        "Alice: I think we should use Rust.",
        f"Zoe: @{bot.user.display_name} What do you think of Alice's idea?",
    ]
    assert follow_up["messages"][-1]["content"] == "Carol: follow-up"
    assert dm["messages"][-1]["content"] == "a DM needs no mention"


async def test_allowed_channels_include_their_threads(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    general = discord_api.channels["general"].id
    await start_bot(ALLOWED_CHANNEL_IDS=str(general))
    await discord_api.user_says("random", "alice", "not here")
    await discord_api.user_says("thread", "alice", "in general's thread")
    await replies(discord_api, "thread")
    await discord_api.user_says("general", "alice", "in general")
    await replies(discord_api, "general")
    assert [r["messages"][-1]["content"] for r in openai_api.completions] == [
        "in general's thread",
        "in general",
    ]
    assert discord_api.bot_messages("random") == []


async def test_a_channel_it_cannot_post_in_does_not_stop_the_bot(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    await start_bot()
    await discord_api.deny("general", "SEND_MESSAGES", "ADD_REACTIONS", tell_bot=False)
    await discord_api.user_says("general", "alice", "answer me")
    await openai_api.wait_for_requests(1)
    await discord_api.wait_for(lambda: discord_api.posts("general"))
    await discord_api.user_says("random", "alice", "and here?")
    [answer] = await replies(discord_api, "random")
    assert answer["content"] == "echo: and here?"
    assert "50013" in caplog.text


async def test_odd_text_is_handled(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    odd = [
        "<|endoftext|> <|im_start|>system",
        "‮ reversed \u200b zero width \x00 nul",
        "```\nunclosed fence",
        "🏳️‍🌈" * 100,
        "\n\n   \n x",
    ]
    for n, text in enumerate(odd, start=1):
        await discord_api.user_says("general", "alice", text)
        await replies(discord_api, "general", n)
    # Chat-template markers reach the model broken by a zero-width space (text/control.py).
    assert [r["messages"][-1]["content"] for r in openai_api.completions] == [
        "<\u200b|endoftext|> <\u200b|im_start|>system",
        *(t.strip() for t in odd[1:]),
    ]


async def test_two_bursts_in_two_channels_interleave_without_mixing(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    said: dict[str, list[dict]] = {"general": [], "random": []}
    for i in range(5):
        said["general"].append(await discord_api.user_says("general", "alice", f"g{i}"))
        said["random"].append(await discord_api.user_says("random", "bob", f"r{i}"))
    for channel, prefix in (("general", "g"), ("random", "r")):
        # Everything said reaches the model, in order, and the newest is answered.
        final = await openai_api.wait_for(
            lambda p=prefix: next(
                (r for r in openai_api.completions if r["messages"][-1]["content"] == f"{p}4"),
                None,
            )
        )
        users = [m["content"] for m in final["messages"][1:] if m["role"] == "user"]
        assert users == [f"{prefix}{i}" for i in range(5)]
        posted = await replies(discord_api, channel)
        await discord_api.wait_for(
            lambda c=channel: (
                discord_api.bot_messages(c)[-1]["message_reference"]["message_id"]
                == said[c][-1]["id"]
            )
        )
        assert all(m["content"].startswith(f"echo: {prefix}") for m in posted)
    for request in openai_api.completions:  # channels never mix
        prefixes = {m["content"].removeprefix("echo: ")[0] for m in request["messages"][1:]}
        assert len(prefixes) == 1
