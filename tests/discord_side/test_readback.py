"""Read-back of a real history from the Discord stand-in, through discord.py: answers
joined, notices skipped, the reset boundary, the budget, message ids kept.

alice's messages are stored as history the bot never saw live; the bot's own are posted
through the client as a `Reply` posts them (the first part of an answer replies to the
question, a notice is silent).
"""

from __future__ import annotations

from typing import Any

import discord

from conversation.prompts import PromptBuilder
from discord_side.readback import MAX_MESSAGES_READ, RESET_MESSAGE, read_back
from tests.standins.discord import DiscordStandIn
from text.tokens import TokenCounter


class History:
    """The general channel, where alice and the bot talk."""

    def __init__(self, discord_api: DiscordStandIn, client: discord.Client) -> None:
        self.discord_api = discord_api
        self.client = client
        channel = client.get_channel(discord_api.channel("general").id)
        assert isinstance(channel, discord.TextChannel)
        self.channel = channel

    async def alice(self, *texts: str) -> list[int]:
        """alice says each of `texts`; their message ids."""
        said = [
            await self.discord_api.user_says("general", "alice", text, deliver=False)
            for text in texts
        ]
        return [int(message["id"]) for message in said]

    async def bot(self, text: str, *, reply_to: int | None = None, silent: bool = False) -> int:
        """The bot posts `text` (a reply to the message `reply_to`); its id."""
        reference = None if reply_to is None else self.channel.get_partial_message(reply_to)
        sent = await self.channel.send(text, reference=reference, silent=silent)
        return sent.id

    def reads(self) -> list[int]:
        """How many messages each history request the bot made asked for."""
        requests = self.discord_api.requests_to("GET", "/channels/{channel_id}/messages", "general")
        return [int(request.query["limit"]) for request in requests]


async def everyone(message: Any) -> bool:
    return True


async def turns_of(
    history: History,
    counter: TokenCounter,
    budget: int = 2000,
    remembered=everyone,
    after: int | None = None,
):
    prompts = PromptBuilder(counter, "You are terse.", prompt_budget=4000)
    assert history.client.user is not None
    return await read_back(
        history.channel,
        before=None,
        after=after,
        bot_id=history.client.user.id,
        prompts=prompts,
        budget=budget,
        remembered=remembered,
    )


def said(turns) -> list[tuple[str, str]]:
    return [(t.role, t.content) for t in turns]


