"""Field reports of the kind "a model server refuses or ignores part of the request":
tools a model does not take, a reply cap in a field the server ignores, image parts a
text-only model cannot read, a request field a server forbids, and rate limits. Each is
learnt from the server's own words (any wording) and worked around within the answer."""

from __future__ import annotations

import logging

from conversation.conversations import NO_VISION_NOTE
from conversation.notes import CUT_BY_CAP_NOTE
from tests.e2e.test_files import image_parts, screenshot
from tests.e2e.test_tools import Workshop, shown, with_tools
from tests.helpers import final_messages, logged, replies
from tests.standins.discord import DiscordStandIn, FakeAttachment
from tests.standins.openai_standin import Error, OpenAIStandIn, Reply

LOCAL_MODEL = "local-model"
COUNTING = "one two three four five six seven eight nine ten eleven twelve"


# --- tools a model does not take -----------------------------------------------------


async def test_deepseek_r1_on_ollama_does_not_support_tools(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    """ollama/ollama#11131 — server refusal: "registry.ollama.ai/library/deepseek-r1:14b
    does not support tools" (400). The bot answers without tools, and learns it once."""
    caplog.set_level(logging.WARNING)
    await with_tools(start_bot, Workshop(), streaming=True)
    openai_api.refuse_tools("ollama")
    await discord_api.user_says("general", "alice", "hello")
    assert await shown(discord_api, "general", 1) == ["echo: hello"]
    first, second = openai_api.completions
    assert "tools" in first and "tools" not in second
    assert len(logged(caplog, "offering the model no tools")) == 1


async def test_llama3_through_the_openai_client_does_not_support_tools(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """pydantic/pydantic-ai#703 — server refusal: openai.BadRequestError 400 {'error':
    {'message': 'registry.ollama.ai/library/llama3:8b does not support tools', 'type':
    'api_error'}} on a whole (not streamed) answer; the next answer sends no tools."""
    await with_tools(start_bot, Workshop(), streaming=False)
    openai_api.refuse_tools("ollama")
    for n, text in enumerate(["first", "second"], start=1):
        await discord_api.user_says("general", "alice", text)
        await shown(discord_api, "general", n)
    assert [r.status for r in openai_api.chat_requests] == [400, 200, 200]
    assert "tools" not in openai_api.completions[-1]


# --- a reply cap in a field the server ignores ---------------------------------------


async def test_llama_cpp_python_ignores_max_completion_tokens(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """abetlen/llama-cpp-python#1907 — server ignores a field: max_completion_tokens is
    ignored (--model_alias llava-v1.5-13b-q4_k); only max_tokens caps the answer."""
    openai_api.reply_cap_fields = ("max_tokens",)
    await start_bot(OPENAI_MODEL="llava-v1.5-13b-q4_k", MAX_REPLY_TOKENS="8")
    openai_api.script(Reply(COUNTING))
    await discord_api.user_says("general", "alice", "count")
    [answer] = await final_messages(discord_api, "general", 1)
    [request] = openai_api.completions
    assert request["max_tokens"] == 8 and "max_completion_tokens" not in request
    assert answer.endswith(f"\n{CUT_BY_CAP_NOTE}")


async def test_llama_server_max_completion_tokens_not_working(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """ggml-org/llama.cpp#13700 — server ignores a field: llama-server's API ignored
    max_completion_tokens (Qwen3-8B); streamed, the cap must still hold."""
    openai_api.reply_cap_fields = ("max_tokens",)
    await start_bot(OPENAI_MODEL="Qwen3-8B-Q4_K_M", MAX_REPLY_TOKENS="8", STREAM_REPLIES="true")
    openai_api.script(Reply(COUNTING))
    await discord_api.user_says("general", "alice", "count")
    [answer] = await final_messages(discord_api, "general", 1)
    [request] = openai_api.chat_requests
    assert request.json["max_tokens"] == 8
    assert answer == f"{request.reply_text}\n{CUT_BY_CAP_NOTE}"


async def test_llamafile_behind_an_openai_model_name_ignores_max_completion_tokens(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """mozilla-ai/llamafile#701 — server ignores a field: llamafile listens only to
    max_tokens (n_remain=-1 with max_completion_tokens). Here it is served under an
    OpenAI model name, so the name must not choose the field."""
    openai_api.reply_cap_fields = ("max_tokens",)
    await start_bot(OPENAI_MODEL="gpt-4o-mini", MAX_REPLY_TOKENS="8")
    openai_api.script(Reply(COUNTING))
    await discord_api.user_says("general", "alice", "count")
    [answer] = await final_messages(discord_api, "general", 1)
    assert openai_api.completions[0]["max_tokens"] == 8
    assert answer.endswith(f"\n{CUT_BY_CAP_NOTE}")


# --- image parts a text-only model cannot read ----------------------------------------


async def picture_to_a_text_only_model(discord_api: DiscordStandIn, openai_api) -> str:
    shot = FakeAttachment("a.png", screenshot(400, 300), width=400, height=300)
    await discord_api.user_says("general", "alice", "What is this?", attachments=[shot])
    [answer] = await final_messages(discord_api, "general", 1)
    assert not any(image_parts(m) for m in openai_api.completions[-1]["messages"])
    return answer


async def test_image_url_is_only_supported_by_certain_models(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """browser-use/web-ui#274 — server refusal: Azure's gpt-4 answers 400 "Invalid content
    type. image_url is only supported by certain models." The text is answered, the user
    told once."""
    openai_api.text_only("openai")
    await start_bot(VISION="on")
    answer = await picture_to_a_text_only_model(discord_api, openai_api)
    assert answer == f"echo: What is this?\n\n[image: a.png]\n{NO_VISION_NOTE}"


async def test_image_url_refused_on_a_streamed_answer(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """roboflow/awesome-openai-vision-api-experiments#11 — server refusal: "ValueError:
    Invalid content type. image_url is only supported by certain models." (streamed)."""
    openai_api.text_only("openai")
    await start_bot(VISION="on", STREAM_REPLIES="true")
    answer = await picture_to_a_text_only_model(discord_api, openai_api)
    assert answer.startswith("echo: What is this?") and answer.endswith(NO_VISION_NOTE)


async def test_deepseek_text_model_cannot_deserialize_an_image_part(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """Mangi-11/Eta#62 — server refusal: DeepSeek's text-only model answers 400 "unknown
    variant `image_url`, expected `text`", on every later message too. The picture is
    dropped, the text answered, and later messages are not refused again."""
    openai_api.text_only("deepseek")
    await start_bot(VISION="on")
    answer = await picture_to_a_text_only_model(discord_api, openai_api)
    assert answer == f"echo: What is this?\n\n[image: a.png]\n{NO_VISION_NOTE}"
    await discord_api.user_says("general", "alice", "and now?")
    assert (await final_messages(discord_api, "general", 2))[1] == "echo: and now?"
    assert openai_api.chat_requests[-1].status == 200


# --- a request field a server forbids -------------------------------------------------


async def test_mistral_refuses_stream_options_include_usage_with_a_422(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """openai/openai-agents-python#442 — server refusal: Mistral's API answers 422
    extra_forbidden at loc ['body', 'stream_options', 'include_usage'] to a streamed
    request. The bot streams without stream_options from then on."""
    openai_api.refuse_fields("stream_options", style="mistral")
    await start_bot(STREAM_REPLIES="true")
    for n, text in enumerate(["first", "second"], start=1):
        await discord_api.user_says("general", "alice", text)
        await replies(discord_api, "general", n)
    assert await final_messages(discord_api, "general", 2) == ["echo: first", "echo: second"]
    assert [r.status for r in openai_api.chat_requests] == [422, 200, 200]
    assert "stream_options" not in openai_api.completions[-1]


async def test_a_gateway_forcing_include_usage_on_mistral(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """songquanpeng/one-api#2187 — server refusal: forcing stream_options on a channel
    (Mistral) that does not take it makes every call fail. The first answer is retried
    without it and reaches the user."""
    openai_api.refuse_fields("stream_options", style="mistral")
    await start_bot(STREAM_REPLIES="true")
    await discord_api.user_says("general", "alice", "hello")
    assert await final_messages(discord_api, "general", 1) == ["echo: hello"]


# --- rate limits ------------------------------------------------------------------------


async def test_a_rate_limited_key_gets_a_clear_message_not_a_crash(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """notunderctrl/discord-chat-bot#2 — rate limit: "OPENAI ERR: Request failed with
    status code 429" on every use. The user is told the service is busy, briefly, and the
    next message is answered."""
    await start_bot()
    openai_api.script(Error.rate_limited(0.01, times=3))
    await discord_api.user_says("general", "alice", "hi")
    [message] = await replies(discord_api, "general")
    assert "busy right now" in message["content"] and "429" not in message["content"]
    await discord_api.user_says("general", "alice", "hi again")
    assert (await final_messages(discord_api, "general", 2))[1] == "echo: hi again"


async def test_a_429_with_no_body_is_told_as_busy_not_as_raw_sdk_text(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """xqicxx/dsh-telegram#37 — rate limit: a gateway's 429 with no body surfaced as the
    SDK's literal "429 status code (no body)". The user gets a short, true message."""
    await start_bot()
    openai_api.script(Error(429, "", {"retry-after-ms": "10"}, times=3))
    await discord_api.user_says("general", "alice", "hi")
    [message] = await replies(discord_api, "general")
    assert "busy right now" in message["content"]
    assert "no body" not in message["content"] and "429" not in message["content"]
