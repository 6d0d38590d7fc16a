"""Failures from real SDK exceptions carrying the error bodies real servers send."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.failures import Cause, Failure, classify, user_message

URL = "http://127.0.0.1:8080/v1/chat/completions"
REQUEST = httpx2.Request("POST", URL)

_BY_STATUS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


def sdk_error(status: int, payload: Any) -> openai.APIStatusError:
    """The exception the SDK raises for an HTTP `status` answer with JSON `payload`.

    As openai/_base_client.py `_make_status_error_from_response` and openai/_client.py
    `_make_status_error` build it: the message is "Error code: N" plus the error's
    "message" when there is one, and `body` is the payload's "error" member if present.
    `test_sdk_error_builds_what_the_sdk_builds` checks this against the SDK itself.
    """
    response = httpx2.Response(status, request=REQUEST, json=payload)
    error = payload.get("error", payload) if isinstance(payload, dict) else None
    message = f"Error code: {status}"
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        message += f" - {error['message']}"
    body = payload.get("error", payload) if isinstance(payload, dict) else payload
    default = openai.InternalServerError if status >= 500 else openai.APIStatusError
    return _BY_STATUS.get(status, default)(message, response=response, body=body)


def openai_shape(message: str, type_: str | None, param: str | None, code: Any) -> dict:
    """OpenAI's error envelope, which most compatible servers copy."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# (status, payload, cause, parameter or context window). Sources per row.
