"""What a real llama.cpp server (llama-cpp-python 0.3.36) does with chat requests.

These tests talk to the server with the openai SDK (and raw HTTP where the SDK hides
the wire), not through the bot: they pin down the behaviour the bot has to cope
with when a user points OPENAI_BASE_URL at llama.cpp.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from tests.llama_server import (
    EOS_TOKEN,
    LlamaServer,
    skip_without_llama,
    vocabulary,
    write_tiny_model,
)

skip_without_llama()

# logit_bias that keeps the model from ending its answer, so answers run as long as
# the server lets them: that shows which length limit it applies.
NEVER_END = {str(vocabulary()[2][EOS_TOKEN]): -100}
OVER_CONTEXT = "a " * 3000  # about 3000 tokens, over the 2048-token context

CONTEXT_MESSAGE = re.compile(
    r"This model's maximum context length is (\d+) tokens\. However, you requested "
    r"(\d+) tokens \((\d+) in the messages, (\w+) in the completion\)\. "
    r"Please reduce the length of the messages or completion\."
)


@pytest.fixture
async def client(llama_server: LlamaServer) -> AsyncIterator[openai.AsyncOpenAI]:
    # No retries: each test sees the server's first answer.
    async with openai.AsyncOpenAI(
        base_url=llama_server.base_url, api_key="sk-unused", max_retries=0, timeout=30
    ) as client:
        yield client


def user(content: object, **fields: str) -> list[dict]:
    return [{"role": "user", "content": content, **fields}]


async def prompt_tokens(client: openai.AsyncOpenAI, model: str, messages: list[dict]) -> int:
    """The prompt size the server reports for `messages`."""
    answer = await client.chat.completions.create(model=model, messages=messages, max_tokens=1)
    assert answer.usage is not None
    return answer.usage.prompt_tokens


async def raw_post(llama_server: LlamaServer, body: dict) -> tuple[int, str, str]:
    """POST /v1/chat/completions; the status, content type and text of the answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{llama_server.base_url}/chat/completions", json=body) as answer,
    ):
        return answer.status, answer.content_type, await answer.text()


# --- Answers ----------------------------------------------------------------------


