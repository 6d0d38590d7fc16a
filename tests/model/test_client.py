"""ChatModel against the OpenAI stand-in (a real HTTP server), and its pure parts."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import load_settings
from conversation.notes import failure_sentence
from model.client import ChatModel
from model.errors import DeadlinePassed, EmptyAnswer
from model.failures import Cause, Failure, classify
from model.reading import RETRACT, Answer, Part, read_part
from model.request import (
    MAX_COMPLETION_TOKENS,
    MAX_TOKENS,
    Caller,
    RequestShape,
    cache_key,
    safety_identifier,
)
from model.retries import retry_wait
from tests.helpers import closed_port_url
from tests.standins.openai_standin import (
    EmptyReply,
    Error,
    Garbage,
    Hang,
    OpenAIStandIn,
    Reply,
    Stall,
    Step,
    prompt_tokens,
)

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello there", "name": "Alice"},
]
UNKNOWN_MODEL = "local-model"  # not an OpenAI model: the cap goes in max_tokens


def chat_model(base_url: str, *, timeout: float = 5, model: str = "gpt-5.4-mini") -> ChatModel:
    return ChatModel(
        load_settings(
            {
                "DISCORD_BOT_TOKEN": "token",
                "OPENAI_API_KEY": "sk-test",
                "OPENAI_BASE_URL": base_url,
                "OPENAI_MODEL": model,
                "OPENAI_TIMEOUT": str(timeout),
                "MAX_REPLY_TOKENS": "50",
            }
        )
    )


@pytest.fixture
async def model(openai_api: OpenAIStandIn) -> AsyncIterator[ChatModel]:
    chat = chat_model(openai_api.base_url)
    yield chat
    await chat.close()


async def collect(model: ChatModel, **kwargs) -> list[str | object]:
    return [piece async for piece in model.stream(MESSAGES, **kwargs)]


# --- the stream assembles text, usage and finish reason -----------------------------


async def test_a_stream_assembles_text_usage_and_finish_reason(
    model: ChatModel, openai_api: OpenAIStandIn
) -> None:
    openai_api.script(
        Reply("Hello there, how are you today?", chunks=["Hello", " there,", " how are you today?"])
    )
    pieces = await collect(model)
    *text, answer = pieces
    assert text == ["Hello", " there,", " how are you today?"]
    [request] = openai_api.chat_requests
    assert answer == Answer(
        "Hello there, how are you today?",
        prompt_tokens=prompt_tokens(request.json),
        completion_tokens=request.usage["completion_tokens"],
        finish_reason="stop",
        cached_tokens=0,  # the stand-in reports usage.prompt_tokens_details as OpenAI does
    )
    assert request.json["stream_options"] == {"include_usage": True}
    # A server other than OpenAI's (the stand-in's URL) gets max_tokens, whatever the model.
    assert request.json[MAX_TOKENS] == 50 and MAX_COMPLETION_TOKENS not in request.json


async def test_a_stream_without_usage_or_finish_reason(
    model: ChatModel, openai_api: OpenAIStandIn
) -> None:
    openai_api.usage_missing = True
    openai_api.script(Reply("Partly done", finish_reason=None))
    *_, answer = await collect(model)
    assert answer == Answer("Partly done", None, None, None)


async def test_the_cap_goes_where_the_server_honours_it(openai_api: OpenAIStandIn) -> None:
    # llama.cpp's server reads only max_tokens; a model tiktoken does not know is not
    # OpenAI's, so it gets max_tokens and the cap holds.
    openai_api.reply_cap_fields = (MAX_TOKENS,)
    model = chat_model(openai_api.base_url, model=UNKNOWN_MODEL)
    openai_api.script(Reply("word " * 200))
    try:
        answer = await model.complete(MESSAGES)
    finally:
        await model.close()
    [request] = openai_api.completions
    assert request[MAX_TOKENS] == 50 and MAX_COMPLETION_TOKENS not in request
    assert answer.finish_reason == "length"
    assert answer.completion_tokens == 50


# --- refused optional fields --------------------------------------------------------


@pytest.mark.parametrize(
    ("model_name", "refused", "style", "sent"),
    [
        ("gpt-5.4-mini", MAX_TOKENS, "vllm", {MAX_COMPLETION_TOKENS: 50}),
        (UNKNOWN_MODEL, MAX_TOKENS, "unsupported_parameter", {MAX_COMPLETION_TOKENS: 50}),
        ("gpt-5.4-mini", MAX_TOKENS, "azure", {MAX_COMPLETION_TOKENS: 50}),
        ("gpt-5.4-mini", "stream_options", "unknown_parameter", {"stream_options": None}),
    ],
)
async def test_a_refused_field_is_swapped_or_dropped_and_learnt(
    openai_api: OpenAIStandIn, caplog, model_name: str, refused: str, style, sent: dict
) -> None:
    openai_api.refuse_fields(refused, style=style)
    model = chat_model(openai_api.base_url, model=model_name)
    try:
        first = [p async for p in model.stream(MESSAGES)]
        second = await model.complete(MESSAGES)
    finally:
        await model.close()
    assert isinstance(first[-1], Answer) and second.text.startswith("echo:")
    refused_request, *accepted = openai_api.chat_requests
    assert refused_request.status == 400 and refused in refused_request.json
    assert [r.status for r in accepted] == [200, 200]  # one retry, then learnt
    for request in accepted:
        assert refused not in request.json
        for name, value in sent.items():
            assert request.json.get(name) == value
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and repr(refused) in warnings[0].getMessage()


async def test_refused_names_are_dropped(openai_api: OpenAIStandIn) -> None:
    openai_api.refuse_fields("messages[].name", style="vllm")
    model = chat_model(openai_api.base_url)
    try:
        answer = await model.complete(MESSAGES)
    finally:
        await model.close()
    assert answer.text == "echo: hello there"
    assert all("name" not in m for m in openai_api.completions[-1]["messages"])


@pytest.mark.parametrize(
    ("failure", "change", "after"),
    [
        (
            Failure(Cause.REFUSED_PARAMETER, parameter="max_tokens"),
            "instead",
            MAX_COMPLETION_TOKENS,
        ),
        (Failure(Cause.REFUSED_PARAMETER, parameter="temperature"), None, MAX_TOKENS),
        (Failure(Cause.REFUSED_PARAMETER, parameter=None), None, MAX_TOKENS),
        (Failure(Cause.CONTEXT_TOO_LONG), None, MAX_TOKENS),
        (Failure(Cause.REFUSED_PARAMETER, parameter="max_completion_tokens"), "", MAX_TOKENS),
    ],
)
def test_request_shape_adapts_only_to_fields_it_can_do_without(
    failure: Failure, change: str | None, after: str
) -> None:
    shape = RequestShape(MAX_TOKENS)
    result = shape.adapt(failure)
    if change is None:
        assert result is None
    else:
        assert result is not None and change in result
    assert shape.cap_field == after


def test_the_prompt_cache_key_is_a_stable_hash_per_channel_and_model() -> None:
    local = RequestShape.for_server("http://localhost:8080/v1")
    body = local.arguments(MESSAGES, 50, stream=False, caller=Caller(123, 456), model="m")
    key = body["prompt_cache_key"]
    # No per-process salt: the same key after a restart (and never the raw id).
    assert key == hashlib.sha256(b"discord-channel:123:m").hexdigest()[:32]
    assert "123" not in key and len({key, cache_key(124, "m"), cache_key(123, "n")}) == 3
    assert "safety_identifier" not in body  # for OpenAI's own API only
    openai = RequestShape.for_server(None)
    body = openai.arguments(MESSAGES, 50, stream=True, caller=Caller(123, 456), model="m")
    assert body["prompt_cache_key"] == key
    assert body["safety_identifier"] == safety_identifier(456) != safety_identifier(457)
    assert "456" not in body["safety_identifier"]
    assert "prompt_cache_key" not in openai.arguments(MESSAGES, 50, stream=False)
    for field in ("prompt_cache_key", "safety_identifier"):
        change = openai.adapt(Failure(Cause.REFUSED_PARAMETER, parameter=field))
        assert change == f"sending no {field} from now on"
        assert openai.adapt(Failure(Cause.REFUSED_PARAMETER, parameter=field)) == ""
    body = openai.arguments(MESSAGES, 50, stream=False, caller=Caller(123, 456), model="m")
    assert "prompt_cache_key" not in body and "safety_identifier" not in body


def test_request_shape_with_both_caps_refused_sends_none() -> None:
    shape = RequestShape(MAX_TOKENS)
    shape.adapt(Failure(Cause.REFUSED_PARAMETER, parameter=MAX_TOKENS))
    shape.adapt(Failure(Cause.REFUSED_PARAMETER, parameter=MAX_COMPLETION_TOKENS))
    arguments = shape.arguments(MESSAGES, 50, stream=False)
    assert MAX_TOKENS not in arguments and MAX_COMPLETION_TOKENS not in arguments
    assert shape.cap_field is None


@pytest.mark.parametrize(
    ("base_url", "field"),
    [
        (None, MAX_COMPLETION_TOKENS),
        ("https://api.openai.com/v1", MAX_COMPLETION_TOKENS),
        ("https://mine.openai.azure.com/openai/v1", MAX_COMPLETION_TOKENS),
        ("http://localhost:8080/v1", MAX_TOKENS),  # llama.cpp, even for --alias gpt-4o-mini
        ("https://openrouter.ai/api/v1", MAX_TOKENS),
    ],
)
def test_first_guess_is_by_server_not_model_name(base_url: str | None, field: str) -> None:
    assert RequestShape.for_server(base_url).cap_field == field


def test_a_usage_far_over_the_cap_swaps_the_field_once() -> None:
    shape = RequestShape(MAX_COMPLETION_TOKENS)
    assert shape.overran(60, 50) is None  # within a server's own counting
    change = shape.overran(3000, 50)
    assert change is not None and MAX_TOKENS in change
    assert shape.cap_field == MAX_TOKENS
    assert shape.overran(3000, 50) is None  # never swapped back and forth
    assert shape.cap_field == MAX_TOKENS


async def test_a_local_server_ignoring_max_completion_tokens_gets_max_tokens_next(
    openai_api: OpenAIStandIn, caplog
) -> None:
    # llama.cpp serving `--alias gpt-4o-mini` behind a URL that is not OpenAI's, first
    # guessed as OpenAI-hosted: it ignores max_completion_tokens and writes on.
    openai_api.reply_cap_fields = (MAX_TOKENS,)
    model = chat_model(openai_api.base_url, model="gpt-4o-mini")
    model.shapes["gpt-4o-mini"] = RequestShape(MAX_COMPLETION_TOKENS)
    openai_api.script(Reply("word " * 200), Reply("word " * 200))
    try:
        first = await model.complete(MESSAGES)
        second = await model.complete(MESSAGES)
    finally:
        await model.close()
    assert first.completion_tokens is not None and first.completion_tokens > 150
    assert second.completion_tokens == 50 and second.finish_reason == "length"
    assert MAX_TOKENS in openai_api.completions[1]
    assert "ignored max_completion_tokens" in caplog.text


# --- reasoning --------------------------------------------------------------------


@pytest.mark.parametrize("place", ["reasoning_content", "reasoning", "<think>"])
async def test_reasoning_is_never_yielded(
    model: ChatModel, openai_api: OpenAIStandIn, place
) -> None:
    openai_api.script(
        Reply("The answer.", reasoning="secret thoughts", reasoning_in=place, times=2)
    )
    pieces = await collect(model)
    assert "".join(p for p in pieces if isinstance(p, str)) == "The answer."
    assert (await model.complete(MESSAGES)).text == "The answer."


async def test_a_lone_closer_retracts_once_then_holds(
    model: ChatModel, openai_api: OpenAIStandIn, caplog
) -> None:
    openai_api.script(
        Reply("The answer.", reasoning="thinking it over at length", reasoning_in="</think>"),
        Reply("Second.", reasoning="more thoughts", reasoning_in="</think>"),
    )
    first = await collect(model)
    retracted = first.index(RETRACT)
    assert "".join(first[:retracted]) == "thinking it over at length"
    assert "".join(p for p in first[retracted + 1 : -1]) == "The answer."
    assert first[-1].text == "The answer."
    assert model.model in model.holding
    second = await collect(model)  # held back: nothing to retract
    assert RETRACT not in second
    assert "".join(second[:-1]) == "Second."
    assert caplog.text.count("lone </think>") == 1


async def test_a_held_model_streams_again_once_it_answers_without_a_lone_closer(
    model: ChatModel, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    model.holding.add(model.model)
    openai_api.script(
        Reply("Plain answer.", chunks=["Plain", " answer."]),
        Reply("Next one.", chunks=["Next", " one."]),
    )
    held = await collect(model)
    assert held[:-1] == ["Plain answer."]  # held back to the end, then released whole
    assert model.model not in model.holding  # recovered: not for the rest of the process
    assert "stream as written again" in caplog.text
    streamed = await collect(model)
    assert streamed[0] == "Next"  # flows as it arrives, not held to the end


# --- one deadline per answer ------------------------------------------------------


async def test_keep_alive_comments_are_not_progress(openai_api: OpenAIStandIn) -> None:
    openai_api.script(Stall(None, ping_every=0.1))
    model = chat_model(openai_api.base_url, timeout=0.6)
    started = time.monotonic()
    try:
        with pytest.raises(DeadlinePassed) as raised:
            await collect(model)
    finally:
        await model.close()
    assert 0.6 <= time.monotonic() - started < 1.5
    assert not raised.value.started
    assert len(openai_api.chat_requests[0].pings) >= 3  # the server kept pinging


async def test_a_stream_that_stops_producing_text_is_cut(openai_api: OpenAIStandIn) -> None:
    openai_api.script(Stall(None, before="The first words", ping_every=0.1))
    model = chat_model(openai_api.base_url, timeout=0.6)
    pieces: list[object] = []
    try:
        with pytest.raises(DeadlinePassed) as raised:
            async for piece in model.stream(MESSAGES):
                pieces.append(piece)
    finally:
        await model.close()
    assert "".join(pieces) == "The first words"
    assert raised.value.started


async def test_retries_fit_in_the_deadline(openai_api: OpenAIStandIn) -> None:
    # 0.4 s before each retry: the first fits in 0.6 s, the second would end past it,
    # so the server's own error is raised then and there.
    openai_api.script(Error.server_error(retry_after=0.4, times=3))
    model = chat_model(openai_api.base_url, timeout=0.6)
    started = time.monotonic()
    try:
        with pytest.raises(openai.InternalServerError):
            await model.complete(MESSAGES)
    finally:
        await model.close()
    assert 0.4 <= time.monotonic() - started < 0.6
    assert len(openai_api.chat_requests) == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_a_rate_limit_longer_than_the_deadline_is_reported_at_once(
    openai_api: OpenAIStandIn, stream: bool
) -> None:
    # The SDK would sleep out the 30 s, and the user would hear "took too long".
    openai_api.script(Error.rate_limited(30))
    model = chat_model(openai_api.base_url, timeout=5)
    started = time.monotonic()
    try:
        with pytest.raises(openai.RateLimitError):
            if stream:
                async for _ in model.stream(MESSAGES):
                    pass
            else:
                await model.complete(MESSAGES)
    finally:
        await model.close()
    assert time.monotonic() - started < 1
    assert len(openai_api.chat_requests) == 1


async def test_retries_follow_the_sdks_rules() -> None:
    request = httpx2.Request("POST", "http://model/v1/chat/completions")

    def failure(status: int, body: object = None, **headers: str) -> openai.APIStatusError:
        response = httpx2.Response(status, headers=headers, request=request)
        return openai.APIStatusError("failed", response=response, body=body)

    assert retry_wait(failure(429, **{"retry-after": "3"}), 0) == 3
    assert retry_wait(failure(503, **{"retry-after-ms": "250"}), 1) == 0.25
    assert 0.375 <= retry_wait(failure(500), 0) <= 0.5  # no Retry-After: backoff
    assert 0.75 <= retry_wait(failure(429, **{"retry-after": "600"}), 1) <= 1  # over 60 s
    assert retry_wait(failure(400), 0) is None
    assert retry_wait(failure(400, **{"x-should-retry": "true"}), 0) is not None
    assert retry_wait(failure(503, **{"x-should-retry": "false"}), 0) is None
    assert 0.375 <= retry_wait(openai.APIConnectionError(request=request), 0) <= 0.5
    no_credit = {"message": "You exceeded your current quota", "code": "insufficient_quota"}
    assert retry_wait(failure(429, no_credit, **{"retry-after": "1"}), 0) is None
    # A refusal the words name is no transient failure, whatever its status.
    for words in ("tools param requires --jinja flag", "image input is not supported"):
        assert retry_wait(failure(500, {"message": words}), 0) is None


async def test_a_deadline_given_by_the_caller_covers_everything(
    openai_api: OpenAIStandIn,
) -> None:
    openai_api.script(Reply("late", delay=0.5))
    model = chat_model(openai_api.base_url, timeout=5)
    try:
        with pytest.raises(DeadlinePassed):
            await model.complete(MESSAGES, deadline=asyncio.get_running_loop().time() + 0.2)
    finally:
        await model.close()


# --- one loop: transient retries, refused fields and the caller's lessons ------------

SHORTER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("stream", [False, True])
async def test_the_callers_lesson_is_asked_with_in_the_same_loop(
    openai_api: OpenAIStandIn, stream: bool
) -> None:
    # A transient failure is retried by the SDK's rules first; a refusal the client
    # cannot handle goes to the caller, whose messages are sent instead.
    openai_api.script(Error.rate_limited(0.01), Error.context_length_exceeded(), Reply("Fine."))
    lessons: list[Exception] = []

    def learn(error: Exception) -> list[dict[str, str]] | None:
        lessons.append(error)
        return SHORTER

    model = chat_model(openai_api.base_url)
    try:
        if stream:
            *_, answer = [piece async for piece in model.stream(MESSAGES, learn=learn)]
        else:
            answer = await model.complete(MESSAGES, learn=learn)
    finally:
        await model.close()
    assert answer.text == "Fine."
    [lesson] = lessons
    assert classify(lesson).cause is Cause.CONTEXT_TOO_LONG
    first, retried, asked_again = openai_api.completions
    assert first["messages"] == retried["messages"] == MESSAGES
    assert asked_again["messages"] == SHORTER


async def test_nothing_is_asked_again_once_text_that_stands_was_yielded(
    openai_api: OpenAIStandIn,
) -> None:
    openai_api.script(Stall(None, before="The first words", ping_every=0.1))
    lessons: list[Exception] = []

    def learn(error: Exception) -> None:
        lessons.append(error)

    model = chat_model(openai_api.base_url, timeout=0.6)
    try:
        with pytest.raises(DeadlinePassed):
            async for _ in model.stream(MESSAGES, learn=learn):
                pass
    finally:
        await model.close()
    assert lessons == [] and len(openai_api.chat_requests) == 1


async def test_a_refusal_the_caller_learns_nothing_from_is_raised(
    openai_api: OpenAIStandIn,
) -> None:
    openai_api.script(Error.context_length_exceeded(), Reply("Fine."))
    seen: list[Exception] = []

    def learn(error: Exception) -> list[dict[str, str]] | None:
        seen.append(error)
        return None  # nothing learnt: the error is the caller's

    model = chat_model(openai_api.base_url)
    try:
        with pytest.raises(openai.BadRequestError):
            async for _ in model.stream(MESSAGES, learn=learn):
                pass
    finally:
        await model.close()
    assert len(seen) == 1 and len(openai_api.chat_requests) == 1


# --- each failure kind maps to its sentence ---------------------------------------

OVERLOADED = Error(
    503,
    {"error": {"message": "The engine is currently overloaded.", "type": "server_error"}},
    {"retry-after-ms": "10"},
    times=3,
)
NOT_FOUND = Error(
    404,
    {
        "error": {
            "message": "The model `gpt-9` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    },
)
ODD_REQUEST = Error(
    400,
    {"error": {"message": "Invalid 'messages': bad.", "type": "invalid_request_error"}},
)

# (what the server does, the sentence the chat user reads). One row per failure kind.
SENTENCES: dict[str, tuple[Step | str, str]] = {
    "context too long": (
        Error.context_length_exceeded(),
        "This conversation is too long for the model. "
        "The bot's owner can lower MAX_CONTEXT_TOKENS.",
    ),
    "bad key": (
        Error.bad_auth(),
        "The model service rejected the bot's API key. "
        "The bot's owner needs to check OPENAI_API_KEY.",
    ),
    "unknown model": (
        NOT_FOUND,
        "The configured model isn't available. The bot's owner needs to check OPENAI_MODEL.",
    ),
    "refused parameter": (
        "refuse model",
        "The model service refused the bot's `model` setting, and the bot couldn't work "
        "around it. The bot's owner needs to check the model settings.",
    ),
    "overloaded": (
        OVERLOADED,
        "The model service is overloaded right now. Please try again in a minute.",
    ),
    "unreachable": (
        "closed port",
        "I couldn't reach the model service. Please try again in a little while.",
    ),
    "timed out": (
        Hang(times=3),
        "The model took too long to answer (no answer within 0.5 seconds). Please try again.",
    ),
    "rate limited": (
        Error.rate_limited(0.01, times=3),
        "The model is busy right now (rate limited). Please try again in a minute.",
    ),
    "out of credit": (
        Error.quota_exhausted(retry_after=0.01, times=3),
        "The bot's OpenAI account is out of credit, so I can't answer right now. "
        "The bot's owner needs to check billing.",
    ),
    "server error": (
        Error.server_error(retry_after=0.01, times=3),
        "The model service had an internal error. Please try again.",
    ),
    "other bad request": (
        ODD_REQUEST,
        "The model service rejected this request. Try rephrasing your message.",
    ),
    "empty answer": (EmptyReply(), "The model returned an empty answer. Please try again."),
    "reply cap used up": (
        Reply("", finish_reason="length"),
        "The model used up its reply allowance before writing anything. "
        "Try a simpler question, or ask the bot's owner to raise MAX_REPLY_TOKENS.",
    ),
    "unparseable": (
        Garbage(),
        "The model service sent a reply the bot couldn't read. Please try again.",
    ),
    "a proxy's page": (
        Garbage(content_type="text/html"),
        "The model service sent a reply the bot couldn't read. Please try again.",
    ),
}


@pytest.mark.parametrize("kind", SENTENCES)
async def test_each_failure_kind_has_its_sentence(openai_api: OpenAIStandIn, kind: str) -> None:
    what, sentence = SENTENCES[kind]
    base_url = openai_api.base_url
    if what == "closed port":
        base_url = f"{closed_port_url()}/v1"
    elif what == "refuse model":
        openai_api.refuse_fields("model")
    else:
        assert isinstance(what, Step)
        openai_api.script(what)
    # A short deadline only where the model hangs: elsewhere the SDK's retries need time.
    timeout = 0.5 if isinstance(what, Hang) else 5.0
    model = chat_model(base_url, timeout=timeout)
    try:
        with pytest.raises(Exception) as raised:
            await model.complete(MESSAGES)
    finally:
        await model.close()
    error = raised.value
    assert failure_sentence(error, classify(error, deadline=timeout)) == sentence


def test_a_prompt_still_too_long_after_shortening() -> None:
    failure = Failure(Cause.CONTEXT_TOO_LONG)
    assert failure_sentence(EmptyAnswer(None, silent=True), failure, history_shortened=True) == (
        "This conversation is too long for the model, even with older messages left out. "
        "Try a shorter message."
    )


# --- odd shapes servers send: read, never raised on --------------------------------

ODD_BODIES: list[object] = [
    None, 17, "text", [1, 2], {"choices": None}, {"choices": {"0": {}}}, {"choices": "abc"},
    {"choices": [None]}, {"choices": [{"delta": "hi"}]}, {"choices": [{"message": None}]},
    {"choices": [{"message": {"content": 42}}]}, {"choices": [{"message": {"content": ["a"]}}]},
    {"usage": "lots"}, {"usage": {"prompt_tokens": "12", "completion_tokens": 3.5}},
    {"usage": {"prompt_tokens": True, "completion_tokens": -1}},
    {"choices": [{"finish_reason": 7, "delta": {"content": None}}]},
]  # fmt: skip


@pytest.mark.parametrize("body", ODD_BODIES)
@pytest.mark.parametrize("key", ["message", "delta"])
def test_odd_shapes_read_as_absent(body: object, key: str) -> None:
    part = read_part(body, key)
    assert (part.text, part.reasoning, part.finish_reason) == ("", False, None)
    assert (part.prompt_tokens, part.completion_tokens) == (None, None)


def test_a_completion_and_a_chunk_are_read() -> None:
    completion = {
        "choices": [{"message": {"content": "Hi."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3},
    }
    assert read_part(completion, "message") == Part("Hi.", False, "stop", 12, 3, True)
    chunk = {"choices": [{"delta": {"reasoning_content": "hmm", "content": None}}]}
    assert read_part(chunk, "delta") == Part(reasoning=True)


@pytest.mark.parametrize(
    ("usage", "cached"),
    [
        ({"prompt_tokens": 2048, "prompt_tokens_details": {"cached_tokens": 1920}}, 1920),
        ({"prompt_tokens": 2048, "prompt_tokens_details": {"cached_tokens": 0}}, 0),
        ({"prompt_tokens": 2048}, None),  # a server that reports no cache
        ({"prompt_tokens": 2048, "prompt_tokens_details": None}, None),
        ({"prompt_tokens": 2048, "prompt_tokens_details": {"cached_tokens": "9"}}, None),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 99}}, 10),
    ],
)
def test_cached_prompt_tokens_are_read_when_reported(usage: dict, cached: int | None) -> None:
    assert read_part({"choices": [], "usage": usage}, "message").cached_tokens == cached


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_read_part_never_raises(body: object) -> None:  # fmt: skip
    for key in ("message", "delta"):
        assert isinstance(read_part(body, key), Part)