ROWS: dict[str, tuple[int, Any, Cause, str | int | None]] = {
    # --- OpenAI (platform.openai.com error codes; bodies as the API returns them) ---
    "openai context": (400, openai_shape(
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130012 tokens. Please reduce the length of the messages.",
        "invalid_request_error", "messages", "context_length_exceeded",
    ), Cause.CONTEXT_TOO_LONG, 128000),
    "openai context, no number": (400, openai_shape(
        "Your input exceeds the context window of this model. Please adjust your input "
        "and try again.", "invalid_request_error", "input", "context_length_exceeded",
    ), Cause.CONTEXT_TOO_LONG, None),
    "openai max_tokens": (400, openai_shape(
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
        "'max_completion_tokens' instead.",
        "invalid_request_error", "max_tokens", "unsupported_parameter",
    ), Cause.REFUSED_PARAMETER, "max_tokens"),
    "openai unsupported value": (400, openai_shape(
        "Unsupported value: 'temperature' does not support 0.2 with this model. Only the "
        "default (1) value is supported.",
        "invalid_request_error", "temperature", "unsupported_value",
    ), Cause.REFUSED_PARAMETER, "temperature"),
    "openai unknown parameter": (400, openai_shape(
        "Unknown parameter: 'stream_options.include_usage'.",
        "invalid_request_error", "stream_options.include_usage", "unknown_parameter",
    ), Cause.REFUSED_PARAMETER, "stream_options.include_usage"),
    # Azure OpenAI and older OpenAI deployments.
    "openai unrecognized argument": (400, openai_shape(
        "Unrecognized request argument supplied: prompt_cache_key",
        "invalid_request_error", None, None,
    ), Cause.REFUSED_PARAMETER, "prompt_cache_key"),
    "openai code only": (400, openai_shape(
        "This parameter is not available for this model.",
        "invalid_request_error", "service_tier", "unsupported_parameter",
    ), Cause.REFUSED_PARAMETER, "service_tier"),
    "openai images": (400, openai_shape(
        "Invalid content type. image_url is only supported by certain models.",
        "invalid_request_error", "messages.[1].content.[1].type", None,
    ), Cause.IMAGES_REFUSED, None),
    "openai bad key": (401, openai_shape(
        "Incorrect API key provided: sk-abc. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error", None, "invalid_api_key",
    ), Cause.BAD_KEY, None),
    "openai permission": (403, openai_shape(
        "You are not allowed to sample from this model", "invalid_request_error", None, None,
    ), Cause.BAD_KEY, None),
    "openai model not in project": (403, openai_shape(
        "Project `proj_abc` does not have access to model `gpt-5.4-mini`",
        "invalid_request_error", None, "model_not_found",
    ), Cause.UNKNOWN_MODEL, None),
    "openai unknown model": (404, openai_shape(
        "The model `gpt-9` does not exist or you do not have access to it.",
        "invalid_request_error", None, "model_not_found",
    ), Cause.UNKNOWN_MODEL, None),
    "openai rate limit": (429, openai_shape(
        "Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): "
        "Limit 500, Used 500, Requested 1. Please try again in 120ms.",
        "requests", None, "rate_limit_exceeded",
    ), Cause.RATE_LIMITED, None),
    "openai quota": (429, openai_shape(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota", None, "insufficient_quota",
    ), Cause.OUT_OF_CREDIT, None),
    "openai server error": (500, openai_shape(
        "The server had an error while processing your request. Sorry about that!",
        "server_error", None, None,
    ), Cause.SERVER_ERROR, None),
    "openai overloaded": (503, openai_shape(
        "The engine is currently overloaded, please try again later.", "server_error", None,
        None,
    ), Cause.OVERLOADED, None),
    "openai other 400": (400, openai_shape(
        "Invalid 'messages[1].content': string too long. Expected a string with maximum "
        "length 10485760, but got a string with length 10485761 instead.",
        "invalid_request_error", "messages[1].content", "string_above_max_length",
    ), Cause.OTHER_BAD_REQUEST, None),
    # --- Anthropic-style gateways: 529 with type overloaded_error ---
    "gateway 529": (529, {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}},
        Cause.OVERLOADED, None),
    # --- OpenRouter (openrouter.ai/docs/api-reference/errors): 402, and 404 for images ---
    "openrouter credits": (402, {"error": {
        "message": "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
        "code": 402}}, Cause.OUT_OF_CREDIT, None),
    "openrouter images": (404, {"error": {
        "message": "No endpoints found that support image input", "code": 404}},
        Cause.IMAGES_REFUSED, None),
    # --- vLLM (vllm/entrypoints/openai serving_engine / renderer validation; older
    # versions answer with the fields at the top level and "object": "error") ---
    "vllm context, total": (400, {
        "object": "error", "type": "BadRequestError", "param": None, "code": 400,
        "message": "This model's maximum context length is 8192 tokens. However, you "
        "requested 9100 tokens (8100 in the messages, 1000 in the completion). Please "
        "reduce the length of the messages or completion."},
        Cause.CONTEXT_TOO_LONG, 8192),
    # vllm/exceptions.py VLLMValidationError appends "(parameter=..., value=...)".
    "vllm context, input": (400, openai_shape(
        "This model's maximum context length is 32768 tokens. However, your request has "
        "40000 input tokens. Please reduce the length of the input messages. "
        "(parameter=input_tokens, value=40000)", "BadRequestError", "input_tokens", 400,
    ), Cause.CONTEXT_TOO_LONG, 32768),
    "vllm context, reply allowance": (400, openai_shape(
        "'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum "
        "context length is 8192 tokens and your request has 5000 input tokens "
        "(4096 > 8192 - 5000).", "BadRequestError", None, 400,
    ), Cause.CONTEXT_TOO_LONG, 8192),
    "vllm decoder prompt": (400, openai_shape(
        "The decoder prompt (length 9000) is longer than the maximum model length of 8192. "
        "Make sure that `max_model_len` is no smaller than the number of text tokens.",
        "BadRequestError", None, 400,
    ), Cause.CONTEXT_TOO_LONG, 8192),
    # The repr of pydantic's error list (vllm-project/vllm issue on truncate_prompt_tokens).
    "vllm extra field": (400, {
        "object": "error", "type": "BadRequestError", "param": None, "code": 400,
        "message": "[{'type': 'extra_forbidden', 'loc': ('body', 'truncate_prompt_tokens'), "
        "'msg': 'Extra inputs are not permitted', 'input': 1792}]"},
        Cause.REFUSED_PARAMETER, "truncate_prompt_tokens"),
    "vllm nested extra field": (400, openai_shape(
        "[{'type': 'extra_forbidden', 'loc': ('body', 'messages', 2, 'assistant', "
        "'reasoning_content'), 'msg': 'Extra inputs are not permitted', 'input': 'x'}]",
        "BadRequestError", None, 400,
    ), Cause.REFUSED_PARAMETER, "messages.2.assistant.reasoning_content"),
    "pydantic text": (400, openai_shape(
        "1 validation error for ChatCompletionRequest\nthink\n  Extra inputs are not "
        "permitted [type=extra_forbidden, input_value=False, input_type=bool]",
        "BadRequestError", None, 400,
    ), Cause.REFUSED_PARAMETER, "think"),
    "vllm unknown model": (404, openai_shape(
        "The model `llama-9` does not exist.", "NotFoundError", "model", 404,
    ), Cause.UNKNOWN_MODEL, None),
    "vllm images": (400, openai_shape(
        "Qwen2ForCausalLM is not a multimodal model", "BadRequestError", None, 400,
    ), Cause.IMAGES_REFUSED, None),
    # FastAPI's own RequestValidationError answer (422 with a `detail` list), e.g. Mistral.
    "fastapi 422 extra field": (422, {"detail": [{
        "type": "extra_forbidden", "loc": ["body", "stream_options"],
        "msg": "Extra inputs are not permitted", "input": {"include_usage": True}}]},
        Cause.REFUSED_PARAMETER, "stream_options"),
    # Mistral's API: the same list nested in `message` (openai/openai-agents-python#442).
    "mistral 422 nested detail": (422, {"object": "error", "message": {"detail": [{
        "type": "extra_forbidden", "loc": ["body", "stream_options", "include_usage"],
        "msg": "Extra inputs are not permitted", "input": True}]},
        "type": "invalid_request_error", "param": None, "code": None},
        Cause.REFUSED_PARAMETER, "stream_options.include_usage"),
    # DeepSeek's text-only models cannot even parse an image part (Mangi-11/Eta#62).
    "deepseek images": (400, openai_shape(
        "Failed to deserialize the JSON body into the target type: messages[94]: unknown "
        "variant `image_url`, expected `text` at line 1 column 802043",
        "invalid_request_error", None, "invalid_request_error",
    ), Cause.IMAGES_REFUSED, None),
    # --- LiteLLM proxy (litellm/exceptions.py message prefixes; the proxy's error
    # envelope carries code "400" as a string) ---
    "litellm context": (400, openai_shape(
        "litellm.ContextWindowExceededError: litellm.BadRequestError: OpenAIException - "
        "This model's maximum context length is 2048 tokens. However, you requested 2100 "
        "tokens (1844 in the messages, 256 in the completion). Please reduce the length of "
        "the messages or completion.", None, None, "400",
    ), Cause.CONTEXT_TOO_LONG, 2048),
    "litellm context, provider words only": (400, openai_shape(
        "litellm.ContextWindowExceededError: litellm.BadRequestError: Hosted_vllmException "
        "- Input length 9000 exceeds model limit", None, None, "400",
    ), Cause.CONTEXT_TOO_LONG, None),
    "litellm unsupported params": (400, openai_shape(
        "litellm.UnsupportedParamsError: openai does not support parameters: "
        "['reasoning_effort'], for model=deepseek-v4. To drop these, set "
        "`litellm.drop_params=True` or for proxy:\n\n`litellm_settings:\n drop_params: "
        "true`\n", "None", None, "400",
    ), Cause.REFUSED_PARAMETER, "reasoning_effort"),
    # litellm/proxy/route_llm_request.py
    "litellm unknown model": (400, openai_shape(
        "/chat/completions: Invalid model name passed in model=gpt-9. Call `/v1/models` "
        "to view available models for your key.", "invalid_request_error", "model", "400",
    ), Cause.UNKNOWN_MODEL, None),
    "litellm bad key": (401, openai_shape(
        "Authentication Error, Invalid proxy server token passed.", "auth_error", "None",
        "401",
    ), Cause.BAD_KEY, None),
    # --- llama-cpp-python (llama_cpp/server/errors.py; llama_cpp/llama.py) ---
    "llama-cpp-python context": (400, openai_shape(
        "This model's maximum context length is 2048 tokens. However, you requested 2100 "
        "tokens (1844 in the messages, 256 in the completion). Please reduce the length of "
        "the messages or completion.",
        "invalid_request_error", "messages", "context_length_exceeded",
    ), Cause.CONTEXT_TOO_LONG, 2048),
    # The raw ValueError, answered as 500 when its formatter does not apply.
    "llama-cpp-python raw context": (500, openai_shape(
        "Requested tokens (2100) exceed context window of 2048",
        "internal_server_error", None, None,
    ), Cause.CONTEXT_TOO_LONG, 2048),
    "llama-cpp-python unknown model": (400, openai_shape(
        "The model `models/x.gguf` does not exist", "invalid_request_error", None,
        "model_not_found",
    ), Cause.UNKNOWN_MODEL, None),
    # --- llama.cpp llama-server (tools/server/server-context.cpp send_error;
    # server-common.cpp format_error_response) ---
    "llama.cpp context": (400, {"error": {
        "code": 400, "message": "request (2100 tokens) exceeds the available context size "
        "(2048 tokens), try increasing it", "type": "exceed_context_size_error",
        "n_prompt_tokens": 2100, "n_ctx": 2048}},
        Cause.CONTEXT_TOO_LONG, 2048),
    "llama.cpp context, older": (400, {"error": {
        "code": 400, "message": "the request exceeds the available context size, try "
        "increasing it", "type": "invalid_request_error"}},
        Cause.CONTEXT_TOO_LONG, None),
    "llama.cpp images": (500, {"error": {
        "code": 500, "message": "image input is not supported - hint: if this is "
        "unexpected, you may need to provide the mmproj", "type": "server_error"}},
        Cause.IMAGES_REFUSED, None),
    "llama.cpp loading": (503, {"error": {
        "code": 503, "message": "Loading model", "type": "unavailable_error"}},
        Cause.OVERLOADED, None),
    "llama.cpp bad key": (401, {"error": {
        "code": 401, "message": "Invalid API Key", "type": "authentication_error"}},
        Cause.BAD_KEY, None),
    # --- Ollama's OpenAI endpoint (openai/openai.go NewError; llm/llama_server.go;
    # server/routes.go handleScheduleError; server/sched.go ErrMaxQueue) ---
    "ollama context": (400, openai_shape(
        "the prompt is longer than the context length currently available to the model; "
        "shorten the prompt, adjust the context length in settings, or use a model with a "
        "longer context length", "invalid_request_error", None, None,
    ), Cause.CONTEXT_TOO_LONG, None),
    "ollama input length": (400, openai_shape(
        "the input length exceeds the context length", "invalid_request_error", None, None,
    ), Cause.CONTEXT_TOO_LONG, None),
    "ollama unknown model": (404, openai_shape(
        'model "llama9" not found, try pulling it first', "not_found_error", None, None,
    ), Cause.UNKNOWN_MODEL, None),
    "ollama busy": (503, openai_shape(
        "server busy, please try again.  maximum pending requests exceeded", "api_error",
        None, None,
    ), Cause.OVERLOADED, None),
    # The MLX runner's words (x/mlxrunner); the status here is an assumption.
    "ollama images": (500, openai_shape(
        "model does not support image input", "api_error", None, None,
    ), Cause.IMAGES_REFUSED, None),
}  # fmt: skip


