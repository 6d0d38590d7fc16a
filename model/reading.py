"""Reading what the server answers: a completion, or a stream of chunks, as plain JSON.

Servers send odd shapes (nulls, numbers, lists where objects belong; counts as
strings): `read_part` never raises on them. Only `content` is text: reasoning sent in
separate fields (`reasoning_content`, `reasoning`) is never shown, and `<think>` blocks
in the text are removed (reasoning.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from model.errors import DeadlinePassed, EmptyAnswer, UnreadableReply
from model.reasoning import ReasoningFilter
from tools.base import ToolCall


class Retract:
    """Yielded by `ChatModel.stream`: all text yielded before was reasoning; withdraw it."""


RETRACT = Retract()


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished completion; `tool_calls`: the tools the model asked to run, in order
    (its `text` may then be empty)."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    cached_tokens: int | None = None  # of `prompt_tokens`, served from the server's cache


@dataclass(frozen=True, slots=True)
class Part:
    """What a completion, or one streamed chunk of it, says (`read_part`)."""

    text: str = ""  # the first choice's content ("" when absent or not a string)
    reasoning: bool = False  # it carries reasoning in a field of its own
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    has_usage: bool = False
    tool_calls: tuple[dict[str, Any], ...] = ()  # the message's or delta's, as sent
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens


def read_part(body: object, key: str) -> Part:
    """Read a chat completion (`key` "message") or a streamed chunk (`key` "delta").

    Anything not of the documented type counts as absent, so this never raises.
    `cached_tokens` is OpenAI's `usage.prompt_tokens_details.cached_tokens` (the prompt
    tokens served from its prompt cache; vLLM and others report it the same way), or
    None when the server reports none.
    Reasoning in `reasoning_content` (vLLM, DeepSeek) or `reasoning` (Ollama,
    OpenRouter) only sets `reasoning`.
    """
    fields = _object(body)
    choices = fields.get("choices")
    choice = _object(choices[0]) if isinstance(choices, list) and choices else {}
    said = _object(choice.get(key))
    content = said.get("content")
    finish = choice.get("finish_reason")
    usage = fields.get("usage")
    counts = _object(usage)
    return Part(
        text=content if isinstance(content, str) else "",
        reasoning=bool(said.get("reasoning_content") or said.get("reasoning")),
        # Lower-cased: some servers shout their reasons ("STOP", "MAX_TOKENS").
        finish_reason=finish.lower() if isinstance(finish, str) else None,
        prompt_tokens=_tokens(counts.get("prompt_tokens")),
        completion_tokens=_tokens(counts.get("completion_tokens")),
        cached_tokens=_cached(counts),
        has_usage=isinstance(usage, dict),
        tool_calls=tuple(_object(call) for call in _list(said.get("tool_calls"))),
    )


def whole_tool_calls(calls: tuple[dict[str, Any], ...]) -> tuple[ToolCall, ...]:
    """The tool calls of a whole message (`Part.tool_calls` of key "message"):
    `{"id", "type": "function", "function": {"name", "arguments"}}` each (OpenAI's
    chat-completions reference). A call without an id gets one made up (the follow-up
    request must name each call by id); one without a name is kept with "" (the loop
    answers it with an error)."""
    calls_read = ToolCalls()
    for call in calls:
        calls_read.add(call, whole=True)
    return calls_read.calls()


class ToolCalls:
    """Tool calls put together from streamed deltas (`Part.tool_calls` of key
    "delta"), as OpenAI streams them: each delta's entries carry an `index`; the
    first entry of an index has the call's `id` and `function.name`, later ones add
    to `function.arguments`. Servers that send each call whole, or without an index,
    are read too: an entry with a new `id` is a new call."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.names: list[str] = []
        self.arguments: list[list[str]] = []
        self.slots: dict[int, int] = {}  # the server's index -> position here

    def add(self, entry: dict[str, Any], *, whole: bool = False) -> None:
        """Take one entry of a delta's `tool_calls` (`whole`: of a message's, where
        every entry is a call of its own)."""
        function = _object(entry.get("function"))
        index = entry.get("index")
        call_id = entry.get("id") if isinstance(entry.get("id"), str) else ""
        if type(index) is int and not whole:
            slot = self.slots.get(index)
        else:  # no index: a new call when it has an id, else more of the last one
            slot = len(self.ids) - 1 if self.ids and not call_id and not whole else None
        if slot is None or (call_id and self.ids[slot] and call_id != self.ids[slot]):
            slot = len(self.ids)
            if type(index) is int:
                self.slots[index] = slot
            self.ids.append("")
            self.names.append("")
            self.arguments.append([])
        if call_id:
            self.ids[slot] = call_id
        name = function.get("name")
        if isinstance(name, str) and name:
            self.names[slot] = name
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            self.arguments[slot].append(arguments)
        elif isinstance(arguments, dict):  # some servers send the object itself
            self.arguments[slot].append(json.dumps(arguments))

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(call_id or f"call_{n}", name, "".join(arguments))
            for n, (call_id, name, arguments) in enumerate(
                zip(self.ids, self.names, self.arguments, strict=True)
            )
        )


