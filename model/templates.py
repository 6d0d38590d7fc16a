"""Conversations reshaped for strict chat templates, and reading their refusals.

Two shapes of template refuse what the bot sends by default:

- **Strict alternation.** Mistral's template (vLLM, llama.cpp `--jinja`, Ollama, LM Studio)
  raises "Conversation roles must alternate user/assistant/user/assistant/..."
  (run-llama/llama_index#11731, infiniflow/ragflow#6880), newer ones "After the optional
  system message, conversation roles must alternate user and assistant roles except for
  tool calls and results." (mistralai/mistral-vibe#1006, eclipse-theia/theia#17104);
  Bedrock behind LiteLLM says "A conversation must alternate between user and assistant
  roles" (microsoft/semantic-kernel#10277). The bot sends two user turns in a row whenever
  people talk without it answering each message. `alternate` merges them.
- **No system role.** Gemma's template raises "System role not supported" (vLLM's 400
  `{"message": "System role not supported", "type": "BadRequestError"}`:
  vllm-project/vllm#2964, huggingface/chat-ui#1386; llama-cpp-python: abetlen/
  llama-cpp-python#1580; SGLang answers it with a 500: sgl-project/sglang#892); Mistral's
  first template "Only user and assistant roles are supported!". `system_into_user` puts
  the instructions at the start of the first user message, as llama.cpp's built-in Gemma
  template does itself (ggml-org/llama.cpp#5665). OpenAI's o1 says "'messages[0].role'
  does not support 'system' with this model" (open-webui/open-webui#5683).
- DeepSeek says "does not support successive user or assistant messages"
  (deepseek-ai/DeepSeek-R1#21), Perplexity "user and assistant roles should be
  alternating" (perplexityai/api-discussion#265): both are the alternation refusal.

Both functions are pure: they return new messages and never drop a word or a speaker.
"""

from __future__ import annotations

import re
from typing import Any

Message = dict[str, Any]

ALTERNATION = "alternation"
SYSTEM_ROLE = "system role"
# The user turn put before an answer that would otherwise open the conversation: strict
# templates want a user turn first, and the answer's text must not be lost.
EARLIER = "(The conversation so far begins with an earlier answer of yours.)"
INSTRUCTIONS_HEADING = "Instructions:"

# Read by meaning: a server saying roles must (or should) alternate, or refusing
# successive/consecutive messages of one role, refuses the shape `alternate` fixes.
_ALTERNATION = [
    re.compile(pattern)
    for pattern in (
        # Hugging Face / Mistral templates ("roles must alternate"), Perplexity ("user and
        # assistant roles should be alternating": perplexityai/api-discussion#265).
        r"roles (?:must|should|need to|have to) (?:be )?alternat",
        # Bedrock (through LiteLLM or other gateways).
        r"alternat(?:e|ing) between (?:the )?user and assistant",
        r"expected (?:an )?alternating (?:user|roles)",
        # DeepSeek: "does not support successive user or assistant messages"
        # (deepseek-ai/DeepSeek-R1#21); others: "consecutive messages with the same role".
        r"(?:successive|consecutive|adjacent)[^.]{0,30}?(?:user|assistant|same role|one role)",
        r"interleave the user/assistant",
    )
]
# Any wording that says the system role (or 'system' messages) is not taken.
_SYSTEM_REFUSED = [
    re.compile(pattern)
    for pattern in (
        # Gemma's template: "System role not supported"; "'system' messages are not
        # supported"; "the system role is not allowed".
        r"['\"`]?system['\"`]? (?:role|message|prompt)s? (?:is |are )?(?:not supported|"
        r"not allowed|unsupported)",
        # Mistral's first template: "Only user and assistant roles are supported!".
        r"only user and assistant roles are supported",
        # OpenAI's o1: "'messages[0].role' does not support 'system' with this model"
        # (open-webui/open-webui#5683), code unsupported_value.
        r"does(?: not|n't) support (?:the )?['\"`]?system\b",
        r"(?:unsupported|invalid|unknown) role:? ['\"`]?system",
    )
]


def template_refusal(lowered: str) -> str | None:
    """Which template shape the server's (lower-cased) error text refuses: ALTERNATION,
    SYSTEM_ROLE, or None when it is about neither."""
    if any(pattern.search(lowered) for pattern in _SYSTEM_REFUSED):
        return SYSTEM_ROLE
    if any(pattern.search(lowered) for pattern in _ALTERNATION):
        return ALTERNATION
    return None