@pytest.mark.parametrize("row", ROWS)
def test_server_errors_are_classified(row: str) -> None:
    status, payload, cause, detail = ROWS[row]
    failure = classify(sdk_error(status, payload))
    assert failure.cause is cause
    assert failure.status == status
    if cause is Cause.CONTEXT_TOO_LONG:
        assert failure.context_window == detail
    else:
        assert failure.context_window is None
    if cause is Cause.REFUSED_PARAMETER:
        assert failure.parameter == detail
    else:
        assert failure.parameter is None
    assert failure.detail  # the server's words are kept for the log


@pytest.mark.parametrize("row", ROWS)
def test_sdk_error_builds_what_the_sdk_builds(row: str) -> None:
    status, payload, *_ = ROWS[row]
    client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:8080/v1")
    response = httpx2.Response(status, request=REQUEST, json=payload)
    expected = client._make_status_error_from_response(response)
    built = sdk_error(status, payload)
    assert type(built) is type(expected)
    assert (built.message, built.body, built.code, built.param, built.type) == (
        expected.message,
        expected.body,
        expected.code,
        expected.param,
        expected.type,
    )


def test_errors_without_a_status() -> None:
    assert classify(openai.APITimeoutError(REQUEST)) == Failure(
        Cause.TIMED_OUT, detail="Request timed out."
    )
    assert classify(openai.APIConnectionError(request=REQUEST)).cause is Cause.UNREACHABLE
    assert classify(ConnectionRefusedError("refused")).cause is Cause.UNREACHABLE
    assert classify(TimeoutError(), deadline=30) == Failure(Cause.TIMED_OUT, deadline=30)
    assert classify(ValueError("odd")).cause is Cause.UNKNOWN
    # An error event inside a stream (openai/_streaming.py): an APIError with no status.
    streamed = openai.APIError(
        "request (2100 tokens) exceeds the available context size (2048 tokens)",
        REQUEST,
        body={"message": "request (2100 tokens) exceeds the available context size "
              "(2048 tokens)", "type": "exceed_context_size_error", "n_ctx": 2048},
    )  # fmt: skip
    assert classify(streamed) == Failure(
        Cause.CONTEXT_TOO_LONG,
        context_window=2048,
        prompt_tokens=2100,
        detail=classify(streamed).detail,
    )
    assert classify(openai.APIError("An error occurred during streaming", REQUEST, body=None)) \
        == Failure(Cause.UNKNOWN, detail="An error occurred during streaming")  # fmt: skip
    # Error events that say what they are by code or type, as OpenAI's bodies do.
    limited = {"message": "Rate limit reached", "code": "rate_limit_exceeded"}
    assert classify(openai.APIError("Rate limit reached", REQUEST, body=limited)).cause \
        is Cause.RATE_LIMITED  # fmt: skip
    broke = {"message": "The server had an error", "type": "server_error"}
    assert classify(openai.APIError("The server had an error", REQUEST, body=broke)).cause \
        is Cause.SERVER_ERROR  # fmt: skip


