"""Strict chat templates: the pure reshaping (alternation, no system role) and reading
their refusals in every wording found."""

from __future__ import annotations

import itertools

import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.failures import Cause, classify
from model.request import RequestShape
from model.templates import (
    ALTERNATION,
    EARLIER,
    INSTRUCTIONS_HEADING,
    SYSTEM_ROLE,
    alternate,
    system_into_user,
    template_refusal,
)

NAMES = st.sampled_from(["Alice", "Bob", "Zoe", None])
WORDS = st.text(alphabet="abcdefghij ", min_size=1, max_size=12).map(str.strip).filter(bool)


@st.composite
def conversations(draw) -> list[dict]:
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(WORDS)})
    for _ in range(draw(st.integers(0, 8))):
        role = draw(st.sampled_from(["user", "assistant"]))
        message = {"role": role, "content": draw(WORDS)}
        name = draw(NAMES)
        if role == "user" and name:
            message["name"] = name
        messages.append(message)
    return messages


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content)


def _roles_alternate(messages: list[dict]) -> bool:
    roles = [m["role"] for m in messages if m["role"] != "system"]
    return all(a != b for a, b in itertools.pairwise(roles)) and (not roles or roles[0] == "user")


@given(conversations())
def test_alternate_makes_roles_alternate_and_loses_nothing(messages: list[dict]) -> None:
    shaped = alternate(messages)
    assert _roles_alternate(shaped)
    whole = "\n".join(_text(m) for m in shaped)
    position = 0
    for message in messages:  # every text is there, in order
        found = whole.find(message["content"], position)
        assert found != -1
        position = found
    # Who said what: each speaker's name is in the merged message's field or its text.
    for message in messages:
        if message.get("name"):
            assert any(
                m.get("name") == message["name"] or f"{message['name']}: " in _text(m)
                for m in shaped
            )


@given(conversations())
def test_system_into_user_leaves_no_system_message_and_keeps_the_instructions(
    messages: list[dict],
) -> None:
    shaped = system_into_user(messages)
    assert all(m["role"] != "system" for m in shaped)
    if messages and messages[0]["role"] == "system":
        assert messages[0]["content"] in _text(shaped[0]) and shaped[0]["role"] == "user"
    assert _roles_alternate(alternate(shaped))


def test_merged_turns_of_several_speakers_are_labelled() -> None:
    shaped = alternate(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi", "name": "Alice"},
            {"role": "user", "content": "Bob: hello", "name": "Bob"},
        ]
    )
    assert shaped == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Alice: hi\n\nBob: hello"},
    ]


def test_an_answer_that_opens_the_conversation_gets_a_user_turn_first() -> None:
    shaped = alternate([{"role": "assistant", "content": "Earlier answer"}])
    assert shaped[0] == {"role": "user", "content": EARLIER}


def test_pictures_survive_a_merge() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    shaped = alternate(
        [
            {"role": "user", "content": "look", "name": "Alice"},
            {"role": "user", "content": [{"type": "text", "text": "this"}, image]},
        ]
    )
    assert len(shaped) == 1 and image in shaped[0]["content"]


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        # vLLM / HF templates (run-llama/llama_index#11731).
        ("Conversation roles must alternate user/assistant/user/assistant/...", ALTERNATION),
        # llama.cpp --jinja, Ollama (mistralai/mistral-vibe#1006).
        (
            "Error: Jinja Exception: After the optional system message, conversation roles "
            "must alternate user and assistant roles except for tool calls and results.",
            ALTERNATION,
        ),
        # Bedrock through gateways (microsoft/semantic-kernel#10277).
        ("A conversation must alternate between user and assistant roles.", ALTERNATION),
        # Gemma on vLLM (vllm-project/vllm#2964), SGLang (sgl-project/sglang#892).
        ("System role not supported", SYSTEM_ROLE),
        ("Only user and assistant roles are supported!", SYSTEM_ROLE),
        ("This model does not support the system role", SYSTEM_ROLE),
        # DeepSeek (deepseek-ai/DeepSeek-R1#21).
        (
            "deepseek-reasoner does not support successive user or assistant messages "
            "(messages[1] and messages[2] in your input). You should interleave the "
            "user/assistant messages in the message sequence.",
            ALTERNATION,
        ),
        # Perplexity (perplexityai/api-discussion#265).
        (
            "After the (optional) system message(s), user and assistant roles should be "
            "alternating.",
            ALTERNATION,
        ),
        ("Consecutive messages with the same role are not allowed", ALTERNATION),
        ("two consecutive user messages", ALTERNATION),
        # OpenAI's o1 (open-webui/open-webui#5683).
        (
            "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
            SYSTEM_ROLE,
        ),
        ("'system' messages are not supported by this model", SYSTEM_ROLE),
        ("The system role is not allowed for this model", SYSTEM_ROLE),
        ("Rate limit reached", None),
        ("Unsupported value: 'temperature' does not support 0.2 with this model.", None),
    ],
)
def test_template_refusals_are_read_by_meaning(text: str, shape: str | None) -> None:
    assert template_refusal(text.lower()) == shape


