"""Calls to the chat-completions API of OpenAI or any OpenAI-compatible server.

One `AsyncOpenAI` client serves the whole process. At most MAX_CONCURRENT_REQUESTS
answers are asked at once; others wait their turn. Each answer goes through one loop
of retries and lessons from the server's refusals (retries.py), by one deadline
(OPENAI_TIMEOUT seconds, `deadline` in the calls): by then the server must have sent
some of the answer's text; a stream must then send more text at least that often.

A model that writes a lone `</think>` makes a streamed answer retract what it showed
(`RETRACT`), and from then on its streamed text is held back until its closer, until it
answers once without one (a model that thinks only sometimes, or was replaced behind the
same name, streams again).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from model.errors import DeadlinePassed, EmptyAnswer, UnreadableReply
from model.reading import RETRACT, Answer, Retract, StreamReader, read_part, whole_tool_calls
from model.reasoning import strip_reasoning
from model.request import Caller, RequestShape
from model.retries import Learn, Messages, Retries

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger(__name__)


class ChatModel:
    """The configured model behind one shared async client."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.openai_model
        self.base_url = settings.openai_base_url
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
            # Retries are ours (retries.py): the SDK would sleep out a Retry-After longer
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
        messages: Messages,
        *,
        model: str | None = None,
        reasoning_effort: str | None = None,
        deadline: float | None = None,
        learn: Learn | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        caller: Caller | None = None,
    ) -> Answer:
        """The answer of `model` (default OPENAI_MODEL) to `messages`, by `deadline`
        (loop time; default: now plus OPENAI_TIMEOUT); `reasoning_effort` is sent only
        when given. `learn`: the caller's lessons from failures (retries.py). `tools`:
        chat-completions tool definitions, sent with `tool_choice: "auto"` when
        non-empty and the server has not refused them (`takes_tools`); the answer's
        `tool_calls` say which the model wants run. `caller`: the channel and user the
        answer is for (its prompt cache key and safety identifier, request.py).

        Raises the SDK's `openai.OpenAIError`s, or a `ModelError` (errors.py).
        """
        model = model or self.model
        expires = self.deadline() if deadline is None else deadline
        retries = Retries(self._shape(model), expires, learn, tools=bool(tools))
        async with self.slots:
            while True:
                try:
                    return await self._complete_once(
                        messages, model, reasoning_effort, expires, tools, caller
                    )
                except Exception as error:
                    again = await retries.again(error, messages)
                    if again is None:
                        raise
                    messages = again

    async def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        reasoning_effort: str | None = None,
        deadline: float | None = None,
        learn: Learn | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        caller: Caller | None = None,
    ) -> AsyncIterator[str | Retract | Answer]:
        """Yield the answer's text as it arrives, `RETRACT` when the text yielded so far
        turned out to be reasoning, then the finished `Answer` last.

        Arguments as for `complete`. The request is asked again (retries.py) only while
        no text that stands has been yielded. Raises like `complete`; a stream that
        breaks, or produces no text for OPENAI_TIMEOUT seconds, raises mid-iteration.
        """
        model = model or self.model
        expires = self.deadline() if deadline is None else deadline
        retries = Retries(self._shape(model), expires, learn, tools=bool(tools))
        async with self.slots:
            while True:
                reader = StreamReader(self.timeout, expires, hold=model in self.holding)
                try:
                    stream = await self._request(
                        messages, model, reasoning_effort, expires, True, tools, caller
                    )
                    async with stream:
                        chunks = aiter(stream)
                        # Yields happen outside the timeout: it only covers our own wait.
                        while (chunk := await reader.next_chunk(chunks)) is not None:
                            for piece in reader.take(chunk):
                                if piece is RETRACT:
                                    self._learn_lone_closer(model)
                                yield piece
                    if rest := reader.finish():
                        yield rest
                    answer = reader.answer()
                    self._learn_from(model, answer, lone_closer=reader.reasoning.lone_closer)
                except Exception as error:
                    # Text that stands is the user's already: it cannot be asked again.
                    again = None if reader.shown else await retries.again(error, messages)
                    if again is None:
                        raise
                    messages = again
                    continue
                yield answer
                return

    async def list_models(self) -> list[str]:
        """The model ids the server lists at GET /models, sorted.

        Raises the SDK's `openai.OpenAIError`s (e.g. NotFoundError from a server that
        has no such endpoint).
        """
        page = await self.client.models.list()
        return sorted({model.id async for model in page})

    def takes_tools(self, model: str | None = None) -> bool:
        """Whether requests to `model` (default OPENAI_MODEL) still carry `tools`:
        False once its server refused them."""
        return self._shape(model or self.model).takes_tools

    async def close(self) -> None:
        await self.client.close()

    def _shape(self, model: str) -> RequestShape:
        """The request shape learnt for `model` (one per model, for every answer)."""
        shape = self.shapes.get(model)
        if shape is None:
            shape = self.shapes[model] = RequestShape.for_server(self.base_url)
        return shape

    async def _complete_once(
        self,
        messages: Messages,
        model: str,
        reasoning_effort: str | None,
        expires: float,
        tools: Sequence[dict[str, Any]] | None,
        caller: Caller | None = None,
    ) -> Answer:
        """One request for the whole answer, read."""
        try:
            response = await self._request(
                messages, model, reasoning_effort, expires, False, tools, caller
            )
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
        calls = whole_tool_calls(part.tool_calls)
        if not text and not calls:
            raise EmptyAnswer(part.finish_reason)
        answer = Answer(
            text,
            part.prompt_tokens,
            part.completion_tokens,
            part.finish_reason,
            calls,
            part.cached_tokens,
        )
        self._learn_from(model, answer, lone_closer=None)
        return answer

    async def _request(
        self,
        messages: Messages,
        model: str,
        reasoning_effort: str | None,
        expires: float,
        stream: bool,
        tools: Sequence[dict[str, Any]] | None = None,
        caller: Caller | None = None,
    ) -> Any:
        """One request in the shape learnt for `model`, begun by `expires` (loop time)
        or `DeadlinePassed`."""
        arguments = self._shape(model).arguments(
            messages,
            self.max_reply_tokens,
            stream=stream,
            reasoning_effort=reasoning_effort,
            tools=list(tools) if tools else None,
            caller=caller,
            model=model,
        )
        try:
            async with asyncio.timeout_at(expires):
                return await self._post({"model": model, **arguments})
        except TimeoutError as error:
            raise DeadlinePassed(self.timeout, started=False) from error

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

    def _learn_from(self, model: str, answer: Answer, *, lone_closer: bool | None) -> None:
        """What a finished answer teaches: a usage far over the cap means the server
        ignored the cap's field; a streamed answer (`lone_closer` not None) of a held
        model without a lone `</think>` ends the holding back."""
        change = self._shape(model).overran(answer.completion_tokens, self.max_reply_tokens)
        if change:
            log.warning(
                "model %s wrote %d tokens, over the reply cap of %d (MAX_REPLY_TOKENS): %s",
                model,
                answer.completion_tokens,
                self.max_reply_tokens,
                change,
            )
        if lone_closer is False and model in self.holding:
            self.holding.discard(model)
            log.info(
                "model %s answered without a lone </think>: its answers stream as written again",
                model,
            )

    def _learn_lone_closer(self, model: str) -> None:
        if model not in self.holding:
            self.holding.add(model)
            log.warning(
                "model %s writes its reasoning before a lone </think>: streamed answers "
                "are now held back until it has finished reasoning",
                model,
            )
