"""Field reports of the kind "a server's chat template refuses the conversation's shape":
roles that must alternate (Mistral's, Gemma's, Devstral's templates) and models that take
no system role (Gemma's family). The bot merges turns or moves its instructions into the
first user message, learnt from the refusal and retried within the same answer."""

from __future__ import annotations

from model.templates import INSTRUCTIONS_HEADING
from tests.helpers import conversation, final_messages, replies
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import EmptyReply, OpenAIStandIn


async def test_two_user_blocks_in_a_row_on_a_small_local_model(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """MinLL/SkyrimNet-GamePlugin#309 — template: two user blocks one after the other
    ("conversation roles must alternate" from small local models)."""
    openai_api.strict_template(alternation=True, style="vllm")
    await start_bot(REPLY_TO="mention")
    await discord_api.user_says("general", "alice", "the mood is tense")
    await discord_api.user_says("general", "bob", "what now?", mention_bot=True)
    [answer] = await replies(discord_api, "general")
    assert answer["content"].startswith("echo: ")
    [(role, content)] = conversation(openai_api.completions[-1])
    assert role == "user" and "the mood is tense" in content and "what now?" in content


async def test_template_error_roles_must_alternate_on_a_streamed_answer(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """run-llama/llama_index#11731 — template: "TemplateError: Conversation roles must
    alternate user/assistant/user/assistant/..." from an open model (streamed)."""
    openai_api.strict_template(alternation=True, style="vllm")
    await start_bot(REPLY_TO="mention", STREAM_REPLIES="true")
    await discord_api.user_says("general", "alice", "one")
    await discord_api.user_says("general", "alice", "two", mention_bot=True)
    [shown] = await final_messages(discord_api, "general", 1)
    assert shown.startswith("echo: ") and "one" in shown and "two" in shown
    refused, accepted = openai_api.chat_requests
    assert refused.status == 400 and accepted.status == 200


async def test_jinja_alternation_500_from_llama_server_on_a_follow_up(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """ggml-org/llama.cpp#19851 — template: llama-server --jinja (Devstral) answers 500
    "After the optional system message, conversation roles must alternate", in a loop.
    A 500 is retried by the SDK; the bot must still learn and answer."""
    openai_api.strict_template(alternation=True, style="llama_cpp")
    await start_bot(REPLY_TO="mention")
    await discord_api.user_says("general", "alice", "hello", mention_bot=True)
    await replies(discord_api, "general")
    await discord_api.user_says("general", "bob", "a remark")
    await discord_api.user_says("general", "alice", "follow-up?", mention_bot=True)
    answers = await final_messages(discord_api, "general", 2)
    assert answers[1].startswith("echo: ")
    roles = [m["role"] for m in openai_api.completions[-1]["messages"][1:]]
    assert roles == ["user", "assistant", "user"]


async def test_a_failed_turn_leaves_two_user_turns_and_the_channel_recovers(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """mistralai/mistral-vibe#1006 — template: after a stopped or denied turn the history
    holds two user turns in a row and "there is no way to recover". Here an answer that
    fails leaves its question unanswered; the next message must still be answered."""
    openai_api.strict_template(alternation=True, style="llama_cpp")
    await start_bot()
    openai_api.script(EmptyReply())
    await discord_api.user_says("general", "alice", "first")
    await replies(discord_api, "general")
    await discord_api.user_says("general", "alice", "second")
    answers = await final_messages(discord_api, "general", 2)
    assert answers[1].startswith("echo: ") and "first" in answers[1] and "second" in answers[1]
    assert [m["role"] for m in openai_api.completions[-1]["messages"][1:]] == ["user"]


async def test_gemma_2_system_role_not_supported_on_llama_cpp_python(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """abetlen/llama-cpp-python#1580 — template: Gemma 2 refuses a request with a system
    message ("System role not supported"). The instructions go into the first user
    message, and the person's words keep who said them (the message loses its `name`)."""
    openai_api.strict_template(system_role=False, style="llama_cpp")
    await start_bot(SYSTEM_PROMPT="Tell stories for kids.")
    await discord_api.user_says("general", "alice", "Write a story")
    [answer] = await final_messages(discord_api, "general", 1)
    assert answer.startswith("echo: ")
    [only] = openai_api.completions[-1]["messages"]
    assert only["role"] == "user"
    assert only["content"] == (
        f"{INSTRUCTIONS_HEADING}\nTell stories for kids.\n\nAlice: Write a story"
    )


async def test_gemma_2_2b_system_role_not_supported_through_the_openai_client(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """sgl-project/sglang#892 — template: gemma-2-2b served by SGLang, an OpenAI client's
    request fails with "System role not supported" (streamed here); learnt once."""
    openai_api.strict_template(system_role=False, style="vllm")
    await start_bot(STREAM_REPLIES="true")
    for n, text in enumerate(["hi", "again"], start=1):
        await discord_api.user_says("general", "alice", text)
        await replies(discord_api, "general", n)
    first, second = await final_messages(discord_api, "general", 2)
    assert first.startswith("echo: ") and first.endswith("\n\nAlice: hi")
    assert second == "echo: again"
    assert [r.status for r in openai_api.chat_requests] == [400, 200, 200]
    assert all(m["role"] != "system" for r in openai_api.completions[1:] for m in r["messages"])


async def test_gemma3_on_llama_cpp_with_a_system_message_then_two_user_messages(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """nextai-translator/raycast-openai-translator#34 — template: gemma-3 on llama.cpp
    answers 500 "Jinja Exception: Conversation roles must alternate" for a system message
    followed by two user messages. Both refusals are worked around in one answer."""
    openai_api.strict_template(alternation=True, system_role=False, style="llama_cpp")
    await start_bot(REPLY_TO="mention")
    await discord_api.user_says("general", "alice", "Server accepting connections")
    await discord_api.user_says("general", "bob", "translate that", mention_bot=True)
    [answer] = await final_messages(discord_api, "general", 1)
    assert answer.startswith("echo: ")
    assert [m["role"] for m in openai_api.completions[-1]["messages"]] == ["user"]