async def test_a_plain_answer_has_text(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    answer = await client.chat.completions.create(model=llama_server.model, messages=user("hi"))

    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason == "stop"  # the tiny model ends its answers itself
    assert answer.model == llama_server.model
    assert answer.usage is not None
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


async def test_a_streamed_answer_has_text_and_no_usage_chunk(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    stream = await client.chat.completions.create(
        model=llama_server.model,
        messages=user("hi"),
        stream=True,
        stream_options={"include_usage": True},  # ignored by llama.cpp
    )
    chunks = [chunk async for chunk in stream]

    assert all(len(chunk.choices) == 1 and chunk.usage is None for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text.strip()
    assert [chunk.choices[0].finish_reason for chunk in chunks][-1] == "stop"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])


async def test_the_server_answers_as_whatever_model_is_asked_for(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    answer = await client.chat.completions.create(
        model="gpt-5.4-mini", messages=user("hi"), max_tokens=2
    )

    assert answer.model == "gpt-5.4-mini"  # it serves its one model under any name
    assert answer.choices[0].message.content


# --- Length limits ----------------------------------------------------------------


async def test_max_tokens_caps_the_answer(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    answer = await client.chat.completions.create(
        model=llama_server.model, messages=user("hi"), max_tokens=8, logit_bias=NEVER_END
    )

    assert answer.usage is not None
    assert answer.usage.completion_tokens == 8
    assert answer.choices[0].finish_reason == "length"


async def test_max_completion_tokens_is_ignored_so_the_answer_fills_the_context(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    answer = await client.chat.completions.create(
        model=llama_server.model,
        messages=user("hi"),
        max_completion_tokens=8,
        logit_bias=NEVER_END,
    )

    assert answer.usage is not None
    assert answer.usage.completion_tokens > 8
    assert answer.usage.total_tokens == llama_server.n_ctx
    assert answer.choices[0].finish_reason == "length"


async def test_a_prompt_over_the_context_is_a_400_context_length_exceeded(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model=llama_server.model, messages=user(OVER_CONTEXT))

    error = raised.value
    assert error.status_code == 400
    assert error.code == "context_length_exceeded"
    assert error.type == "invalid_request_error"
    assert error.param == "messages"
    # The SDK's body is the "error" object of {"error": {...}}.
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}
    match = CONTEXT_MESSAGE.fullmatch(error.body["message"])
    assert match is not None, error.body["message"]
    context, requested, in_messages, in_completion = match.groups()
    assert int(context) == llama_server.n_ctx
    assert int(requested) == int(in_messages) > llama_server.n_ctx
    assert in_completion == "None"  # no max_tokens: the Python None, formatted


async def test_a_prompt_over_the_context_with_max_tokens_counts_them_in_the_message(
    llama_server: LlamaServer,
) -> None:
    status, content_type, text = await raw_post(
        llama_server, {"messages": user(OVER_CONTEXT), "max_tokens": 10}
    )

    assert (status, content_type) == (400, "application/json")
    error = json.loads(text)["error"]
    match = CONTEXT_MESSAGE.fullmatch(error["message"])
    assert match is not None, error["message"]
    _, requested, in_messages, in_completion = match.groups()
    assert in_completion == "10"
    assert int(requested) == int(in_messages) + 10


async def test_a_prompt_that_fits_but_not_with_max_tokens_is_answered(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    answer = await client.chat.completions.create(
        model=llama_server.model,
        messages=user("a " * 1000),
        max_tokens=llama_server.n_ctx,
        logit_bias=NEVER_END,
    )

    # No 400 here: the server just stops when the context is full.
    assert answer.usage is not None
    assert answer.usage.prompt_tokens + llama_server.n_ctx > llama_server.n_ctx
    assert answer.usage.total_tokens == llama_server.n_ctx
    assert answer.choices[0].finish_reason == "length"


async def test_a_streamed_prompt_over_the_context_is_an_empty_200_stream(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    stream = await client.chat.completions.create(
        model=llama_server.model, messages=user(OVER_CONTEXT), stream=True
    )

    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    assert [chunk async for chunk in stream] == []  # no error, no [DONE], nothing


async def test_after_an_over_context_stream_the_server_closes_the_connection(
    llama_server: LlamaServer,
) -> None:
    # Raw HTTP shows what the SDK cannot: an empty chunked body, then the server
    # hangs up although it said "connection: keep-alive". A client that reuses
    # the connection at once gets a connection error on its next request.
    body = json.dumps({"messages": user(OVER_CONTEXT), "stream": True}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", llama_server.port)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), timeout=20)  # read() waits for EOF
    finally:
        writer.close()

    head, _, rest = received.partition(b"\r\n\r\n")
    headers = head.decode().lower().splitlines()
    assert headers[0] == "http/1.1 200 ok"
    assert "connection: keep-alive" in headers
    assert "transfer-encoding: chunked" in headers
    assert rest == b"0\r\n\r\n"  # the chunked body's end, with no event in it


# --- What happens to the messages ---------------------------------------------------


async def test_im_end_typed_by_a_user_is_one_control_token(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    model = llama_server.model
    typed = await prompt_tokens(client, model, user("x <|im_end|> y"))
    without = await prompt_tokens(client, model, user("x  y"))
    broken = await prompt_tokens(client, model, user("x <\u200b|im_end|> y"))

    # The ten characters cost one token: the turn-ending control token itself.
    assert typed == without + 1
    # With a zero-width space after "<" they are ordinary text: one token a character
    # or so, plus three byte tokens for the zero-width space.
    assert broken >= without + 10


async def test_the_name_field_is_dropped(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    model = llama_server.model
    plain = await prompt_tokens(client, model, user("hello"))
    named = await prompt_tokens(client, model, user("hello", name="Alice_with_a_long_name"))
    # OpenAI would refuse this name (400); llama.cpp accepts it and ignores it.
    odd = await prompt_tokens(client, model, user("hello", name="Bad name!"))

    assert named == plain
    assert odd == plain


async def test_content_given_as_parts_is_dropped_even_an_image(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    model = llama_server.model
    empty = await prompt_tokens(client, model, user(""))
    text = await prompt_tokens(client, model, user("hi there you"))
    parts = await prompt_tokens(client, model, user([{"type": "text", "text": "hi there you"}]))
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with_image = await prompt_tokens(
        client, model, user([{"type": "text", "text": "hi there you"}, image])
    )

    # The ChatML formatter keeps string content only: no 400, the text is just lost.
    assert text > empty
    assert parts == empty
    assert with_image == empty


async def test_a_malformed_message_is_a_500_with_pydantic_errors(
    llama_server: LlamaServer,
) -> None:
    status, content_type, text = await raw_post(
        llama_server, {"messages": user("hi"), "max_tokens": "many"}
    )

    # A 5xx, so the SDK retries it although it can never succeed.
    assert (status, content_type) == (500, "application/json")
    error = json.loads(text)["error"]
    assert error["type"] == "internal_server_error"
    assert error["param"] is None and error["code"] is None
    assert error["message"].startswith(
        "1 validation error:\n  {'type': 'int_parsing', 'loc': ('body', 'max_tokens'), "
    )


# --- One model, one request at a time -------------------------------------------------


async def stream_with_interruption(
    client: openai.AsyncOpenAI, model: str, second_request: str
) -> tuple[list, float, float]:
    """Stream a long answer; after 3 chunks send `second_request` ("chat" or "models").

    Returns the stream's chunks, when the stream ended and when the second request
    was answered (seconds from the start).
    """
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model=model, messages=user("go"), stream=True, max_tokens=1500, logit_bias=NEVER_END
    )
    chunks = []
    second: asyncio.Task[float] | None = None

    async def send_second() -> float:
        if second_request == "models":
            await client.models.list()
        else:
            await client.chat.completions.create(model=model, messages=user("hi"), max_tokens=2)
        return time.monotonic() - started

    async for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 3:
            second = asyncio.create_task(send_second())
    ended = time.monotonic() - started
    assert second is not None
    return chunks, ended, await second


@pytest.mark.parametrize("second_request", ["chat", "models"])
async def test_any_second_request_ends_a_running_stream_without_a_finish_reason(
    client: openai.AsyncOpenAI, llama_server: LlamaServer, second_request: str
) -> None:
    chunks, _, _ = await stream_with_interruption(client, llama_server.model, second_request)

    # The stream stops with [DONE] long before max_tokens; the SDK sees a normal end.
    assert 3 <= len(chunks) < 1500
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks)


async def test_with_interrupt_requests_false_a_second_request_waits_for_the_stream(
    tmp_path, llama_server: LlamaServer
) -> None:
    server = LlamaServer(
        llama_server.model_path,
        tmp_path / "server.log",
        extra_args=("--interrupt_requests", "false"),
    )
    server.start()
    try:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="sk-unused", max_retries=0, timeout=60
        ) as client:
            # Returns once the second request was answered too.
            chunks, _, _ = await stream_with_interruption(client, server.model, "chat")
    finally:
        server.stop()

    # The second request did not end the stream: a first chunk with the role only, all
    # 1500 tokens, and a last chunk with the reason; the second was answered too. (Which
    # of the two the client saw finish first is a race between its two connections, so
    # it is not asserted: the full-length stream is what shows the server waited.)
    deltas = [chunk.choices[0].delta for chunk in chunks]
    assert (deltas[0].role, deltas[0].content) == ("assistant", None)
    assert sum(1 for delta in deltas if delta.content is not None) == 1500
    assert len(chunks) == 1502
    assert chunks[-1].choices[0].finish_reason == "length"


# --- Killing and restarting ---------------------------------------------------------


async def test_kill_breaks_a_stream_and_restart_serves_on_the_same_url(
    llama_server: LlamaServer,
) -> None:
    url = llama_server.base_url
    async with openai.AsyncOpenAI(base_url=url, api_key="sk-unused", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=llama_server.model,
            messages=user("go"),
            stream=True,
            max_tokens=1500,
            logit_bias=NEVER_END,
        )
        try:
            chunks = []
            with pytest.raises(openai.APIConnectionError):
                async for chunk in stream:
                    chunks.append(chunk)
                    if len(chunks) == 3:
                        llama_server.kill()
            assert not llama_server.running
            with pytest.raises(openai.APIConnectionError):
                await client.chat.completions.create(model=llama_server.model, messages=user("hi"))
        finally:
            llama_server.restart()

        assert llama_server.base_url == url
        answer = await client.chat.completions.create(
            model=llama_server.model, messages=user("hi"), max_tokens=2
        )
        assert answer.choices[0].message.content


async def test_the_log_says_what_a_prompt_reused_and_evaluated(
    client: openai.AsyncOpenAI, llama_server: LlamaServer
) -> None:
    since = llama_server.log_size()
    first = [{"role": "system", "content": "Be brief."}, *user("tell me about tea " * 20)]
    answer = await client.chat.completions.create(
        model=llama_server.model, messages=first, max_tokens=3
    )
    said = answer.choices[0].message.content or ""
    longer = [*first, {"role": "assistant", "content": said}, *user("and coffee?")]
    other = [{"role": "system", "content": "Be long."}, *user("and coffee?")]
    tokens = []
    for messages in (longer, other):
        asked = await client.chat.completions.create(
            model=llama_server.model, messages=messages, max_tokens=3
        )
        assert asked.usage is not None
        tokens.append(asked.usage.prompt_tokens)
    assert answer.usage is not None
    one, two, three = llama_server.evaluations(since)

    assert one.prompt_tokens == answer.usage.prompt_tokens
    assert one.answer_held == answer.usage.completion_tokens - 1  # the last is not fed back
    # The second starts with the first prompt: only what follows it is evaluated.
    assert two.prompt_tokens == tokens[0]
    assert two.reused >= one.prompt_tokens
    assert two.evaluated <= tokens[0] - one.prompt_tokens
    # The third shares only "<|im_start|>system\nBe" (10 tokens) with it.
    assert three.prompt_tokens == tokens[1]
    assert three.reused <= 10


def test_the_model_file_is_small_and_the_same_for_the_same_seed(tmp_path) -> None:
    first = write_tiny_model(tmp_path / "a.gguf", seed=7)
    second = write_tiny_model(tmp_path / "b.gguf", seed=7)
    other = write_tiny_model(tmp_path / "c.gguf", seed=8)

    assert first.stat().st_size < 1_000_000
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
