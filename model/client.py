"""Calls to the chat-completions API of OpenAI or any OpenAI-compatible server.

One `AsyncOpenAI` client serves the whole process. At most MAX_CONCURRENT_REQUESTS calls
are in flight; others wait their turn.

What the bot adapts to by itself, for the life of the process:

- Request fields (`RequestShape`). The reply cap goes in `max_completion_tokens` for
  OpenAI's models (OpenAI refuses `max_tokens` for reasoning models and refuses both
  together) and in `max_tokens` for every other model (llama.cpp's server and LiteLLM's
  passthrough ignore `max_completion_tokens`). An optional field the server refuses
  with a 400 naming it (`max_tokens`, `max_completion_tokens`, `stream_options`, a
  message's `name`) is swapped or dropped and the request sent again, within the same
  answer; one WARNING names the field.
- Reasoning. `<think>...</think>` in the answer is removed (reasoning.py); reasoning a
  server sends in separate fields (`reasoning_content`, `reasoning`) is never read. A
  model that writes a lone `</think>` makes a streamed answer retract what it showed
  (`RETRACT`), and from then on its streamed text is held back until its closer.

One deadline per answer (OPENAI_TIMEOUT seconds, `deadline` in the calls): by then
the server must have sent some of the answer's text, retries (`_send`) and resends
after a refused field included; a stream must then send more text at least that often.
SSE keep-alive comments are not text. When it passes, `DeadlinePassed` is raised; a
retry that would wait past it is not made, and the server's own error is raised.

Replies are read as plain JSON (`read_part`), never raising on odd shapes; a reply
that is not JSON at all raises `UnreadableReply`.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai

from config import Settings
from model.failures import Cause, Failure, UnreadableReply, classify
from model.reasoning import ReasoningFilter, strip_reasoning
from text.tokens import counts_exactly

log = logging.getLogger(__name__)

MAX_COMPLETION_TOKENS = "max_completion_tokens"
MAX_TOKENS = "max_tokens"
STREAM_OPTIONS = "stream_options"
REASONING_EFFORT = "reasoning_effort"
# A refused field may be retried around this many times in one answer (each field
# that can be dropped or swapped once, plus answers racing to learn the same one).
MAX_ADAPTATIONS = 4
# Retries of a failed request, by the rules of the OpenAI SDK's own (openai-python's
# _base_client: connection errors, 408, 409, 429 and 5xx, or as `x-should-retry`
# says; Retry-After up to 60 s is honoured, else 0.5 s doubling to 8 s, jittered),
# run here so that none waits past the answer's deadline.
MAX_RETRIES = 2
RETRY_AFTER_LIMIT = 60.0


class EmptyAnswer(Exception):
    """The API answered, but with no text to post.

    `silent`: a stream that carried no chunk at all, which is how llama-cpp-python's
    server answers a streamed prompt that does not fit its window.
    """

    def __init__(self, finish_reason: str | None, *, silent: bool = False) -> None:
        super().__init__(f"the model returned no text (finish_reason={finish_reason!r})")
        self.finish_reason = finish_reason
        self.silent = silent

    def user_message(self) -> str:
        """One short sentence for the chat user about the empty answer."""
        if self.finish_reason == "length":
            return (
                "The model used up its reply allowance before writing anything. "
                "Try a simpler question, or ask the bot's owner to raise MAX_REPLY_TOKENS."
            )
        if self.finish_reason == "content_filter":
            return "The model's content filter blocked this answer."
        return "The model returned an empty answer. Please try again."


class DeadlinePassed(TimeoutError):
    """The answer's deadline passed: `seconds` without any text (`started=False`: before
    the answer began; True: the stream stopped producing text)."""

    def __init__(self, seconds: float, *, started: bool) -> None:
        what = "the answer stopped for" if started else "no answer began within"
        super().__init__(f"{what} {seconds:g} s (OPENAI_TIMEOUT)")
        self.seconds = seconds
        self.started = started


class Retract:
    """Yielded by `ChatModel.stream`: all text yielded before was reasoning; withdraw it."""


RETRACT = Retract()


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished completion."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None


@dataclass
class RequestShape:
    """Which optional request fields the server gets, learnt from its refusals.

    `cap_field`: where the reply cap goes (None: nowhere, the server refused both).
    """

    cap_field: str | None
    stream_options: bool = True
    names: bool = True
    refused: set[str] = field(default_factory=set)

    @classmethod
    def for_model(cls, model: str) -> RequestShape:
        """The first guess: `max_completion_tokens` for an OpenAI model (one tiktoken
        knows), which OpenAI requires for reasoning models and gateways in front of
        OpenAI pass on; `max_tokens` for any other, which local servers honour."""
        return cls(MAX_COMPLETION_TOKENS if counts_exactly(model) else MAX_TOKENS)

    def arguments(
        self,
        messages: list[dict[str, Any]],
        max_reply_tokens: int,
        *,
        stream: bool,
        reasoning_effort: str | None = None,
    ) -> dict[str, Any]:
        """The request body besides `model` for `messages`; `reasoning_effort` only
        when set (a /settings choice) and not refused."""
        if not self.names:
            messages = [{k: v for k, v in m.items() if k != "name"} for m in messages]
        arguments: dict[str, Any] = {"messages": messages}
        if self.cap_field is not None:
            arguments[self.cap_field] = max_reply_tokens
        if reasoning_effort is not None and REASONING_EFFORT not in self.refused:
            arguments[REASONING_EFFORT] = reasoning_effort
        if stream:
            arguments["stream"] = True
            if self.stream_options:
                arguments[STREAM_OPTIONS] = {"include_usage": True}
        return arguments

    def adapt(self, failure: Failure) -> str | None:
        """Change the shape so that a request refused with `failure` may succeed.

        Returns what changed, for the log ("" when another answer already learnt it),
        or None when the refusal is not about a field the bot can do without.
        """
        if failure.cause is not Cause.REFUSED_PARAMETER or not failure.parameter:
            return None
        path = [part for part in re.split(r"[.\[\]]+", failure.parameter) if part]
        top, leaf = path[0], path[-1]
        if top in self.refused or (top == "messages" and leaf == "name" and not self.names):
            return ""
        if top in (MAX_COMPLETION_TOKENS, MAX_TOKENS):
            self.refused.add(top)
            if top != self.cap_field:
                return ""
            other = MAX_TOKENS if top == MAX_COMPLETION_TOKENS else MAX_COMPLETION_TOKENS
            if other in self.refused:
                self.cap_field = None
                return "sending no reply cap from now on"
            self.cap_field = other
            return f"sending {other} instead from now on"
        if top == STREAM_OPTIONS:
            self.refused.add(top)
            self.stream_options = False
            return "streaming without it from now on (no usage figures when streamed)"
        if top == REASONING_EFFORT:
            self.refused.add(top)
            return "sending no reasoning effort from now on"
        if top == "name" or (top == "messages" and leaf == "name"):
            self.names = False
            return "sending messages without `name` from now on"
        return None


class ChatModel:
    """The configured model behind one shared async client."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.openai_model
        self.max_reply_tokens = settings.max_reply_tokens
        self.timeout = settings.openai_timeout
        # Per model (a channel may choose its own): the request fields its server takes.
        self.shapes: dict[str, RequestShape] = {}
        # Models seen to write a lone </think>: their streamed text is held back.
        self.holding: set[str] = set()
        self.client = openai.AsyncOpenAI(
            # Local OpenAI-compatible servers ignore the key, but the SDK requires one.
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.openai_base_url,
            # No single attempt may outlast the answer's deadline.
            timeout=settings.openai_timeout,
            # Retries are ours (`_send`): the SDK would sleep out a Retry-After longer
            # than the deadline, and a rate limit would reach the user as a timeout.
            max_retries=0,
        )
        # asyncio.Semaphore wakes waiters first-come, first-served.
        self.slots = asyncio.Semaphore(settings.max_concurrent_requests)

    def deadline(self) -> float:
        """The event-loop time by which an answer asked for now must begin."""
        return asyncio.get_running_loop().time() + self.timeout

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        reasoning_effort: str | None = None,
        deadline: float | None = None,
    ) -> Answer:
        """The answer of `model` (default OPENAI_MODEL) to `messages`, by `deadline`
        (loop time; default: now plus OPENAI_TIMEOUT); `reasoning_effort` is sent only
        when given.

        Raises the SDK's `openai.OpenAIError`s, `DeadlinePassed`, or `EmptyAnswer`
        when there is no text.
        """
        expires = self.deadline() if deadline is None else deadline
        async with self.slots:
            try:
                async with asyncio.timeout_at(expires):
                    response = await self._create(
                        messages, model or self.model, reasoning_effort, expires, stream=False
                    )
            except TimeoutError as error:
                raise DeadlinePassed(self.timeout, started=False) from error
            except json.JSONDecodeError as error:
                raise UnreadableReply(f"broken JSON: {error}") from error
        if not isinstance(response, dict):
            raise UnreadableReply(f"not a JSON object: {str(response)[:200]!r}")
        error = response.get("error")
        if isinstance(error, dict) and not response.get("choices"):
            # Some proxies and gateways answer 200 with an error object, as a stream's
            # error event carries one: raise it as the SDK does there, to be classified.
            request = httpx2.Request("POST", self.client.base_url.join("chat/completions"))
            raise openai.APIError(str(error.get("message") or error), request, body=error)
        part = read_part(response, "message")
        # Only `content` is read: reasoning in `reasoning_content`/`reasoning` is ignored.
        text = strip_reasoning(part.text).strip()
        if not text:
            raise EmptyAnswer(part.finish_reason)
        return Answer(text, part.prompt_tokens, part.completion_tokens, part.finish_reason)

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        reasoning_effort: str | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[str | Retract | Answer]:
        """Yield the answer's text as it arrives, `RETRACT` when the text yielded so far
        turned out to be reasoning, then the finished `Answer` last.

        `model` and `reasoning_effort` as for `complete`. Raises like `complete`; a
        stream that breaks, or produces no text for OPENAI_TIMEOUT seconds, raises
        mid-iteration.
        """
        model = model or self.model
        loop = asyncio.get_running_loop()
        expires = self.deadline() if deadline is None else deadline
        parts: list[str] = []
        finish_reason = None
        usage: Part | None = None
        chunks_seen = 0
        started = False
        reasoning = ReasoningFilter(hold=model in self.holding)
        async with self.slots:
            try:
                async with asyncio.timeout_at(expires):
                    stream = await self._create(
                        messages, model, reasoning_effort, expires, stream=True
                    )
            except TimeoutError as error:
                raise DeadlinePassed(self.timeout, started=False) from error
            async with stream:
                chunks = aiter(stream)
                while True:
                    # Yields happen outside the timeout: it only ever covers our own wait.
                    try:
                        async with asyncio.timeout_at(expires):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    except TimeoutError as error:
                        raise DeadlinePassed(self.timeout, started=started) from error
                    except json.JSONDecodeError as error:
                        raise UnreadableReply(f"broken JSON in the stream: {error}") from error
                    if not isinstance(chunk, dict):
                        continue  # not a chunk (JSON, but no object): nothing to read
                    chunks_seen += 1
                    part = read_part(chunk, "delta")
                    if part.has_usage:  # the last chunk: no choices, only usage
                        usage = part
                    finish_reason = part.finish_reason or finish_reason
                    content = part.text
                    if content or part.reasoning:
                        # Text, even reasoning not shown, is progress; pings are not.
                        started = True
                        expires = loop.time() + self.timeout
                    release = reasoning.feed(content)
                    if release.retract:
                        self._learn_lone_closer(model)
                        parts.clear()
                        yield RETRACT
                    if release.visible:
                        parts.append(release.visible)
                        yield release.visible
        if rest := reasoning.finish().visible:
            parts.append(rest)
            yield rest
        text = "".join(parts).strip()
        if not text:
            raise EmptyAnswer(finish_reason, silent=chunks_seen == 0)
        prompt_tokens = usage.prompt_tokens if usage else None
        completion_tokens = usage.completion_tokens if usage else None
        yield Answer(text, prompt_tokens, completion_tokens, finish_reason)

    async def list_models(self) -> list[str]:
        """The model ids the server lists at GET /models, sorted.

        Raises the SDK's `openai.OpenAIError`s (e.g. NotFoundError from a server that
        has no such endpoint).
        """
        page = await self.client.models.list()
        return sorted({model.id async for model in page})

    async def close(self) -> None:
        await self.client.close()

    async def _create(
        self,
        messages: list[dict[str, Any]],
        model: str,
        reasoning_effort: str | None,
        expires: float,
        *,
        stream: bool,
    ) -> Any:
        """The request in the shape learnt for `model`; a refused optional
        field is dropped or swapped and the request sent again."""
        shape = self.shapes.get(model)
        if shape is None:
            shape = self.shapes[model] = RequestShape.for_model(model)
        cap = self.max_reply_tokens
        for _ in range(MAX_ADAPTATIONS):
            arguments = shape.arguments(
                messages, cap, stream=stream, reasoning_effort=reasoning_effort
            )
            try:
                return await self._send(model, arguments, expires)
            except openai.BadRequestError as error:
                failure = classify(error)
                change = shape.adapt(failure)
                if change is None:
                    raise
                if change:
                    log.warning(
                        "the model server refused the request field %r (%s); %s",
                        failure.parameter,
                        failure.detail.splitlines()[0][:200],
                        change,
                    )
        arguments = shape.arguments(messages, cap, stream=stream, reasoning_effort=reasoning_effort)
        return await self._send(model, arguments, expires)

    async def _send(self, model: str, arguments: dict[str, Any], expires: float) -> Any:
        """`_post`, retried as the SDK would (MAX_RETRIES), except
        that a retry whose wait would end past `expires` (loop time) is not made: the
        server's error is raised at once, so the user hears its reason ("rate limited",
        "overloaded") rather than that the answer took too long."""
        loop = asyncio.get_running_loop()
        for attempt in itertools.count():
            try:
                return await self._post({"model": model, **arguments})
            except openai.APIError as error:
                wait = retry_wait(error, attempt)
                if wait is None or attempt == MAX_RETRIES or loop.time() + wait >= expires:
                    raise
                log.info("the model server failed (%s); retrying in %.2f s", error, wait)
                await asyncio.sleep(wait)

    async def _post(self, body: dict[str, Any]) -> Any:
        """POST /chat/completions with `body` as it is, through the SDK's own client
        (its key, timeout and error classes): the completion as parsed JSON (read it
        with `read_part`), or for `"stream": True` an AsyncStream of the chunks as such.

        Not the typed `create()`: it walks every message through the SDK's parameter
        transformer (~10 ms for a full 4k-token history, most of the bot's own time per
        answer) and builds a pydantic model per streamed chunk (~0.25 ms each, a
        quarter of a second for a 1,000-token answer). `client.post` is the SDK's way to
        send a request as given (its README, "Undocumented endpoints").
        """
        if body.get("stream"):
            return await self.client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
        return await self.client.post("/chat/completions", body=body, cast_to=object)

    def _learn_lone_closer(self, model: str) -> None:
        if model not in self.holding:
            self.holding.add(model)
            log.warning(
                "model %s writes its reasoning before a lone </think>: streamed answers "
                "are now held back until it has finished reasoning",
                model,
            )


