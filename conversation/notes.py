"""The lines under an answer and the sentence for no answer: how an answer stopped
(`finish_note`, `stop_note`), the notes that go under a finished answer
(`answer_notes`), and what the user reads when no answer came (`failure_sentence`).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from model.errors import EmptyAnswer
from model.failures import Cause, Failure, user_message
from model.reading import Answer
from text.markdown import subtext

if TYPE_CHECKING:
    from conversation.answers import Asking

log = logging.getLogger("chatbot")

CUT_BY_CAP_NOTE = subtext(
    "⚠️ Cut off: the answer reached the reply length limit (MAX_REPLY_TOKENS)."
)
NO_FINISH_NOTE = subtext(
    "⚠️ This answer may be incomplete: the model service ended it without saying it was finished."
)
FILTERED_NOTE = subtext("⚠️ Cut off by the model's content filter.")
WINDOW_FULL_NOTE = subtext(
    "⚠️ Cut off: the conversation and the answer filled the model's context window on its server."
)
STOPPED_EARLY_NOTE = subtext(
    "⚠️ Cut off by the model service before the reply length limit (its context window or "
    "its own length limit)."
)
ERROR_NOTE = subtext(
    "⚠️ This answer may be incomplete: the model service reported an error while writing it."
)
UNUSUAL_NOTE = subtext(
    "⚠️ This answer may be incomplete: the model service ended it for an unusual reason{}."
)
# Finish reasons of a complete answer: OpenAI's "stop" ("tool_calls" and the older
# "function_call" are the tool loop's), and the words of servers that pass their own
# through (Anthropic-style gateways "end_turn", "stop_sequence"; TGI "eos_token").
NORMAL_FINISHES = frozenset(
    {"stop", "tool_calls", "function_call", "end_turn", "stop_sequence", "eos", "eos_token"}
)
# Reasons meaning the reply cap, and the context window (Anthropic-style gateways).
CAP_FINISHES = frozenset({"length", "max_tokens"})
WINDOW_FINISHES = frozenset({"model_context_window_exceeded", "context_length"})
# A "length" finish with fewer completion tokens than this share of MAX_REPLY_TOKENS was
# not the reply cap's doing.
WELL_UNDER_CAP = 0.9
_REASON = re.compile(r"[a-z_]{1,40}")


def finish_note(finish_reason: str | None, *, stopped_early: bool = False) -> str | None:
    """The note for an answer that did not finish normally, else None; the answer is
    remembered with it (the note is part of what the channel shows).

    - None: the server ended the answer without saying it was complete.
    - "length"/"max_tokens": the reply cap (CUT_BY_CAP_NOTE), unless `stopped_early`:
      the answer stopped well under MAX_REPLY_TOKENS (`stop_note` tells which window).
    - "content_filter"; "error" (OpenRouter's upstream failure mid-answer, maximhq/
      bifrost#5425, gethouston/houston#1211); any other value: may be incomplete.
    Reasons are compared case-insensitively (some servers send "STOP").
    """
    if finish_reason is None:
        return NO_FINISH_NOTE
    shown_reason, finish_reason = finish_reason, finish_reason.lower()
    if finish_reason in NORMAL_FINISHES:
        return None
    if finish_reason in CAP_FINISHES:
        return STOPPED_EARLY_NOTE if stopped_early else CUT_BY_CAP_NOTE
    if finish_reason in WINDOW_FINISHES:
        return WINDOW_FULL_NOTE
    if finish_reason == "content_filter":
        return FILTERED_NOTE
    if finish_reason == "error":
        return ERROR_NOTE
    # The reason is the server's word: shown only when it is a plain identifier.
    shown = f" ({shown_reason})" if _REASON.fullmatch(finish_reason) else ""
    return UNUSUAL_NOTE.format(shown)


def stop_note(answer: Answer, asking: Asking) -> str | None:
    """`finish_note` for `answer`, telling a "length" finish by the server's context
    window from one by the reply cap: completion tokens well under MAX_REPLY_TOKENS
    mean the cap did not stop it, and prompt plus completion large enough to be a
    window is taken for the server's (learnt: `ContextWindow.filled`, logged)."""
    if (answer.finish_reason or "").lower() not in CAP_FINISHES:
        return finish_note(answer.finish_reason)
    window, cap = asking.window, asking.answers.settings.max_reply_tokens
    completion = answer.completion_tokens
    if completion is None:
        completion = window.server_tokens(asking.prompts.counter.count_text(answer.text))
    if completion >= cap * WELL_UNDER_CAP:
        return CUT_BY_CAP_NOTE
    prompt = answer.prompt_tokens
    if prompt is None:
        prompt = window.server_tokens(asking.prompt.tokens)
    if not window.filled(prompt + completion):
        return finish_note(answer.finish_reason, stopped_early=True)
    log.warning(
        "channel %s: the answer stopped at %d tokens (prompt %d), under the reply cap of "
        "%d: the model's window on its server is full; using a budget of %d tokens for "
        "model %s from now on",
        asking.channel_id,
        completion,
        prompt,
        cap,
        window.budget,
        window.model,
    )
    return WINDOW_FULL_NOTE


def answer_notes(answer: Answer, asking: Asking) -> str | None:
    """The lines under a finished answer: how it stopped, the message cut to fit the
    request (`Prompt.cut`, said once), then the asking's own note."""
    notes = [stop_note(answer, asking)]
    if asking.prompt.cut and asking.prompt.cut not in (asking.note or ""):
        notes.append(asking.prompt.cut)
    notes.append(asking.note)
    return "\n".join(filter(None, notes)) or None


def failure_sentence(
    error: BaseException, failure: Failure, *, history_shortened: bool = False
) -> str:
    """The one sentence the chat user reads when `error` (classified as `failure`) left
    them without an answer: an empty answer's own, else the failure's cause's
    (model.failures.user_message)."""
    if isinstance(error, EmptyAnswer) and not (
        failure.cause is Cause.CONTEXT_TOO_LONG and error.silent
    ):
        return error.user_message()
    return user_message(failure, history_shortened=history_shortened)
