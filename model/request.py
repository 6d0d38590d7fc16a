"""The request body, in the shape the model's server takes (`RequestShape`).

The reply cap goes in `max_completion_tokens` for OpenAI's models (OpenAI refuses
`max_tokens` for reasoning models and refuses both together) and in `max_tokens` for
every other model (llama.cpp's server and LiteLLM's passthrough ignore
`max_completion_tokens`). An optional field the server refuses with a 400 naming it
(`max_tokens`, `max_completion_tokens`, `stream_options`, `reasoning_effort`, a
message's `name`, `tools` or `tool_choice`) is swapped or dropped for the life of the
process (retries.py asks again within the same answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from model.failures import Cause, Failure
from text.tokens import counts_exactly

MAX_COMPLETION_TOKENS = "max_completion_tokens"
MAX_TOKENS = "max_tokens"
STREAM_OPTIONS = "stream_options"
REASONING_EFFORT = "reasoning_effort"
TOOLS = "tools"


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
        tools: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The request body besides `model` for `messages`; `reasoning_effort` only
        when set (a /settings choice) and not refused; `tools` (chat-completions tool
        definitions) with `tool_choice: "auto"` only when given, non-empty and not
        refused."""
        if not self.names:
            messages = [{k: v for k, v in m.items() if k != "name"} for m in messages]
        arguments: dict[str, Any] = {"messages": messages}
        if self.cap_field is not None:
            arguments[self.cap_field] = max_reply_tokens
        if reasoning_effort is not None and REASONING_EFFORT not in self.refused:
            arguments[REASONING_EFFORT] = reasoning_effort
        if tools and self.takes_tools:
            arguments[TOOLS] = tools
            arguments["tool_choice"] = "auto"
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
            return self._refuse_cap(top)
        if top == STREAM_OPTIONS:
            self.refused.add(top)
            self.stream_options = False
            return "streaming without it from now on (no usage figures when streamed)"
        if top == REASONING_EFFORT:
            self.refused.add(top)
            return "sending no reasoning effort from now on"
        if top in (TOOLS, "tool_choice"):
            self.refused.add(TOOLS)
            return "offering the model no tools from now on"
        if top == "name" or (top == "messages" and leaf == "name"):
            self.names = False
            return "sending messages without `name` from now on"
        return None

    @property
    def takes_tools(self) -> bool:
        """Whether the server is still sent `tools` (it has not refused them)."""
        return TOOLS not in self.refused

    def _refuse_cap(self, refused: str) -> str:
        """The server refused the reply cap field `refused`: use the other, or none."""
        self.refused.add(refused)
        if refused != self.cap_field:
            return ""
        other = MAX_TOKENS if refused == MAX_COMPLETION_TOKENS else MAX_COMPLETION_TOKENS
        if other in self.refused:
            self.cap_field = None
            return "sending no reply cap from now on"
        self.cap_field = other
        return f"sending {other} instead from now on"