class StreamReader:
    """One streamed request's chunks turned into what to show, and its `Answer`.

    `expires` (event-loop time) is when the next text must have come; every chunk with
    text, even reasoning not shown, moves it `timeout` seconds on. SSE keep-alive
    comments are not text. `hold`: the model is known to write a lone `</think>`, so
    text before it is held back rather than retracted.
    """

    def __init__(self, timeout: float, expires: float, *, hold: bool) -> None:
        self.timeout = timeout
        self.expires = expires
        self.reasoning = ReasoningFilter(hold=hold)
        self.parts: list[str] = []  # the visible text so far, since any retraction
        self.finish_reason: str | None = None
        self.usage: Part | None = None
        self.chunks_seen = 0
        self.started = False  # some text (reasoning included) came
        self.tool_calls = ToolCalls()

    @property
    def shown(self) -> bool:
        """Whether text that stands (not retracted) was handed out to be shown."""
        return bool("".join(self.parts).strip())

    async def next_chunk(self, chunks: AsyncIterator[object]) -> dict[str, Any] | None:
        """The next chunk that is a JSON object, None at the stream's end.

        Raises `DeadlinePassed` when none came by `expires`, `UnreadableReply` for
        broken JSON. Chunks that are JSON but no object are skipped: nothing to read.
        """
        while True:
            try:
                async with asyncio.timeout_at(self.expires):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return None
            except TimeoutError as error:
                raise DeadlinePassed(self.timeout, started=self.started) from error
            except json.JSONDecodeError as error:
                raise UnreadableReply(f"broken JSON in the stream: {error}") from error
            if isinstance(chunk, dict):
                return chunk

    def take(self, chunk: dict[str, Any]) -> list[str | Retract]:
        """What `chunk` adds: its visible text, after `RETRACT` when all text handed
        out before turned out to be reasoning."""
        self.chunks_seen += 1
        part = read_part(chunk, "delta")
        if part.has_usage:  # the last chunk: no choices, only usage
            self.usage = part
        self.finish_reason = part.finish_reason or self.finish_reason
        for entry in part.tool_calls:
            self.tool_calls.add(entry)
        if part.text or part.reasoning or part.tool_calls:
            self.started = True
            self.expires = asyncio.get_running_loop().time() + self.timeout
        release = self.reasoning.feed(part.text)
        pieces: list[str | Retract] = []
        if release.retract:
            self.parts.clear()
            pieces.append(RETRACT)
        if release.visible:
            self.parts.append(release.visible)
            pieces.append(release.visible)
        return pieces

    def finish(self) -> str:
        """The visible text held back until the stream's end ("" when none)."""
        rest = self.reasoning.finish().visible
        if rest:
            self.parts.append(rest)
        return rest

    def answer(self) -> Answer:
        """The finished answer; raises `EmptyAnswer` when it has neither visible text
        nor tool calls."""
        text = "".join(self.parts).strip()
        calls = self.tool_calls.calls()
        if not text and not calls:
            raise EmptyAnswer(self.finish_reason, silent=self.chunks_seen == 0)
        usage = self.usage
        prompt_tokens = usage.prompt_tokens if usage else None
        completion_tokens = usage.completion_tokens if usage else None
        cached = usage.cached_tokens if usage else None
        return Answer(text, prompt_tokens, completion_tokens, self.finish_reason, calls, cached)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _tokens(value: object) -> int | None:
    # bool is an int in Python; a count is not.
    return value if type(value) is int and value >= 0 else None


def _cached(counts: dict[str, Any]) -> int | None:
    """The cached prompt tokens in a usage object, at most its prompt tokens."""
    cached = _tokens(_object(counts.get("prompt_tokens_details")).get("cached_tokens"))
    prompt = _tokens(counts.get("prompt_tokens"))
    return min(cached, prompt) if cached is not None and prompt is not None else cached