def retry_wait(error: openai.APIError, attempt: int) -> float | None:
    """Seconds to wait before retrying after `error` (`attempt` 0 for the first
    request), or None if the SDK would not retry it (see MAX_RETRIES)."""
    if isinstance(error, openai.APIConnectionError):  # timeouts included
        return _backoff(attempt)
    if not isinstance(error, openai.APIStatusError):
        return None
    headers = error.response.headers
    should = headers.get("x-should-retry")
    if should in ("true", "false"):
        retry = should == "true"
    else:
        retry = error.status_code in (408, 409, 429) or error.status_code >= 500
    # An empty balance comes as a 429 too (OpenAI: insufficient_quota); no wait helps.
    if not retry or classify(error).cause is Cause.OUT_OF_CREDIT:
        return None
    asked = _retry_after(headers)
    return asked if asked is not None and 0 < asked <= RETRY_AFTER_LIMIT else _backoff(attempt)


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked to wait (`retry-after-ms`, or `retry-after` in seconds
    or as an HTTP date), or None."""
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        moment = email.utils.parsedate_tz(value)
        return None if moment is None else email.utils.mktime_tz(moment) - time.time()


def _backoff(attempt: int) -> float:
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())


@dataclass(frozen=True, slots=True)
class Part:
    """What a completion, or one streamed chunk of it, says (`read_part`)."""

    text: str = ""  # the first choice's content ("" when absent or not a string)
    reasoning: bool = False  # it carries reasoning in a field of its own
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    has_usage: bool = False


def read_part(body: object, key: str) -> Part:
    """Read a chat completion (`key` "message") or a streamed chunk (`key` "delta").

    Servers send odd shapes (nulls, numbers, lists where objects belong; counts as
    strings): anything not of the documented type counts as absent, so this never
    raises. Only `content` is text; reasoning sent in `reasoning_content` (vLLM,
    DeepSeek) or `reasoning` (Ollama, OpenRouter) only sets `reasoning`.
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
        finish_reason=finish if isinstance(finish, str) else None,
        prompt_tokens=_tokens(counts.get("prompt_tokens")),
        completion_tokens=_tokens(counts.get("completion_tokens")),
        has_usage=isinstance(usage, dict),
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tokens(value: object) -> int | None:
    # bool is an int in Python; a count is not.
    return value if type(value) is int and value >= 0 else None
