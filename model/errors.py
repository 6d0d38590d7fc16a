"""The model side's exceptions, as `ChatModel.complete` and `ChatModel.stream` raise them.

    ModelError            base of every exception the bot's own model code raises
    ├── EmptyAnswer       the server answered, but left no text to post once reasoning
    │                     was removed (`silent`: a stream that sent no chunk at all)
    ├── UnreadableReply   the reply is not a chat completion: broken JSON, or a page
    │                     from a proxy in front of the server
    └── DeadlinePassed    the answer's deadline passed without text: before the answer
                          began, or when a stream stopped producing it; also a
                          `TimeoutError`

Failures of the request itself are the `openai` SDK's own (`openai.OpenAIError`:
status errors, connection errors, a stream's error event), raised unchanged once the
retries and what the bot learns from a refusal are used up (retries.py).
`failures.classify` reads both kinds.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base of the model side's own exceptions."""


class EmptyAnswer(ModelError):
    """The API answered, but with no text to post.

    `silent`: a stream that carried no chunk at all, which is how llama-cpp-python's
    server answers a streamed prompt that does not fit its window.
    """

    def __init__(self, finish_reason: str | None, *, silent: bool = False) -> None:
        super().__init__(f"the model returned no text (finish_reason={finish_reason!r})")
        self.finish_reason = finish_reason
        self.silent = silent

    def user_message(self) -> str:
        """One short sentence for the chat user about the empty answer."""
        if self.finish_reason == "length":
            return (
                "The model used up its reply allowance before writing anything. "
                "Try a simpler question, or ask the bot's owner to raise MAX_REPLY_TOKENS."
            )
        if self.finish_reason == "content_filter":
            return "The model's content filter blocked this answer."
        if self.finish_reason == "tool_calls":  # tools it was not offered (/settings tools)
            return "The model asked to use a tool, which it can't here, and wrote no answer."
        return "The model returned an empty answer. Please try again."


class UnreadableReply(ModelError):
    """The model server answered with something that is not a chat completion."""


class DeadlinePassed(ModelError, TimeoutError):
    """The answer's deadline passed: `seconds` without any text (`started=False`: before
    the answer began; True: the stream stopped producing text)."""

    def __init__(self, seconds: float, *, started: bool) -> None:
        what = "the answer stopped for" if started else "no answer began within"
        super().__init__(f"{what} {seconds:g} s (OPENAI_TIMEOUT)")
        self.seconds = seconds
        self.started = started