def alternate(messages: list[Message]) -> list[Message]:
    """`messages` with roles alternating user/assistant after the leading system
    messages: consecutive messages of one role become one (texts joined by a blank line,
    images kept), and a conversation that would open with an answer gets a short user
    turn (`EARLIER`) before it.

    Tool calls and their results become plain turns: strict templates that refuse two
    turns of one role (older Mistral, Gemma) refuse the `tool` role too, so a call is
    said in its assistant turn and its result is a user turn, merged like the others
    (`_plain`). Who said what is kept: a merged
    user message whose parts came from several speakers has each part labelled "Name: "
    (unless it already is) and no `name` field; one from a single speaker keeps its
    `name`.
    """
    head = 0
    while head < len(messages) and messages[head]["role"] == "system":
        head += 1
    out: list[Message] = [dict(message) for message in messages[:head]]
    runs: list[list[Message]] = []
    for message in map(_plain, messages[head:]):
        if (
            runs
            and _mergeable(runs[-1][0])
            and _mergeable(message)
            and (runs[-1][0]["role"] == message["role"])
        ):
            runs[-1].append(message)
        else:
            runs.append([message])
    if runs and runs[0][0]["role"] == "assistant":
        out.append({"role": "user", "content": EARLIER})
    out.extend(_merged(run) for run in runs)
    return out


def system_into_user(messages: list[Message]) -> list[Message]:
    """`messages` without a system message: the leading system messages' text goes first
    in the first user message, under `INSTRUCTIONS_HEADING` (or in a user message of its
    own, before the rest, when the conversation does not open with a user message).
    The instructions are never labelled as anyone's words: the first user message gives
    up its `name` and its own text is labelled "Name: " instead.
    A system message after the first user message becomes a user message."""
    head = 0
    while head < len(messages) and messages[head]["role"] == "system":
        head += 1
    rest = [
        {**message, "role": "user"} if message["role"] == "system" else dict(message)
        for message in messages[head:]
    ]
    if head == 0:
        return rest
    instructions = "\n\n".join(_text(message) for message in messages[:head])
    preface = f"{INSTRUCTIONS_HEADING}\n{instructions}"
    if rest and rest[0]["role"] == "user":
        # The message now holds the instructions too: it loses its `name` (or a later
        # merge would label the instructions as that person's words) and its own text
        # says who spoke instead.
        first = {**rest[0]}
        name = first.pop("name", None)
        content = _labelled(name, first["content"]) if name else first["content"]
        rest[0] = {**first, "content": _prepend(preface, content)}
        return rest
    return [{"role": "user", "content": preface}, *rest]


def _plain(message: Message) -> Message:
    """A tool call or result as a plain turn: the calls said after the assistant's text
    (name and arguments as the model wrote them), a result as a user turn naming the
    call it answers. Any other message is returned as it is."""
    if message["role"] == "tool":
        result = message.get("content") or ""
        return {"role": "user", "content": f"[result of {message.get('tool_call_id')}]\n{result}"}
    calls = message.get("tool_calls")
    if message["role"] != "assistant" or not calls:
        return message
    said = [
        f"[calling {call.get('function', {}).get('name')} "
        f"({call.get('id')}) with {call.get('function', {}).get('arguments')}]"
        for call in calls
    ]
    text = message.get("content") or ""
    return {"role": "assistant", "content": "\n".join(filter(None, [text, *said]))}


def _mergeable(message: Message) -> bool:
    """Plain user and assistant messages merge; tool calls and their results never do
    (each result answers its call by id, and templates allow them in a row)."""
    return message["role"] in ("user", "assistant") and "tool_calls" not in message


def _merged(run: list[Message]) -> Message:
    """One message for consecutive messages of one role (`run`)."""
    if len(run) == 1:
        return dict(run[0])
    names = {message.get("name") for message in run}
    several = len(names - {None}) > 1 or (None in names and len(names) > 1)
    parts: list[Any] = []
    for message in run:
        content = message["content"]
        name = message.get("name")
        if several and name and message["role"] == "user":
            content = _labelled(name, content)
        parts.append(content)
    merged: Message = {"role": run[0]["role"], "content": _joined(parts)}
    if not several and run[0].get("name"):
        merged["name"] = run[0]["name"]
    return merged


def _labelled(name: str, content: Any) -> Any:
    label = f"{name}: "
    if isinstance(content, str):
        return content if content.startswith(label) else label + content
    texts = [part for part in content if part.get("type") == "text"]
    if texts and str(texts[0].get("text", "")).startswith(label):
        return content
    return _prepend(label.rstrip(), content)


def _joined(contents: list[Any]) -> Any:
    """Contents joined by blank lines; content parts when any of them has images."""
    if all(isinstance(content, str) for content in contents):
        return "\n\n".join(contents)
    parts: list[dict[str, Any]] = []
    for content in contents:
        parts.extend([{"type": "text", "text": content}] if isinstance(content, str) else content)
    return parts


def _prepend(text: str, content: Any) -> Any:
    if isinstance(content, str):
        return f"{text}\n\n{content}"
    return [{"type": "text", "text": text}, *content]


def _text(message: Message) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
