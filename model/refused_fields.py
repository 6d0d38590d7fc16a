"""Which optional request field a server's words refuse (`refused_field`), and whether
they say it takes no tools (`refuses_tools`): the refused-parameter rules of
failures.py's `classify`, each naming the servers whose wording it matches.
"""

from __future__ import annotations

import ast
import re

import openai

_PARAMETER_CODES = {"unsupported_parameter", "unknown_parameter", "unsupported_value"}
# Names a bare "X is not supported" may refer to; anything else in that shape is too
# likely to be prose ("Streaming is not supported") to treat as a field name.
_REQUEST_FIELDS = frozenset(
    "frequency_penalty logit_bias logprobs max_completion_tokens max_tokens metadata "
    "modalities n name parallel_tool_calls presence_penalty reasoning_effort "
    "response_format seed service_tier stop store stream stream_options temperature "
    "tool_choice tools top_logprobs top_p user verbosity".split()
)
_NAME = r"[A-Za-z_][\w.\-\[\]]*"
_PARAMETER_TEXT = [
    re.compile(pattern)
    for pattern in (
        # OpenAI: "Unsupported parameter: 'max_tokens' is not supported with this model.";
        # "Unsupported value: 'temperature' does not support 0.2 with this model.".
        rf"Unsupported (?:parameter|value): '({_NAME})'",
        # OpenAI and gateways: "Unknown parameter: 'stream_options'." (also dotted paths).
        rf"Unknown parameter: '({_NAME})'",
        # Azure OpenAI and older OpenAI: "Unrecognized request argument supplied: foo"
        # ("arguments supplied: a, b" for several; the first is reported).
        rf"Unrecognized request arguments? supplied: ({_NAME})",
        # LiteLLM: "<provider> does not support parameters: ['reasoning_effort'], ...".
        rf"does not support parameters: \[\s*'({_NAME})'",
        # "'X' is not supported", "`X` is not supported" with a quoted name.
        rf"['`\"]({_NAME})['`\"] (?:is|are) not (?:supported|permitted|allowed)",
        # Anthropic-style: "temperature: Extra inputs are not permitted".
        rf"({_NAME}): Extra inputs are not permitted",
    )
]
_BARE_NOT_SUPPORTED = re.compile(rf"\b({_NAME}) (?:is|are) not supported")
# vLLM and other pydantic/FastAPI servers: extra_forbidden with loc ('body', 'X', ...),
# as the repr of pydantic's error list inside the message (vLLM's 400), as JSON in
# FastAPI's `detail` list (422), or in pydantic's own text ("1 validation error for
# ChatCompletionRequest\nX\n  Extra inputs are not permitted [type=extra_forbidden, ...").
_PYDANTIC_REPR_LOC = re.compile(r"'type': 'extra_forbidden', 'loc': (\([^()]*\))")
_PYDANTIC_TEXT_LOC = re.compile(
    rf"^({_NAME})\n\s+Extra inputs are not permitted \[type=extra_forbidden", re.MULTILINE
)


# A server or model that takes no tools, in its own words: Ollama's "<model> does not
# support tools" (400); vLLM's '"auto" tool choice requires --enable-auto-tool-choice ...'
# (400); llama-server's "tools param requires --jinja flag" (500), older builds'
# "Unsupported param: tools" (500, ggml-org/llama.cpp#10920); gateways' "tool use is not
# supported".
_TOOLS_REFUSED = re.compile(
    r"does not support (?:tools|tool use|tool calling|function calling)|tool choice requires "
    r"--enable-auto-tool-choice|tools param requires --jinja|unsupported param: tools\b|"
    r"(?:tool use|tool calling|function calling|tools) (?:is|are) not supported"
)


def refused_field(error: openai.APIError, body: object, text: str) -> str | None:
    """The request field the server refused ("" when it did not name it), or None when
    it refused none. `body` is the SDK's `error.body`, `text` all the server's words
    (failures.py reads both the same way for every rule)."""
    code = (error.code or "").lower()
    for pattern in _PARAMETER_TEXT:
        if match := pattern.search(text):
            return match.group(1)
    if code in _PARAMETER_CODES:
        return error.param or ""
    if loc := _extra_forbidden_location(body, text):
        return loc
    for match in _BARE_NOT_SUPPORTED.finditer(text):
        if match.group(1) in _REQUEST_FIELDS:
            return match.group(1)
    return None


def _extra_forbidden_location(body: object, text: str) -> str | None:
    """The dotted request path of the first pydantic `extra_forbidden` error, if any."""
    # FastAPI's `detail` list: the whole body, or nested in its `message` or `error`
    # (Mistral's 422 for stream_options: openai/openai-agents-python#442).
    holders = [body, body.get("message"), body.get("error")] if isinstance(body, dict) else []
    details = [h["detail"] for h in holders if isinstance(h, dict) and "detail" in h]
    locations: list[object] = [
        item.get("loc")
        for detail in details if isinstance(detail, list)
        for item in detail if isinstance(item, dict) and item.get("type") == "extra_forbidden"
    ]  # fmt: skip
    for match in _PYDANTIC_REPR_LOC.finditer(text):
        try:
            locations.append(ast.literal_eval(match.group(1)))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
    for loc in locations:
        if isinstance(loc, list | tuple) and len(loc) >= 2 and loc[0] == "body":
            return ".".join(str(part) for part in loc[1:])
    if match := _PYDANTIC_TEXT_LOC.search(text):
        return match.group(1)
    return None


def refuses_tools(lowered: str) -> bool:
    """Whether the server's words (lower-cased) say it or its model takes no tools."""
    return _TOOLS_REFUSED.search(lowered) is not None
