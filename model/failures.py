"""Why a request to an OpenAI-compatible server failed (`classify`), and the one
sentence the chat user reads about it (`user_message`).

Servers word the same failure differently, so each rule below (and in
refused_fields.py) names the servers whose wording it matches (OpenAI, vLLM, LiteLLM
proxy, llama-cpp-python, llama.cpp's llama-server, Ollama). How the SDK builds its
exceptions (openai/_base_client.py `_make_status_error_from_response`, openai/_client.py
`_make_status_error`): `message` is "Error code: <status>" plus " - <error.message>" when
the JSON body has one; `body` is the body's "error" member when there is one, else the
whole decoded body (or its raw text); `code`, `param` and `type` are read from that
`body` when it is a dict (`code` as a string: llama.cpp's and vLLM's integer 400 becomes
"400").
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any

import openai

from model.errors import UnreadableReply
from model.refused_fields import refused_field, refuses_tools
from model.templates import template_refusal


class Cause(enum.Enum):
    """What went wrong, as far as the bot needs to know."""

    CONTEXT_TOO_LONG = "context too long"
    BAD_KEY = "bad key"
    UNKNOWN_MODEL = "unknown model"
    REFUSED_PARAMETER = "refused parameter"
    TEMPLATE_REFUSED = "template refused"
    IMAGES_REFUSED = "images refused"
    RATE_LIMITED = "rate limited"
    OUT_OF_CREDIT = "out of credit"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server error"
    UNREACHABLE = "unreachable"
    TIMED_OUT = "timed out"
    OTHER_BAD_REQUEST = "other bad request"
    UNREADABLE_REPLY = "unreadable reply"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Failure:
    """A classified failure.

    - `status`: the HTTP status, when the server answered.
    - `parameter`: REFUSED_PARAMETER, the refused request field as the server named it (a
      dotted path for a nested field, e.g. "messages.2.reasoning_content"), or None when
      it did not say which; TEMPLATE_REFUSED, the shape the chat template refused
      (templates.ALTERNATION or templates.SYSTEM_ROLE).
    - `context_window`: CONTEXT_TOO_LONG only, the window in tokens when the server's
      error states it, else None.
    - `prompt_tokens`: CONTEXT_TOO_LONG only, the server's own count of the refused
      prompt when its error states it, else None.
    - `deadline`: TIMED_OUT only, the caller's deadline in seconds when it passed one.
    - `detail`: the server's own words, for logs; never for chat users.
    """

    cause: Cause
    status: int | None = None
    parameter: str | None = None
    context_window: int | None = None
    prompt_tokens: int | None = None
    deadline: float | None = None
    detail: str = ""


def classify(error: BaseException, *, deadline: float | None = None) -> Failure:
    """The `Failure` that `error` reports. Never raises.

    `deadline`: when the caller enforces its own time limit (e.g. `asyncio.timeout`, which
    raises the built-in `TimeoutError`), its length in seconds; recorded on TIMED_OUT.
    Exceptions that are not the SDK's and not timeouts or connection errors are UNKNOWN.
    """
    # APITimeoutError is an APIConnectionError: check it first.
    if isinstance(error, openai.APITimeoutError | TimeoutError):
        return Failure(Cause.TIMED_OUT, deadline=deadline, detail=str(error))
    if isinstance(error, openai.APIConnectionError | ConnectionError):
        return Failure(Cause.UNREACHABLE, detail=str(error))
    if isinstance(error, UnreadableReply):
        return Failure(Cause.UNREADABLE_REPLY, detail=str(error))
    if not isinstance(error, openai.APIError):
        return Failure(Cause.UNKNOWN, detail=repr(error))
    # APIStatusError has a status; a plain APIError is an error event inside a stream.
    status = getattr(error, "status_code", None)
    return _classify_api_error(error, status if isinstance(status, int) else None)


def _classify_api_error(error: openai.APIError, status: int | None) -> Failure:
    body = error.body
    text = _error_text(error)
    lowered = text.lower()
    code = (error.code or "").lower()
    kind = (error.type or "").lower() if isinstance(error.type, str) else ""
    failure = _failure_for(status, detail=text)

    # OpenAI answers an empty balance with 429 and code/type insufficient_quota;
    # OpenRouter and others use 402 Payment Required.
    if "insufficient_quota" in (code, kind) or status == 402:
        return failure(Cause.OUT_OF_CREDIT)
    if _is_context_overflow(code, kind, lowered):
        return failure(
            Cause.CONTEXT_TOO_LONG,
            context_window=_context_window(body, text),
            prompt_tokens=_prompt_tokens(body, text),
        )
    # Before the parameter rules: "image input is not supported" would read as a
    # refused "input". llama.cpp says it with a 500, OpenRouter with a 404.
    if any(pattern.search(lowered) for pattern in _IMAGES_REFUSED):
        return failure(Cause.IMAGES_REFUSED)
    # Chat templates raise these while rendering: vLLM and llama-cpp-python with a 400,
    # llama.cpp, Ollama and SGLang with a 500 (model/templates.py has the sources).
    if (shape := template_refusal(lowered)) is not None:
        return failure(Cause.TEMPLATE_REFUSED, parameter=shape)
    if refuses_tools(lowered):
        return failure(Cause.REFUSED_PARAMETER, parameter="tools")
    if (refused := refused_field(error, body, text)) is not None:
        return failure(Cause.REFUSED_PARAMETER, parameter=refused or None)
    # OpenAI answers a model the key's project may not use with 403 and model_not_found:
    # the key works, the model setting is what to fix.
    if code == "model_not_found":
        return failure(Cause.UNKNOWN_MODEL)
    if status in (401, 403):
        return failure(Cause.BAD_KEY)
    if status == 404 or _UNKNOWN_MODEL.search(text):
        return failure(Cause.UNKNOWN_MODEL)
    # An error event inside a stream has no status: its code or type says it (OpenAI's
    # 429 body: code rate_limit_exceeded; Anthropic-style gateways: rate_limit_error).
    if status == 429 or "rate_limit_exceeded" in (code, kind) or kind == "rate_limit_error":
        return failure(Cause.RATE_LIMITED)
    # 503: OpenAI ("The engine is currently overloaded"), Ollama ("server busy"),
    # llama.cpp ("Loading model"); 529: Anthropic-style gateways ("overloaded_error").
    if status in (503, 529) or "overloaded" in lowered:
        return failure(Cause.OVERLOADED)
    if (status is not None and status >= 500) or kind == "server_error":
        return failure(Cause.SERVER_ERROR)
    if status is not None and 400 <= status < 500:
        return failure(Cause.OTHER_BAD_REQUEST)
    return failure(Cause.UNKNOWN)


def _failure_for(status: int | None, *, detail: str):
    def make(cause: Cause, **fields: Any) -> Failure:
        return Failure(cause, status=status, detail=detail, **fields)

    return make


def _error_text(error: openai.APIError) -> str:
    """All the words the server sent: the SDK's message plus any text in the body.

    The SDK's message carries only `error.message`; vLLM's pydantic errors, FastAPI's
    `detail` lists and raw-text bodies have their words elsewhere.
    """
    parts = [error.message]
    body = error.body
    if isinstance(body, str):
        parts.append(body)
    elif body is not None:
        parts.append(json.dumps(body, ensure_ascii=False, default=str))
    return "\n".join(parts)


# --- context too long --------------------------------------------------------------

_CONTEXT_CODES = {"context_length_exceeded", "exceed_context_size_error"}
_CONTEXT_OVERFLOW = [
    re.compile(pattern)
    for pattern in (
        # OpenAI, vLLM, llama-cpp-python, DeepSeek, OpenRouter ("This endpoint's ...").
        r"maximum context length",
        # OpenAI: "Your input exceeds the context window of this model."
        # llama-cpp-python: "Requested tokens (M) exceed context window of N".
        r"exceeds? (?:the )?context window",
        # llama.cpp: "request (M tokens) exceeds the available context size (N tokens)"
        # (older: "the request exceeds the available context size"); Ollama: "the input
        # length exceeds the context length".
        r"exceeds? the (?:available )?context (?:size|length)",
        # llama.cpp (embeddings): "input (M tokens) is larger than the max context size".
        r"larger than the max context size",
        # Ollama: "the prompt is longer than the context length currently available";
        # vLLM: "The decoder prompt (length M) is longer than the maximum model length".
        r"longer than the (?:context length|maximum model length)",
        # LiteLLM: "litellm.ContextWindowExceededError: ..." (400, code "400").
        r"contextwindowexceedederror",
        # Mistral: "... too large for model with N maximum context length".
        r"too large for model with \d+ maximum context",
        # Anthropic-style: "prompt is too long: M tokens > N maximum".
        r"prompt is too long",
        # Gemini's OpenAI endpoint: "exceeds the maximum number of tokens allowed (N)".
        r"exceeds the maximum number of tokens allowed",
    )
]
_WINDOW = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"maximum context length is (\d+)",
        r"exceed context window of (\d+)",
        r"available context size \((\d+) tokens\)",
        r"max context size \((\d+) tokens\)",
        r"maximum model length of (\d+)",
        r"too large for model with (\d+) maximum context",
        r"tokens? > (\d+) maximum",
        r"maximum number of tokens allowed \((\d+)\)",
    )
]


_PROMPT = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # OpenAI: "However, your messages resulted in M tokens."
        r"your messages resulted in (\d+) tokens",
        # llama-cpp-python (and LiteLLM quoting it): "(M in the messages, C in the completion)".
        r"\((\d+) in the messages",
        # vLLM: "your prompt contains at least M input tokens"; older: "your request has M
        # input tokens".
        r"(?:contains at least|request has) (\d+) input tokens",
        # llama.cpp: "request (M tokens) exceeds the available context size".
        r"request \((\d+) tokens\)",
        # Anthropic-style: "prompt is too long: M tokens > N maximum".
        r"prompt is too long: (\d+) tokens",
    )
]


def _prompt_tokens(body: object, text: str) -> int | None:
    """The server's count of the refused prompt: llama.cpp's `n_prompt_tokens`, else a
    number in the text."""
    if isinstance(body, dict) and isinstance(body.get("n_prompt_tokens"), int):
        return body["n_prompt_tokens"]
    for pattern in _PROMPT:
        if match := pattern.search(text):
            return int(match.group(1))
    return None


def _is_context_overflow(code: str, kind: str, lowered: str) -> bool:
    if code in _CONTEXT_CODES or kind in _CONTEXT_CODES:
        return True
    return any(pattern.search(lowered) for pattern in _CONTEXT_OVERFLOW)


def _context_window(body: object, text: str) -> int | None:
    """The server's stated window: llama.cpp's `n_ctx` field, else a number in the text."""
    if isinstance(body, dict) and isinstance(body.get("n_ctx"), int):
        return body["n_ctx"]
    for pattern in _WINDOW:
        if match := pattern.search(text):
            return int(match.group(1))
    return None


# --- images refused ----------------------------------------------------------------

_IMAGES_REFUSED = [
    re.compile(pattern)
    for pattern in (
        # llama.cpp without --mmproj (500): "image input is not supported - hint: ...".
        r"image input is not supported",
        # Ollama: "does not support image input" (mlx runner), "does not support vision"
        # (capability check); gateways: "does not support images".
        r"does(?: not|n't) support (?:image|vision)",
        # Older Ollama runners: "this model is missing data required for image input".
        r"missing data required for image input",
        # OpenAI: "Invalid content type. image_url is only supported by certain models."
        r"image_url is only supported",
        # Servers whose parser has no image part (serde: DeepSeek, Mangi-11/Eta#62).
        r"unknown variant [`'\"]?image_url",
        # vLLM: "<Architecture> is not a multimodal model".
        r"is not a multimodal model",
        # Text-only servers checking content parts: "Only 'text' content type is supported."
        r"only 'text' content type is supported",
        # OpenRouter (404): "No endpoints found that support image input".
        r"no endpoints found that support image",
        r"(?:images?|vision|multimodal) (?:input )?(?:is |are )?not supported",
    )
]


# --- unknown model -----------------------------------------------------------------

# OpenAI (404, model_not_found): "The model `x` does not exist or you do not have access
# to it."; vLLM (404): "The model `x` does not exist."; llama-cpp-python (400,
# model_not_found): "The model `x` does not exist"; Ollama (404): 'model "x" not found,
# try pulling it first'; LiteLLM (400): "Invalid model name passed in model=x".
_UNKNOWN_MODEL = re.compile(
    r"\bmodel\b[^\n]{0,80}?\b(?:does not exist|not found)|invalid model name",
    re.IGNORECASE,
)


# --- what the chat user reads ------------------------------------------------------

_SENTENCES = {
    Cause.OUT_OF_CREDIT: (
        "The bot's OpenAI account is out of credit, so I can't answer right now. "
        "The bot's owner needs to check billing."
    ),
    Cause.RATE_LIMITED: (
        "The model is busy right now (rate limited). Please try again in a minute."
    ),
    Cause.TIMED_OUT: "The model took too long to answer. Please try again.",
    Cause.UNREACHABLE: "I couldn't reach the model service. Please try again in a little while.",
    Cause.BAD_KEY: (
        "The model service rejected the bot's API key. "
        "The bot's owner needs to check OPENAI_API_KEY."
    ),
    Cause.UNKNOWN_MODEL: (
        "The configured model isn't available. The bot's owner needs to check OPENAI_MODEL."
    ),
    Cause.CONTEXT_TOO_LONG: (
        "This conversation is too long for the model. The bot's owner can lower MAX_CONTEXT_TOKENS."
    ),
    Cause.OTHER_BAD_REQUEST: (
        "The model service rejected this request. Try rephrasing your message."
    ),
    Cause.SERVER_ERROR: "The model service had an internal error. Please try again.",
    Cause.UNREADABLE_REPLY: "The model service sent a reply the bot couldn't read. "
    "Please try again.",
    Cause.UNKNOWN: "Something went wrong while getting an answer. Please try again.",
    Cause.REFUSED_PARAMETER: (
        "The model service refused a setting the bot sends, and the bot couldn't work "
        "around it. The bot's owner needs to check the model settings."
    ),
    Cause.TEMPLATE_REFUSED: (
        "The model's chat template refused the conversation's shape. Please try again."
    ),
    Cause.IMAGES_REFUSED: (
        "This model can't read images. Please describe the image in words instead."
    ),
    Cause.OVERLOADED: "The model service is overloaded right now. Please try again in a minute.",
}
_CONTEXT_AFTER_SHORTENING = (
    "This conversation is too long for the model, even with older messages left out. "
    "Try a shorter message."
)
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def user_message(failure: Failure, *, history_shortened: bool = False) -> str:
    """One short, true sentence for the chat user about `failure`; no raw server text.

    `history_shortened`: the bot already left older messages out and retried, so the
    CONTEXT_TOO_LONG sentence says that instead of suggesting a smaller history budget.
    """
    if failure.cause is Cause.CONTEXT_TOO_LONG and history_shortened:
        return _CONTEXT_AFTER_SHORTENING
    if failure.cause is Cause.TIMED_OUT and failure.deadline is not None:
        return (
            f"The model took too long to answer (no answer within {failure.deadline:g} "
            "seconds). Please try again."
        )
    if (
        failure.cause is Cause.REFUSED_PARAMETER
        and failure.parameter
        and _SAFE_NAME.fullmatch(failure.parameter)
    ):
        return (
            f"The model service refused the bot's `{failure.parameter}` setting, and the "
            "bot couldn't work around it. The bot's owner needs to check the model settings."
        )
    return _SENTENCES[failure.cause]