def _status_error(status: int, body: dict) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://x/v1/chat/completions")
    response = httpx2.Response(status, json=body, request=request)
    cls = openai.BadRequestError if status == 400 else openai.InternalServerError
    return cls(f"Error code: {status}", response=response, body=body.get("error", body))


@pytest.mark.parametrize(
    ("status", "body", "shape"),
    [
        (
            400,
            {
                "object": "error",
                "message": "System role not supported",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
            SYSTEM_ROLE,
        ),
        (
            500,
            {
                "error": {
                    "code": 500,
                    "message": "Jinja Exception: After the optional system message, "
                    "conversation roles must alternate user and assistant roles",
                    "type": "server_error",
                }
            },
            ALTERNATION,
        ),
        (
            # OpenAI's o1: read as the system role, not as a refused field
            # `messages[0].role` the request shape could not drop.
            400,
            {
                "error": {
                    "message": "Unsupported value: 'messages[0].role' does not support "
                    "'system' with this model.",
                    "type": "invalid_request_error",
                    "param": "messages[0].role",
                    "code": "unsupported_value",
                }
            },
            SYSTEM_ROLE,
        ),
    ],
)
def test_a_template_refusal_is_classified_at_any_status(status, body, shape) -> None:
    failure = classify(_status_error(status, body))
    assert failure.cause is Cause.TEMPLATE_REFUSED and failure.parameter == shape


def test_the_request_shape_learns_each_template_once() -> None:
    from model.failures import Failure

    shape = RequestShape("max_tokens")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a", "name": "Alice"},
        {"role": "user", "content": "b", "name": "Alice"},
    ]
    refusal = Failure(Cause.TEMPLATE_REFUSED, parameter=ALTERNATION)
    assert shape.adapt(refusal)
    assert shape.adapt(refusal) == ""  # learnt already: not logged again
    sent = shape.arguments(messages, 10, stream=False)["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert shape.adapt(Failure(Cause.TEMPLATE_REFUSED, parameter=SYSTEM_ROLE))
    sent = shape.arguments(messages, 10, stream=False)["messages"]
    assert [m["role"] for m in sent] == ["user"]
    assert sent[0]["content"].startswith("Instructions:\nBe brief.")


def test_tool_calls_and_results_become_alternating_plain_turns_losing_nothing() -> None:
    # Strict templates that refuse two turns of one role refuse the `tool` role too: an
    # answer that used a tool was refused on every try (found by a tester, issue 22).
    calls = [
        {"id": "a", "type": "function", "function": {"name": "time__now", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "add", "arguments": '{"x": 1}'}},
    ]
    call = {"role": "assistant", "content": "Let me look.", "tool_calls": calls}
    results = [
        {"role": "tool", "tool_call_id": "a", "content": "noon"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
    ]
    sent = alternate([{"role": "user", "content": "add"}, call, *results])
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert all("tool_calls" not in m and "tool_call_id" not in m for m in sent)
    said, answered = sent[1]["content"], sent[2]["content"]
    assert said.startswith("Let me look.\n")
    assert "time__now (a) with {}" in said and 'add (b) with {"x": 1}' in said
    assert answered == "[result of a]\nnoon\n\n[result of b]\n2"


@given(conversations(), st.booleans())
def test_instructions_are_never_labelled_as_someones_words(
    messages: list[dict], alternating: bool
) -> None:
    # Issue 21 field report: with both adaptations and several speakers the system prompt
    # came out as "Alice: Instructions: ...", in the order RequestShape applies them.
    shape = RequestShape("max_tokens")
    shape.system_role = False
    shape.alternate = alternating
    sent = shape.arguments(messages, 10, stream=False)["messages"]
    if not messages or messages[0]["role"] != "system":
        return
    [holder] = [m for m in sent if INSTRUCTIONS_HEADING in _text(m)]
    assert "name" not in holder
    assert _text(holder).startswith(f"{INSTRUCTIONS_HEADING}\n{messages[0]['content']}")
    # Who said the rest is still told.
    for message in messages:
        if message.get("name"):
            assert any(
                m.get("name") == message["name"] or f"{message['name']}: " in _text(m) for m in sent
            )


def test_two_speakers_with_both_adaptations() -> None:
    shape = RequestShape("max_tokens")
    shape.system_role = False
    shape.alternate = True
    sent = shape.arguments(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi", "name": "Alice"},
            {"role": "user", "content": "hello", "name": "Bob"},
        ],
        10,
        stream=False,
    )["messages"]
    assert sent == [
        {"role": "user", "content": f"{INSTRUCTIONS_HEADING}\nBe brief.\n\nAlice: hi\n\nBob: hello"}
    ]