# The server's own count of a refused prompt, where its error states it (the bot
# calibrates its estimate with it); None where the words give no count.
PROMPT_COUNTS = {
    "openai context": 130012,
    "openai context, no number": None,
    "litellm context": 1844,
    "litellm context, provider words only": None,
    "llama-cpp-python context": 1844,
    "llama.cpp context": 2100,
    "llama.cpp context, older": None,
    "ollama context": None,
}


@pytest.mark.parametrize("row", PROMPT_COUNTS)
def test_the_servers_count_of_a_refused_prompt(row: str) -> None:
    status, payload, *_ = ROWS[row]
    assert classify(sdk_error(status, payload)).prompt_tokens == PROMPT_COUNTS[row]


def test_vllm_states_the_prompt_count() -> None:
    message = (
        "This model's maximum context length is 2048 tokens. However, you requested 512 "
        "output tokens and your prompt contains at least 1700 input tokens, for a total of "
        "at least 2212 tokens. (parameter=input_tokens, value=1700)"
    )
    failure = classify(sdk_error(400, openai_shape(message, "BadRequestError", None, 400)))
    assert (failure.cause, failure.context_window, failure.prompt_tokens) == (
        Cause.CONTEXT_TOO_LONG,
        2048,
        1700,
    )


def test_a_non_json_body_is_read_as_text() -> None:
    response = httpx2.Response(502, request=REQUEST, text="<html>Bad Gateway</html>")
    error = openai.InternalServerError("Error code: 502", response=response, body=response.text)
    assert classify(error).cause is Cause.SERVER_ERROR
    response = httpx2.Response(400, request=REQUEST, text="Unknown parameter: 'seed'.")
    error = openai.BadRequestError("Error code: 400", response=response, body=response.text)
    assert (classify(error).cause, classify(error).parameter) == (Cause.REFUSED_PARAMETER, "seed")


