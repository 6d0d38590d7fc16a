"""The request body, in the shape the model's server takes (`RequestShape`).

The reply cap goes where the server honours it, chosen by the server, not the model's
name (a local server may serve `--model_alias gpt-4o-mini`): `max_completion_tokens`
for OpenAI's own API (OpenAI refuses `max_tokens` for reasoning models, and both
together) and Azure OpenAI, `max_tokens` for any other server (llama.cpp's server and
LiteLLM's passthrough ignore `max_completion_tokens`). A server that reports a usage far
over the cap ignored the field: the other is used from then on (`overran`).

An optional field the server refuses with a 400 naming it (`max_tokens`,
`max_completion_tokens`, `stream_options`, `reasoning_effort`, a message's `name`,
`tools` or `tool_choice`, `prompt_cache_key`, `safety_identifier`) is swapped or
dropped, and a chat template that refuses the conversation's shape (roles not
alternating, a system role) gets it reshaped (templates.py), for the life of the
process; retries.py asks again within the same answer.

`prompt_cache_key` (one per channel and model, `cache_key`) routes a channel's requests
to the same prompt cache: OpenAI caches a prompt's beginning per server, routed by a
hash of its first tokens and by this key ("Prompt caching" in OpenAI's docs); other
servers get it too until they refuse it. `safety_identifier` (`safety_identifier`, a
hash of the asking user's id) goes to OpenAI's own API only, as its "Safety best
practices" recommend, so abuse can be traced to a user without saying who they are.
Both are hashes: a stable one (no per-process salt, so the cache key survives a
restart), never a raw Discord id.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from model.failures import Cause, Failure
from model.templates import ALTERNATION, SYSTEM_ROLE, alternate, system_into_user

MAX_COMPLETION_TOKENS = "max_completion_tokens"
MAX_TOKENS = "max_tokens"
STREAM_OPTIONS = "stream_options"
REASONING_EFFORT = "reasoning_effort"
TOOLS = "tools"
PROMPT_CACHE_KEY = "prompt_cache_key"
SAFETY_IDENTIFIER = "safety_identifier"

# A usage this many times the cap (plus slack for a server's own counting) means the
# server ignored the cap field.
OVERRUN_FACTOR = 1.5
OVERRUN_SLACK = 16


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is for: the Discord channel it answers in and the user who asked."""

    channel_id: int
    user_id: int | None = None


def cache_key(channel_id: int, model: str) -> str:
    """The `prompt_cache_key` of `channel_id`'s requests to `model`: 32 hex digits of a
    SHA-256 (stable across restarts; no raw id)."""
    return hashlib.sha256(f"discord-channel:{channel_id}:{model}".encode()).hexdigest()[:32]


def safety_identifier(user_id: int) -> str:
    """The `safety_identifier` of `user_id`: 32 hex digits of a SHA-256 of the id."""
    return hashlib.sha256(f"discord-user:{user_id}".encode()).hexdigest()[:32]


@dataclass
class RequestShape:
    """Which optional request fields the server gets, learnt from its refusals.

    `cap_field`: where the reply cap goes (None: nowhere, the server refused both).
    `alternate`: the server's chat template wants user and assistant turns to alternate;
    `system_role`: False when it takes no system message (templates.py).
    `openai`: the server is OpenAI's own API (it gets `safety_identifier`).
    """

    cap_field: str | None
    stream_options: bool = True
    names: bool = True
    refused: set[str] = field(default_factory=set)
    alternate: bool = False
    system_role: bool = True
    cap_swapped: bool = False  # the cap field was swapped once for a usage over the cap
    openai: bool = False

    @classmethod
    def for_server(cls, base_url: str | None) -> RequestShape:
        """The first guess, by the server at `base_url` (None: OpenAI's own):
        `max_completion_tokens` for OpenAI's API and Azure OpenAI, which require it for
        reasoning models; `max_tokens` for any other server, which local servers and
        gateways honour (and LiteLLM and OpenRouter translate for OpenAI's models)."""
        host = (urlsplit(base_url).hostname or "") if base_url else "api.openai.com"
        openai_hosted = host == "api.openai.com" or host.endswith(".openai.azure.com")
        cap = MAX_COMPLETION_TOKENS if openai_hosted else MAX_TOKENS
        return cls(cap, openai=host == "api.openai.com")

    def arguments(
        self,
        messages: list[dict[str, Any]],
        max_reply_tokens: int,
        *,
        stream: bool,
        reasoning_effort: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        caller: Caller | None = None,
        model: str = "",
    ) -> dict[str, Any]:
        """The request body besides `model` for `messages`; `reasoning_effort` only
        when set (a /settings choice) and not refused; `tools` (chat-completions tool
        definitions) with `tool_choice: "auto"` only when given, non-empty and not
        refused; for a `caller`, `prompt_cache_key` (its channel's, for `model`) unless
        refused, and to OpenAI's own API its user's `safety_identifier`."""
        if not self.system_role:
            messages = system_into_user(messages)
        if self.alternate:
            messages = alternate(messages)
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
        if caller is not None and PROMPT_CACHE_KEY not in self.refused:
            arguments[PROMPT_CACHE_KEY] = cache_key(caller.channel_id, model)
        if (
            caller is not None
            and caller.user_id is not None
            and self.openai
            and SAFETY_IDENTIFIER not in self.refused
        ):
            arguments[SAFETY_IDENTIFIER] = safety_identifier(caller.user_id)
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
        if failure.cause is Cause.TEMPLATE_REFUSED:
            return self._reshape(failure.parameter)
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
        if top in (PROMPT_CACHE_KEY, SAFETY_IDENTIFIER):
            self.refused.add(top)
            return f"sending no {top} from now on"
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

    def overran(self, completion_tokens: int | None, cap: int) -> str | None:
        """The server reported `completion_tokens` for an answer capped at `cap`: when far
        over it, the server ignored the cap field, so the other is used from then on
        (once, never back). Returns what changed, for the log, or None."""
        if (
            completion_tokens is None
            or self.cap_field is None
            or self.cap_swapped
            or completion_tokens <= cap * OVERRUN_FACTOR + OVERRUN_SLACK
        ):
            return None
        ignored = self.cap_field
        other = MAX_TOKENS if ignored == MAX_COMPLETION_TOKENS else MAX_COMPLETION_TOKENS
        if other in self.refused:
            return None
        self.cap_field = other
        self.cap_swapped = True
        return f"the server ignored {ignored}; sending {other} instead from now on"

    def _reshape(self, shape: str | None) -> str | None:
        """The chat template refused the conversation's `shape` (templates.py)."""
        # Already learnt: another answer's request raced this one ("" asks again; the
        # retries' MAX_ADAPTATIONS bounds a server that refuses every shape).
        if shape == SYSTEM_ROLE:
            if not self.system_role:
                return ""
            self.system_role = False
            return "sending the instructions in the first user message from now on"
        if shape == ALTERNATION:
            if self.alternate:
                return ""
            self.alternate = True
            return "merging consecutive turns of one role from now on"
        return None

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
