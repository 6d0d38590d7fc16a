"""ChatModel with tools against the OpenAI stand-in, and reading tool calls."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.client import ChatModel
from model.errors import EmptyAnswer
from model.failures import Cause, classify
from model.reading import Answer, ToolCalls, read_part, whole_tool_calls
from tests.model.test_client import MESSAGES, chat_model
from tests.standins.openai_standin import Call, EmptyReply, OpenAIStandIn
from tests.standins.openai_standin import ToolCalls as Calling
from tools.base import ToolCall

TOOLS = [
    {
        "type": "function",
        "function": {"name": "clock", "description": "The time", "parameters": {"type": "object"}},
    }
]


@pytest.fixture
async def model(openai_api: OpenAIStandIn) -> AsyncIterator[ChatModel]:
    chat = chat_model(openai_api.base_url)
    yield chat
    await chat.close()


async def last(model: ChatModel, **kwargs) -> Answer:
    pieces = [piece async for piece in model.stream(MESSAGES, **kwargs)]
    assert isinstance(pieces[-1], Answer)
    return pieces[-1]


async def test_no_tools_no_tools_field(openai_api: OpenAIStandIn, model: ChatModel) -> None:
    await model.complete(MESSAGES)
    await model.complete(MESSAGES, tools=[])
    assert all("tools" not in b and "tool_choice" not in b for b in openai_api.completions)


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_calls_are_read_whole_and_streamed(
    openai_api: OpenAIStandIn, model: ChatModel, streamed: bool
) -> None:
    calls = [Call("clock", '{"zone": "UTC"}', id="call_a"), Call("clock", "{oops", id="call_b")]
    openai_api.script(Calling(calls, piece=3))
    answer = await (last(model, tools=TOOLS) if streamed else model.complete(MESSAGES, tools=TOOLS))
    assert answer.tool_calls == (
        ToolCall("call_a", "clock", '{"zone": "UTC"}'),
        ToolCall("call_b", "clock", "{oops"),
    )
    assert answer.text == "" and answer.finish_reason == "tool_calls"
    assert answer.completion_tokens  # usage came
    [body] = openai_api.completions
    assert body["tools"] == TOOLS and body["tool_choice"] == "auto"


async def test_text_before_tool_calls_is_kept(openai_api: OpenAIStandIn, model: ChatModel) -> None:
    openai_api.script(Calling([Call("clock")], text="Let me look.", whole_deltas=True))
    answer = await last(model, tools=TOOLS)
    assert answer.text == "Let me look." and [c.name for c in answer.tool_calls] == ["clock"]


async def test_no_text_and_no_calls_is_still_empty(
    openai_api: OpenAIStandIn, model: ChatModel
) -> None:
    openai_api.script(EmptyReply(content=None))
    with pytest.raises(EmptyAnswer):
        await model.complete(MESSAGES, tools=TOOLS)


@pytest.mark.parametrize(
    "style", ["ollama", "vllm", "litellm", "llama.cpp", "llama_cpp_python", "openai"]
)
async def test_a_server_refusing_tools_gets_none_again(
    openai_api: OpenAIStandIn, model: ChatModel, style: str, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    if style == "openai":
        openai_api.refuse_fields("tools")
    else:
        openai_api.refuse_tools(style)
    answer = await model.complete(MESSAGES, tools=TOOLS)
    assert answer.text == "echo: hello there"
    assert not model.takes_tools()
    await model.complete(MESSAGES, tools=TOOLS)
    first, *rest = openai_api.completions
    assert "tools" in first and all("tools" not in b and "tool_choice" not in b for b in rest)
    assert len(rest) == 2  # asked again at once, and the next answer sends none
    warnings = [r for r in caplog.records if "no tools" in r.getMessage()]
    assert len(warnings) == 1


def refusal(message: str) -> openai.BadRequestError:
    request = httpx2.Request("POST", "http://x/v1/chat/completions")
    response = httpx2.Response(400, request=request)
    return openai.BadRequestError(message, response=response, body={"message": message})


@pytest.mark.parametrize(
    "message",
    [
        "registry.ollama.ai/library/gemma:2b does not support tools",
        '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
        "tools param requires --jinja flag",
        "Unsupported param: tools",
        "Tool use is not supported for this model",
    ],
)
def test_tools_refusals_name_tools(message: str) -> None:
    failure = classify(refusal(message))
    assert failure.cause is Cause.REFUSED_PARAMETER and failure.parameter == "tools"


def test_streamed_deltas_by_index_and_without() -> None:
    calls = ToolCalls()
    for entry in [
        {"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}},
        {"index": 0, "function": {"arguments": '{"x":'}},
        {"index": 0, "function": {"arguments": "1}"}},
        {"index": 1, "function": {"arguments": "}"}},
        # A server that sends each call whole, without an index.
        {"id": "c", "function": {"name": "h", "arguments": {"y": 2}}},
        # Index reused for a new call (a new id): a call of its own.
        {"index": 0, "id": "d", "function": {"name": "k", "arguments": "{}"}},
    ]:
        calls.add(entry)
    assert calls.calls() == (
        ToolCall("a", "f", '{"x":1}'),
        ToolCall("b", "g", "{}"),
        ToolCall("c", "h", '{"y": 2}'),
        ToolCall("d", "k", "{}"),
    )


def test_whole_calls_read_defensively() -> None:
    part = read_part(
        {
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {"function": {"name": "f", "arguments": "{}"}},  # no id
                            "junk",
                            {"id": "x", "function": None},
                        ],
                    }
                }
            ]
        },
        "message",
    )
    calls = whole_tool_calls(part.tool_calls)
    assert [c.name for c in calls] == ["f", "", ""]
    assert len({c.id for c in calls}) == 3 and calls[2].id == "x"


@given(
    st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_reading_tool_calls_never_raises(value: object) -> None:
    for key in ("message", "delta"):
        part = read_part({"choices": [{key: {"tool_calls": value}}]}, key)
        whole_tool_calls(part.tool_calls)
        calls = ToolCalls()
        for entry in part.tool_calls:
            calls.add(entry)
        calls.calls()