# The sentences users are told, kept word for word: a change to one is a visible change.
EXISTING = {
    Cause.OUT_OF_CREDIT: "The bot's OpenAI account is out of credit, so I can't answer right "
    "now. The bot's owner needs to check billing.",
    Cause.RATE_LIMITED: "The model is busy right now (rate limited). Please try again in a minute.",
    Cause.TIMED_OUT: "The model took too long to answer. Please try again.",
    Cause.UNREACHABLE: "I couldn't reach the model service. Please try again in a little while.",
    Cause.BAD_KEY: "The model service rejected the bot's API key. The bot's owner needs to "
    "check OPENAI_API_KEY.",
    Cause.UNKNOWN_MODEL: "The configured model isn't available. The bot's owner needs to check "
    "OPENAI_MODEL.",
    Cause.CONTEXT_TOO_LONG: "This conversation is too long for the model. The bot's owner can "
    "lower MAX_CONTEXT_TOKENS.",
    Cause.OTHER_BAD_REQUEST: "The model service rejected this request. Try rephrasing your "
    "message.",
    Cause.SERVER_ERROR: "The model service had an internal error. Please try again.",
    Cause.UNKNOWN: "Something went wrong while getting an answer. Please try again.",
}


@pytest.mark.parametrize("cause", list(Cause))
def test_each_cause_has_one_short_plain_sentence(cause: Cause) -> None:
    sentence = user_message(Failure(cause))
    if cause in EXISTING:
        assert sentence == EXISTING[cause]
    assert len(sentence) < 200
    assert "{" not in sentence
    assert ("rephrasing" in sentence) == (cause is Cause.OTHER_BAD_REQUEST)


