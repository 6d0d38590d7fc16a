"""Field reports of the kind "what people point at is not in the request": the message a
reply answers and the messages people forward (whose text arrives in
``message_snapshots``, the message's own content empty). The bot quotes a reply's target
with its author and reads a forward's text, embeds and files as the message's own."""

from __future__ import annotations

from tests.helpers import conversation, replies, run_command
from tests.standins.discord import DiscordStandIn, FakeAttachment
from tests.standins.openai_standin import OpenAIStandIn

REPORT_CARD = {
    "title": "Feedback report #812",
    "description": "Checkout button does nothing on Safari 17",
}


async def test_a_reply_carries_the_quoted_message_to_the_model(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """sipeed/picoclaw#1048 — reference: when a user replies to (quotes) a message, only
    the new text reached the model; the quoted message was lost."""
    said = await discord_api.user_says("general", "bob", "the deploy is at 5pm", deliver=False)
    await start_bot(REPLY_TO="mention")
    await run_command(discord_api, "general", "owner", "reset")  # memory starts after it
    await discord_api.user_says(
        "general", "alice", "is that too late?", reply_to=said, mention_bot=True
    )
    await replies(discord_api, "general", 2)
    assert conversation(openai_api.completions[-1]) == [
        ("user", "[replying to this message from Zoë 🌟:]\n> the deploy is at 5pm\n\n"
                 "@ChatBot is that too late?")
    ]  # fmt: skip


async def test_a_reply_whose_target_discord_did_not_resolve_is_fetched(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """NousResearch/hermes-agent#31571 — reference: Discord sometimes omits the resolved
    referenced message (older messages, busy servers); the bot must fetch it."""
    old = await discord_api.user_says("general", "bob", "rollback plan: revert 4f2a", deliver=False)
    await start_bot()
    await run_command(discord_api, "general", "owner", "reset")
    await discord_api.user_says("general", "alice", "do we?", reply_to=old, resolve_reply=False)
    await replies(discord_api, "general", 2)
    assert "> rollback plan: revert 4f2a" in conversation(openai_api.completions[-1])[-1][1]
    fetched = f"/channels/{{channel_id}}/messages/{old['id']}"
    assert discord_api.requests_to("GET", fetched, "general")


async def test_a_forwarded_messages_text_is_read_though_its_content_is_empty(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """Rapptz/discord.py#10204 — reference: for a forwarded message, content (and
    clean_content) is blank; the text is in the snapshot."""
    await start_bot()
    source = await discord_api.user_says(
        "random", "bob", "server maintenance at 3am", deliver=False
    )
    await discord_api.user_forwards("general", "alice", source)
    await replies(discord_api, "general")
    assert conversation(openai_api.completions[-1]) == [
        ("user", "[forwarded a message:]\n> server maintenance at 3am")
    ]


async def test_a_forwarded_embed_is_read(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """discordjs/discord.js#10872 — reference: a forwarded message's content is not
    reachable; the reporter flattens the snapshot's embeds (title, description) by hand."""
    await start_bot()
    source = await discord_api.user_says(
        "random", "other_bot", "", embeds=[REPORT_CARD], deliver=False
    )
    await discord_api.user_forwards("general", "alice", source)
    await replies(discord_api, "general")
    [(_, content)] = conversation(openai_api.completions[-1])
    assert content.startswith("[forwarded a message:]")
    assert "Feedback report #812" in content and "Checkout button does nothing" in content


async def test_forward_then_mention_the_bot_with_a_question(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """AlaskanTuna/Rokabot#104 — reference: "forward a message, mention her in the same
    message" and she sees only the mention. In mention mode the forward and the question
    both reach the model, in order."""
    await start_bot(REPLY_TO="mention")
    source = await discord_api.user_says("random", "bob", "we lost the staging DB", deliver=False)
    await discord_api.user_forwards("general", "alice", source)
    await discord_api.user_says("general", "alice", "what do you make of this?", mention_bot=True)
    await replies(discord_api, "general")
    said = [content for _, content in conversation(openai_api.completions[-1])]
    assert said[0] == "[forwarded a message:]\n> we lost the staging DB"
    assert said[-1].endswith("what do you make of this?")


async def test_a_forwarded_file_reaches_the_model_like_an_upload(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """HybridAIOne/hybridclaw#1521 — reference: a teammate forwarded a report and asked
    "any idea what is happening here?"; the forward showed as "[no visible text]" and its
    attachments were never read."""
    await start_bot(REPLY_TO="mention")
    source = await discord_api.user_says(
        "random",
        "bob",
        "report attached",
        attachments=[FakeAttachment("report.txt", b"TypeError: cart is undefined\n")],
        deliver=False,
    )
    await discord_api.user_forwards("general", "alice", source)
    await discord_api.user_says(
        "general", "alice", "any idea what is happening here?", mention_bot=True
    )
    await replies(discord_api, "general")
    forwarded = conversation(openai_api.completions[-1])[0][1]
    assert forwarded.startswith("[forwarded a message:]\n> report attached")
    assert "TypeError: cart is undefined" in forwarded