async def test_the_parts_of_an_answer_become_one_turn_with_all_their_ids(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    [question] = await history.alice("tell me a long story")
    parts = [
        await history.bot("Once", reply_to=question),
        await history.bot("upon"),
        await history.bot("a time"),
    ]
    turns = await turns_of(history, o200k)
    assert said(turns) == [("user", "tell me a long story"), ("assistant", "Once\nupon\na time")]
    assert [t.message_ids for t in turns] == [(question,), tuple(parts)]


async def test_notices_are_skipped(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    [hi] = await history.alice("hi")
    await history.bot("The model is busy right now.", reply_to=hi, silent=True)
    [hello] = await history.alice("hello?")
    await history.bot("Hello!", reply_to=hello)
    assert said(await turns_of(history, o200k)) == [
        ("user", "hi"),
        ("user", "hello?"),
        ("assistant", "Hello!"),
    ]


async def test_answers_posted_plain_end_at_the_question_before_them(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    # Where Discord refused the reply (no Read Message History), answers have no reference.
    history = History(discord_api, discord_client)
    await history.alice("one")
    await history.bot("first answer")
    await history.alice("two")
    await history.bot("second answer, part 1")
    await history.bot("part 2")
    assert said(await turns_of(history, o200k)) == [
        ("user", "one"),
        ("assistant", "first answer"),
        ("user", "two"),
        ("assistant", "second answer, part 1\npart 2"),
    ]


async def test_read_back_stops_at_the_reset_message(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    [secret] = await history.alice("my password is hunter2")
    await history.bot("Noted.", reply_to=secret)
    await history.bot(RESET_MESSAGE)
    await history.alice("what do you know?")
    assert said(await turns_of(history, o200k)) == [("user", "what do you know?")]


async def test_a_reset_by_someone_else_is_no_boundary(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    await history.alice("before", RESET_MESSAGE)
    assert [c for _, c in said(await turns_of(history, o200k))] == ["before", RESET_MESSAGE]


async def test_read_back_stops_once_the_budget_is_full(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    ids = await history.alice(*(f"message {n}: " + "filler " * 40 for n in range(30)))
    turns = await turns_of(history, o200k, budget=300)
    assert 300 <= sum(t.tokens for t in turns) < 300 + turns[0].tokens
    assert turns[-1].content.startswith("message 29:")
    assert [t.message_ids[0] for t in turns] == ids[-len(turns) :]


async def test_a_plain_answer_at_the_reset_boundary_is_kept(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    await history.bot(RESET_MESSAGE)
    await history.bot("Hi, how can I help?")
    assert said(await turns_of(history, o200k)) == [("assistant", "Hi, how can I help?")]


async def test_rejected_messages_are_left_out(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    async def not_bob(message: Any) -> bool:
        return message.content != "from bob"

    history = History(discord_api, discord_client)
    await history.alice("from bob", "from alice")
    turns = await turns_of(history, o200k, remembered=not_bob)
    assert said(turns) == [("user", "from alice")]


async def test_no_more_than_max_messages_read_are_asked_for(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    await history.alice(*("x" for _ in range(MAX_MESSAGES_READ + 50)))
    turns = await turns_of(history, o200k, budget=10**6)
    assert sum(history.reads()) == MAX_MESSAGES_READ  # discord.py asks 100 at a time
    assert len(turns) == MAX_MESSAGES_READ


async def test_read_back_stops_after_the_message_a_summary_covers(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    [old] = await history.alice("old question")
    covered = await history.bot("old answer", reply_to=old)
    [new] = await history.alice("new question")
    await history.bot("new answer", reply_to=new)
    turns = await turns_of(history, o200k, after=covered)
    assert said(turns) == [("user", "new question"), ("assistant", "new answer")]


async def test_a_message_people_started_a_thread_from_stays_in_the_channel(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    [started, answered_in_thread] = await history.alice("release notes", "a question")
    await discord_api.user_starts_thread("bob", discord_api.messages("general")[-2])
    # The bot's thread mode: it started the thread to answer there; it is the thread's.
    await history.channel.get_partial_message(answered_in_thread).create_thread(name="q")
    turns = await turns_of(history, o200k)
    assert said(turns) == [("user", "release notes")]
    assert turns[0].message_ids == (started,)


async def test_a_forward_is_read_back_like_the_message_itself(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    source = await discord_api.user_says("random", "bob", "build is red", deliver=False)
    await discord_api.user_forwards("general", "alice", source, deliver=False)
    assert said(await turns_of(history, o200k)) == [
        ("user", "[forwarded a message:]\n> build is red")
    ]


async def test_a_reply_quotes_its_target_only_when_it_is_not_read_back(
    discord_api: DiscordStandIn, discord_client: discord.Client, o200k
) -> None:
    history = History(discord_api, discord_client)
    [old] = await history.alice("deploy at 5")
    await history.bot(RESET_MESSAGE)
    [near] = await history.alice("the cat is Tom")
    gone = await discord_api.user_says("general", "bob", "oops", deliver=False)
    for target in (old, near, int(gone["id"])):
        await discord_api.user_says("general", "alice", "this?", reply_to=target, deliver=False)
    await discord_api.user_deletes(gone, deliver=False)
    assert said(await turns_of(history, o200k)) == [
        ("user", "the cat is Tom"),
        ("user", "[replying to this message from Alice:]\n> deploy at 5\n\nthis?"),
        ("user", "this?"),  # the turns hold the message it answers
        ("user", "[replying to a message I can't read]\n\nthis?"),
    ]