@pytest.mark.parametrize("row", ROWS)
def test_sentences_never_echo_the_server(row: str) -> None:
    status, payload, *_ = ROWS[row]
    failure = classify(sdk_error(status, payload))
    sentence = user_message(failure)
    assert failure.detail not in sentence
    assert "{" not in sentence


def test_sentences_that_depend_on_what_the_bot_knows() -> None:
    long = Failure(Cause.CONTEXT_TOO_LONG, context_window=2048)
    assert user_message(long) == EXISTING[Cause.CONTEXT_TOO_LONG]
    shortened = user_message(long, history_shortened=True)
    assert "too long for the model" in shortened
    assert "older messages left out" in shortened
    assert "MAX_CONTEXT_TOKENS" not in shortened

    assert user_message(Failure(Cause.TIMED_OUT, deadline=120.0)) == (
        "The model took too long to answer (no answer within 120 seconds). Please try again."
    )
    named = user_message(Failure(Cause.REFUSED_PARAMETER, parameter="max_tokens"))
    assert "`max_tokens`" in named
    # A name that is not a plain identifier is left out rather than echoed.
    odd = user_message(Failure(Cause.REFUSED_PARAMETER, parameter="x {y} <@everyone>"))
    assert odd == user_message(Failure(Cause.REFUSED_PARAMETER))
    assert "@" not in odd


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
PAYLOADS = JSON | st.fixed_dictionaries(
    {"error": st.fixed_dictionaries({"message": st.text(max_size=80), "code": JSON})}
)


@given(status=st.integers(min_value=400, max_value=599), payload=PAYLOADS)
def test_any_error_body_gets_a_failure_and_a_plain_sentence(status: int, payload: Any) -> None:
    failure = classify(sdk_error(status, payload))
    assert failure.status == status
    sentence = user_message(failure)
    assert sentence in {user_message(Failure(cause)) for cause in Cause} or "`" in sentence
    assert "{" not in sentence
