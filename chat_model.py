"""Calls to the chat-completions API, and what to tell a chat user when one fails.

One `AsyncOpenAI` client serves the whole process; timeouts and retries are the SDK's
own (`timeout`, `max_retries`), not ours. At most MAX_CONCURRENT_REQUESTS calls are in
flight; others wait their turn. Reasoning a model writes into its answer
(`<think>...</think>`) is removed here, so nothing downstream ever sees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
from openai.types import CompletionUsage

from config import Settings
from reasoning import ReasoningFilter, strip_reasoning

log = logging.getLogger(__name__)


class EmptyAnswer(Exception):
    """The API answered, but with no text to post."""

    def __init__(self, finish_reason: str | None) -> None:
        super().__init__(f"the model returned no text (finish_reason={finish_reason!r})")
        self.finish_reason = finish_reason


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished completion."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None


class ChatModel:
    """The configured model behind one shared async client."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.openai_model
        self.max_reply_tokens = settings.max_reply_tokens
        self.client = openai.AsyncOpenAI(
            # Local OpenAI-compatible servers ignore the key, but the SDK requires one.
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout,
        )
        # asyncio.Semaphore wakes waiters first-come, first-served.
        self.slots = asyncio.Semaphore(settings.max_concurrent_requests)

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        reasoning_effort: str | None = None,
    ) -> Answer:
        """The answer of `model` (default OPENAI_MODEL) to `messages`; `reasoning_effort`
        is sent only when given (models without reasoning refuse it).

        Raises the SDK's `openai.OpenAIError`s, or `EmptyAnswer` when there is no text.
        """
        async with self.slots:
            response = await self.client.chat.completions.create(
                model=model or self.model,
                max_completion_tokens=self.max_reply_tokens,
                **_optional(reasoning_effort),
                **_as_sent(messages),
            )
        if not response.choices:
            raise EmptyAnswer(None)
        choice = response.choices[0]
        text = strip_reasoning(choice.message.content or "").strip()
        if not text:
            raise EmptyAnswer(choice.finish_reason)
        return _answer(text, response.usage, choice.finish_reason)

    async def stream(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        reasoning_effort: str | None = None,
    ) -> AsyncIterator[str | Answer]:
        """Yield the answer's text as it arrives, then the finished `Answer` last.

        `model` and `reasoning_effort` as for `complete`. Raises like `complete`; a
        stream that breaks raises mid-iteration.
        """
        parts: list[str] = []
        finish_reason = None
        usage = None
        reasoning = ReasoningFilter()
        async with self.slots:
            stream = await self.client.chat.completions.create(
                model=model or self.model,
                max_completion_tokens=self.max_reply_tokens,
                **_optional(reasoning_effort),
                stream=True,
                stream_options={"include_usage": True},
                **_as_sent(messages),
            )
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:  # the last chunk: no choices, only usage
                        usage = chunk.usage
                    for choice in chunk.choices[:1]:
                        if visible := reasoning.feed(choice.delta.content or "").visible:
                            parts.append(visible)
                            yield visible
                        finish_reason = choice.finish_reason or finish_reason
        if rest := reasoning.finish().visible:
            parts.append(rest)
            yield rest
        text = "".join(parts).strip()
        if not text:
            raise EmptyAnswer(finish_reason)
        yield _answer(text, usage, finish_reason)

    async def list_models(self) -> list[str]:
        """The model ids the server lists at GET /models, sorted.

        Raises the SDK's `openai.OpenAIError`s (e.g. NotFoundError from a server that
        has no such endpoint).
        """
        page = await self.client.models.list()
        return sorted({model.id async for model in page})

    async def close(self) -> None:
        await self.client.close()


def _answer(text: str, usage: CompletionUsage | None, finish_reason: str | None) -> Answer:
    """An `Answer`, with the API's token counts when it sent them."""
    return Answer(
        text=text,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        finish_reason=finish_reason,
    )


def _optional(reasoning_effort: str | None) -> dict[str, Any]:
    """`reasoning_effort` as a request argument, only when set (a /settings choice)."""
    return {} if reasoning_effort is None else {"reasoning_effort": reasoning_effort}


def _as_sent(messages: list[dict[str, str]]) -> dict[str, Any]:
    """Arguments that send `messages` in the request body exactly as they are.

    `create()` walks every message through the SDK's parameter transformer, pure Python
    that takes ~10 ms for a full 4k-token history: most of the bot's own time per
    answer. Our messages are plain JSON-ready dicts with nothing to transform, so they
    go in `extra_body`, which replaces the (empty) transformed list.
    """
    return {"messages": [], "extra_body": {"messages": messages}}


def explain_failure(error: Exception) -> str:
    """One short sentence for the chat user about why no answer came; never raw details."""
    # Order matters: APITimeoutError is an APIConnectionError.
    if isinstance(error, EmptyAnswer):
        if error.finish_reason == "length":
            return (
                "The model used up its reply allowance before writing anything. "
                "Try a simpler question, or ask the bot's owner to raise MAX_REPLY_TOKENS."
            )
        if error.finish_reason == "content_filter":
            return "The model's content filter blocked this answer."
        return "The model returned an empty answer. Please try again."
    if isinstance(error, openai.RateLimitError):
        if _error_code(error) == "insufficient_quota":
            return (
                "The bot's OpenAI account is out of credit, so I can't answer right now. "
                "The bot's owner needs to check billing."
            )
        return "The model is busy right now (rate limited). Please try again in a minute."
    if isinstance(error, openai.APITimeoutError):
        return "The model took too long to answer. Please try again."
    if isinstance(error, openai.APIConnectionError):
        return "I couldn't reach the model service. Please try again in a little while."
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return (
            "The model service rejected the bot's API key. "
            "The bot's owner needs to check OPENAI_API_KEY."
        )
    if isinstance(error, openai.NotFoundError):
        return "The configured model isn't available. The bot's owner needs to check OPENAI_MODEL."
    if isinstance(error, openai.BadRequestError):
        if _error_code(error) == "context_length_exceeded":
            return (
                "This conversation is too long for the model. "
                "The bot's owner can lower MAX_CONTEXT_TOKENS."
            )
        return "The model service rejected this request. Try rephrasing your message."
    if isinstance(error, openai.InternalServerError):
        return "The model service had an internal error. Please try again."
    return "Something went wrong while getting an answer. Please try again."


def _error_code(error: Exception) -> str | None:
    code = getattr(error, "code", None)
    return code if isinstance(code, str) else None
