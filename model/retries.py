"""Asking again: the one loop every failed request of an answer goes through (`Retries`).

After a failure, in this order:

1. A refusal the server's words name (model/failures.py) reshapes the request for the
   model, one WARNING, and it is sent again at once: a chat template's refusal of the
   conversation's shape (roles not alternating, a system role: templates.py), or of an
   optional request field, which is dropped or swapped (request.py; `tools` among
   them). Its words say what to change whatever its status: vLLM and OpenAI refuse
   with a 400, llama.cpp ("tools param requires --jinja flag"), llama-cpp-python,
   Ollama and SGLang often with a 500, which waiting would only repeat.
2. A transient failure is retried by the rules of the OpenAI SDK's own retries
   (openai-python's _base_client: connection errors, 408, 409, 429 and 5xx, or as
   `x-should-retry` says; Retry-After up to 60 s is honoured, else 0.5 s doubling to
   8 s, jittered), at most MAX_RETRIES times in a row. A retry whose wait would end past
   the answer's deadline is not made: the server's own error is raised at once, so the
   user hears its reason ("rate limited") rather than that the answer took too long.
   No wait helps a refusal the words name (an empty balance, 429 insufficient_quota; a
   prompt too long; images refused): those are not transient.
3. Whatever the caller learns from the failure (`Learn`: a smaller context window, a
   server that takes no images) gives the messages to ask with instead.
4. A stream that sent nothing at all (`EmptyAnswer.silent`) to a request offering
   `tools`, with nothing else learnt from it, is taken for a refusal of tools: it is
   how llama-cpp-python fails a stream whose chat template raises on them (the same
   request unstreamed gets a 500 with the template's words, step 1). One WARNING, and
   the request is sent again without tools, as for a refusal in words.

Anything else is raised to the caller.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any

import openai

from model.errors import EmptyAnswer
from model.failures import Cause, Failure, classify
from model.request import RequestShape
from model.templates import ALTERNATION, SYSTEM_ROLE, template_refusal

log = logging.getLogger(__name__)

MAX_RETRIES = 2
RETRY_AFTER_LIMIT = 60.0
# A refused field may be learnt around this many times in one request (each field
# that can be dropped or swapped once, plus answers racing to learn the same one).
MAX_ADAPTATIONS = 4

# Refusals no wait helps: the server's words say the request itself is what it refuses.
NOT_TRANSIENT = frozenset(
    {
        Cause.OUT_OF_CREDIT,
        Cause.CONTEXT_TOO_LONG,
        Cause.IMAGES_REFUSED,
        Cause.REFUSED_PARAMETER,
        Cause.TEMPLATE_REFUSED,
    }
)

Messages = list[dict[str, Any]]
# The caller's lesson from a failure the client cannot handle itself: the messages
# to ask with instead, or None when there is nothing to learn from it.
Learn = Callable[[Exception], Messages | None]


class Retries:
    """One answer's retries, by one deadline (`expires`, event-loop time), for a model
    whose request shape is `shape`; `learn` is the caller's part (step 3); `tools`:
    whether the request offers tools (step 4)."""

    def __init__(
        self,
        shape: RequestShape,
        expires: float,
        learn: Learn | None = None,
        *,
        tools: bool = False,
    ) -> None:
        self.shape = shape
        self.expires = expires
        self.learn = learn
        self.tools = tools
        self.failed = 0  # transient failures in a row since the request last changed
        self.adapted = 0  # refused fields learnt since the caller last changed it

    async def again(self, error: Exception, messages: Messages) -> Messages | None:
        """The messages to send again after `error` (waiting first when it was
        transient), or None when the request is not to be sent again."""
        if self._adapted(error):
            self.failed = 0
            return messages
        if await self._waited_out(error):
            return messages
        if self.learn is not None and (learnt := self.learn(error)) is not None:
            self.failed = self.adapted = 0
            return learnt
        if self._silent_about_tools(error):
            return messages
        return None

    def _silent_about_tools(self, error: Exception) -> bool:
        """Whether `error` is a silent stream to a request offering tools (step 4); if
        so, the shape offers none from now on."""
        if not (self.tools and isinstance(error, EmptyAnswer) and error.silent):
            return False
        change = self.shape.adapt(Failure(Cause.REFUSED_PARAMETER, parameter="tools"))
        if change is None:
            return False
        if change:
            log.warning(
                "the model server sent nothing at all to a request offering tools "
                "(a chat template that refuses them); %s",
                change,
            )
        self.tools = False
        return True

    async def _waited_out(self, error: Exception) -> bool:
        if not isinstance(error, openai.APIError):
            return False
        wait = retry_wait(error, self.failed)
        loop = asyncio.get_running_loop()
        if wait is None or self.failed == MAX_RETRIES or loop.time() + wait >= self.expires:
            return False
        log.info("the model server failed (%s); retrying in %.2f s", error, wait)
        await asyncio.sleep(wait)
        self.failed += 1
        return True

    def _adapted(self, error: Exception) -> bool:
        """Whether the request shape changed for `error`: a refusal of the template's
        shape or of a request field, at any status or as a stream's error event."""
        if self.adapted == MAX_ADAPTATIONS or not isinstance(error, openai.APIError):
            return False
        failure = classify(error)
        if failure.cause not in (Cause.TEMPLATE_REFUSED, Cause.REFUSED_PARAMETER):
            return False
        change = self.shape.adapt(failure)
        if change is None:
            return False
        if change and failure.cause is Cause.TEMPLATE_REFUSED:
            log.warning(
                "the model's chat template refused %s (%s); %s",
                _REFUSED_SHAPES.get(failure.parameter or "", "the conversation's shape"),
                _first_line(failure.detail, refusal=True),
                change,
            )
        elif change:
            log.warning(
                "the model server refused the request field %r (%s); %s",
                failure.parameter,
                _first_line(failure.detail),
                change,
            )
        self.adapted += 1
        return True


_BARE_CODE = re.compile(r"Error code: \d+ -")
_REFUSED_SHAPES = {ALTERNATION: "two turns of one role in a row", SYSTEM_ROLE: "a system message"}


def _first_line(detail: str, *, refusal: bool = False) -> str:
    """The server's first words worth logging: not the SDK's bare "Error code: 500 - "
    nor a template engine's rule of dashes (llama.cpp's Jinja errors begin with both);
    with `refusal`, the first line that says what the template refused, if one does."""
    lines = [line.strip() for line in detail.splitlines()]
    lines = [line for line in lines if line.strip("-") and not _BARE_CODE.fullmatch(line)]
    if refusal:
        lines = [line for line in lines if template_refusal(line.lower())] or lines
    return lines[0][:200] if lines else ""


def retry_wait(error: openai.APIError, attempt: int) -> float | None:
    """Seconds to wait before retrying after `error` (`attempt` 0 for the first
    request), or None if the SDK would not retry it."""
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
    if not retry or classify(error).cause in NOT_TRANSIENT:
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
