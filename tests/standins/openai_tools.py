"""Function calling for the OpenAI stand-in (openai_standin.py): the shapes of tool
calls in an answer, whole and streamed, OpenAI's checks of the requests that carry
tools and tool results, and other servers' refusals of `tools`.

Shapes as OpenAI's chat-completions reference and its "Function calling" guide give
them: a whole answer's message has ``content`` (null when it only calls tools) and
``tool_calls: [{"id", "type": "function", "function": {"name", "arguments"}}]`` with
finish reason ``"tool_calls"``; streamed, the first delta of each call has its
``index``, ``id``, ``type`` and ``function.name`` with ``arguments: ""``, later deltas
only ``index`` and a piece of ``function.arguments``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

# (message, param, code) of an OpenAI-style 400; the stand-in makes the body.
Problem = tuple[str, str | None, str | None]

FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Call:
    """One scripted tool call: `arguments` as the model writes it (any text, valid JSON
    or not); `id` made up when None."""

    name: str
    arguments: str = "{}"
    id: str | None = None


def whole_calls(calls: Sequence[Call], ids: Sequence[str]) -> list[dict[str, Any]]:
    """A whole message's `tool_calls`."""
    return [
        {"id": i, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c, i in zip(calls, ids, strict=True)
    ]


def streamed_calls(
    calls: Sequence[Call], ids: Sequence[str], piece: int = 8
) -> list[list[dict[str, Any]]]:
    """The `tool_calls` of each streamed delta: per call, its opening entry, then its
    arguments `piece` characters at a time (OpenAI sends a few tokens per delta)."""
    deltas: list[list[dict[str, Any]]] = []
    for index, (call, call_id) in enumerate(zip(calls, ids, strict=True)):
        function = {"name": call.name, "arguments": ""}
        deltas.append([{"index": index, "id": call_id, "type": "function", "function": function}])
        for start in range(0, len(call.arguments), piece):
            text = call.arguments[start : start + piece]
            deltas.append([{"index": index, "function": {"arguments": text}}])
    return deltas


def tools_problem(body: Mapping[str, Any]) -> Problem | None:
    """OpenAI's 400 for a malformed `tools` or `tool_choice`, or None."""
    tools = body.get("tools")
    if tools is None:
        if "tool_choice" in body:
            return (
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified.",
                "tool_choice",
                None,
            )
        return None
    if not isinstance(tools, list) or not tools:
        return (
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but "
            "got an empty array instead.",
            "tools",
            "empty_array",
        )
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            return (
                f"Missing required parameter: 'tools[{i}].function'.",
                f"tools[{i}].function",
                "missing_required_parameter",
            )
        name = function.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.match(name):
            return (
                f"Invalid 'tools[{i}].function.name': string does not match pattern. "
                "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"tools[{i}].function.name",
                "invalid_value",
            )
    if body.get("tool_choice", "auto") not in ("auto", "none", "required"):
        return (
            None
            if isinstance(body["tool_choice"], dict)
            else ("Invalid value for 'tool_choice'.", "tool_choice", "invalid_value")
        )
    return None


def messages_problem(messages: Sequence[Any]) -> Problem | None:
    """OpenAI's 400 for tool messages out of place, or None: an assistant message with
    `tool_calls` must be followed by one tool message per call id, and a tool message
    must answer a call of the assistant message before it. Wordings as users quote
    OpenAI's errors (from memory, not seen in a capture here)."""
    waiting: list[str] = []  # call ids of the last assistant message not yet answered
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                return (
                    f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                    f"messages[{i}].tool_call_id",
                    "missing_required_parameter",
                )
            if call_id not in waiting:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                    None,
                )
            waiting.remove(call_id)
            continue
        if waiting:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not "
                f"have response messages: {', '.join(waiting)}",
                f"messages.[{i}].role",
                None,
            )
        if role == "assistant" and message.get("tool_calls"):
            waiting = [call.get("id") for call in message["tool_calls"] if isinstance(call, dict)]
    if waiting:
        return (
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(waiting)}",
            f"messages.[{len(messages)}].role",
            None,
        )
    return None


# Servers that take no tools (see ``tools_refusal``).
ToolsRefusalStyle = Literal["ollama", "vllm", "litellm", "llama.cpp", "llama_cpp_python"]


def tools_refusal(
    body: Mapping[str, Any], style: ToolsRefusalStyle
) -> tuple[int, dict[str, Any]] | None:
    """The status and body a server of `style` answers a request carrying `tools` with
    (None when it carries none):

    Wordings as users quote them (from memory, not seen in a capture here).

    - ``"ollama"``: a model whose template has no tools::

        400 {"error": {"message": "registry.ollama.ai/library/gemma:2b does not support
        tools", "type": "api_error", "param": null, "code": null}}

    - ``"vllm"``: vLLM started without ``--enable-auto-tool-choice``::

        400 {"object": "error", "message": "\\"auto\\" tool choice requires
        --enable-auto-tool-choice and --tool-call-parser to be set", "type":
        "BadRequestError", "param": null, "code": 400}

    - ``"litellm"``: LiteLLM's proxy for a provider without function calling::

        400 {"error": {"message": "litellm.UnsupportedParamsError: ollama does not support
        parameters: ['tools'], for model=gemma. To drop these, set
        `litellm.drop_params=True`", "type": null, "param": null, "code": "400"}}

    - ``"llama.cpp"``: llama.cpp's llama-server started without ``--jinja`` (its
      `runtime_error` comes back as a 500 server_error, as quoted in
      containers/ramalama#988 and defilantech/LLMKube#126)::

        500 {"error": {"code": 500, "message": "tools param requires --jinja flag",
        "type": "server_error"}}

    - ``"llama_cpp_python"``: llama-cpp-python's server with a GGUF chat template that
      raises on tools (``{{ raise_exception('This model does not support tools.') }}``;
      tests/e2e/test_llama.py runs the real one): its route handler turns the template's
      ValueError into a 500 (llama_cpp/server/errors.py)::

        500 {"error": {"message": "This model does not support tools.", "type":
        "internal_server_error", "param": null, "code": null}}

      Streamed, the 200 and its headers are sent before the template runs: a stream with
      no chunks (``EMPTY_STREAM``), as for its context refusal.
    """
    if "tools" not in body:
        return None
    model = body.get("model", "")
    match style:
        case "ollama":
            message = f"registry.ollama.ai/library/{model} does not support tools"
            return 400, {
                "error": {"message": message, "type": "api_error", "param": None, "code": None}
            }
        case "vllm":
            message = (
                '"auto" tool choice requires --enable-auto-tool-choice and '
                "--tool-call-parser to be set"
            )
            return 400, {
                "object": "error",
                "message": message,
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        case "litellm":
            message = (
                f"litellm.UnsupportedParamsError: ollama does not support parameters: "
                f"['tools'], for model={model}. To drop these, set "
                "`litellm.drop_params=True`"
            )
            return 400, {"error": {"message": message, "type": None, "param": None, "code": "400"}}
        case "llama.cpp":
            message = "tools param requires --jinja flag"
            return 500, {"error": {"code": 500, "message": message, "type": "server_error"}}
        case "llama_cpp_python":
            from tests.standins.openai_standin import EMPTY_STREAM

            if body.get("stream"):
                return 200, EMPTY_STREAM
            message = "This model does not support tools."
            error = {"message": message, "type": "internal_server_error", "param": None}
            return 500, {"error": {**error, "code": None}}
    raise ValueError(f"unknown tools refusal style {style!r}")
