"""Field reports of the kind "an answer that did not finish normally looks finished, or a
stream that says nothing": odd finish reasons, streams that end without one, empty
streams past the server's window, and reasoning mixed into the text. The user sees the
answer with a true note (or the retried answer), never the model's thoughts."""

from __future__ import annotations

import json

import pytest

from conversation.notes import FILTERED_NOTE, NO_FINISH_NOTE
from conversation.prompts import SHORTENED_NOTE
from tests.helpers import conversation, final_messages, replies
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import EmptyReply, Garbage, OpenAIStandIn, Reply

LOCAL_MODEL = "local-model"


async def remembered_answer(discord_api: DiscordStandIn, openai_api: OpenAIStandIn) -> str:
    """The bot's first answer as the model is given it back with the next message."""
    count = len(openai_api.completions)
    await discord_api.user_says("general", "alice", "and then?")
    await openai_api.wait_for(lambda: len(openai_api.completions) == count + 1)
    role, content = conversation(openai_api.completions[-1])[1]
    assert role == "assistant"
    return content


THOUGHTS = "Okay, the user greets me. I should think about my role first. " * 2


async def test_ollama_empty_finish_reason_on_every_chunk_is_no_finish_at_all(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """ollama/ollama#4357 — finish reason: Ollama's OpenAI endpoint streamed
    "finish_reason": "" on every chunk, then "stop". The answer is whole, with no note."""
    await start_bot(STREAM_REPLIES="true")
    openai_api.script(Reply("Hello there! I am fine.", chunk_finish_reason=""))
    await discord_api.user_says("general", "alice", "hi")
    assert await final_messages(discord_api, "general", 1) == ["Hello there! I am fine."]


async def test_a_stream_that_ends_without_a_finish_reason_is_marked(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """earendil-works/pi#5793 — finish reason: "Stream ended without finish_reason" from
    many OpenAI-compatible providers. The text shown is kept with a note that it may be
    incomplete, and remembered that way."""
    await start_bot(STREAM_REPLIES="true")
    openai_api.script(Reply("The steps are: one, two", finish_reason=None))
    await discord_api.user_says("general", "alice", "steps?")
    [shown] = await final_messages(discord_api, "general", 1)
    assert shown == f"The steps are: one, two\n{NO_FINISH_NOTE}"
    assert await remembered_answer(discord_api, openai_api) == shown


async def test_lm_studio_silent_empty_stream_past_the_loaded_context(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """lmstudio-ai/lmstudio-bug-tracker#2339 — empty stream: a prompt larger than the
    loaded context gets a 200 stream with zero content deltas. The bot treats it as the
    overflow it is and answers with less."""
    openai_api.limit_context(400, style="litellm")
    openai_api.empty_stop_past_window = True
    await start_bot(OPENAI_MODEL=LOCAL_MODEL, MAX_REPLY_TOKENS="100", STREAM_REPLIES="true")
    await discord_api.user_says("general", "alice", "review: " + "code " * 350)
    [shown] = await final_messages(discord_api, "general", 1)
    assert shown.startswith("echo: review: code") and shown.endswith(f"\n{SHORTENED_NOTE}")
    assert openai_api.chat_requests[-1].reply_text


async def test_a_streamed_request_past_the_window_does_not_leave_the_channel_stuck(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """rsmeowry/chatgpt_rs#48 — context overflow: streamed, a conversation past the
    model's window raised nothing and "the conversation becomes permanently stuck". Every
    message keeps being answered."""
    openai_api.limit_context(600, style="openai")
    await start_bot(
        OPENAI_MODEL=LOCAL_MODEL,
        MAX_CONTEXT_TOKENS="4096",
        MAX_REPLY_TOKENS="100",
        STREAM_REPLIES="true",
    )
    filler = "words to fill the window " * 15
    for n in range(6):
        await discord_api.user_says("general", "alice", f"turn {n}: {filler}")
        await replies(discord_api, "general", n + 1)
    shown = await final_messages(discord_api, "general", 6)
    assert shown == [f"echo: turn {n}: {filler.strip()}" for n in range(6)]


async def test_think_block_of_deepseek_r1_on_ollama_is_not_shown(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """1Panel-dev/MaxKB#2154 — reasoning: deepseek-r1 through Ollama outputs its <think>
    part, unwanted, in the answer. Streamed, the user never sees it; the model is not
    given it back."""
    await start_bot(STREAM_REPLIES="true")
    openai_api.script(Reply("Hello!", reasoning=THOUGHTS, reasoning_in="<think>"))
    await discord_api.user_says("general", "alice", "hi")
    assert await final_messages(discord_api, "general", 1) == ["Hello!"]
    posted = [p.json["content"] for p in discord_api.posts("general")]
    assert not any("I should think" in p for p in posted)
    assert await remembered_answer(discord_api, openai_api) == "Hello!"


async def test_r1_reasoning_before_a_lone_closing_tag_is_filtered(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """tbxark/ChatGPT-Telegram-Workers#326 — reasoning: R1 models print their thinking
    in the reply; the reporter asks to filter the <think> part. Here the template opens the
    block in the prompt, so only "</think>" arrives (a whole answer)."""
    await start_bot()
    openai_api.script(Reply("Paris.", reasoning=THOUGHTS, reasoning_in="</think>"))
    await discord_api.user_says("general", "alice", "capital of France?")
    assert await final_messages(discord_api, "general", 1) == ["Paris."]


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_content_filter_with_no_text_tells_the_user_why(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    """BerriAI/litellm#8953 — finish reason: Azure's gpt-4o answers "Tell me a joke!" with
    finish_reason "content_filter" and content null, and no error is raised. The user is
    told the filter blocked it."""
    await start_bot(STREAM_REPLIES=stream)
    openai_api.script(EmptyReply(content=None, finish_reason="content_filter"))
    await discord_api.user_says("general", "alice", "Tell me a joke!")
    [message] = await replies(discord_api, "general")
    assert message["content"] == "The model's content filter blocked this answer."


async def test_empty_answers_from_a_filtered_output_get_a_message(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """Azure-Samples/azure-search-openai-demo#2076 — finish reason: completely empty
    answers when the model output was filtered; "an error message should be issued to
    the user". An empty text with content_filter is told as the filter's doing."""
    await start_bot()
    openai_api.script(Reply("", finish_reason="content_filter"))
    await discord_api.user_says("general", "alice", "summarise the incident report")
    [message] = await replies(discord_api, "general")
    assert "content filter" in message["content"]


async def test_a_stream_cut_by_the_content_filter_keeps_its_text_with_a_note(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """microsoft/semantic-kernel#5289 — finish reason: when the content filter triggers,
    the stream just stops and the consumer cannot tell. What was shown stays, with a note
    saying the filter cut it."""
    await start_bot(STREAM_REPLIES="true")
    openai_api.script(Reply("Here is how it starts", finish_reason="content_filter"))
    await discord_api.user_says("general", "alice", "tell me")
    assert await final_messages(discord_api, "general", 1) == [
        f"Here is how it starts\n{FILTERED_NOTE}"
    ]


async def test_openrouters_provider_error_inside_a_200_stream(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """jakobdylanc/llmcord#77 — stream error event: through OpenRouter (gemini-flash), a
    200 stream carried an error ("openai.APIError: Provider returned error"). The user
    gets one short message and the next message is answered."""
    await start_bot(STREAM_REPLIES="true")
    provider = {"error": {"message": "Provider returned error", "code": 502}}
    openai_api.script(Garbage(body=json.dumps(provider)))
    await discord_api.user_says("general", "alice", "hi")
    [message] = await replies(discord_api, "general")
    assert message["content"] and len(message["content"]) < 200 and "{" not in message["content"]
    await discord_api.user_says("general", "alice", "again")
    assert (await final_messages(discord_api, "general", 2))[1] == "echo: again"
