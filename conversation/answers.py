"""One answer: asking the model and showing what it says, by one deadline.

`Answers.answer` builds the request from a channel's memory within the budget its
model's server really takes (`ContextWindow`, learnt from refusals and usage), asks
the model once (streamed or whole, as the channel's settings say) and shows the answer
through the channel's `Reply`. A prompt the server refuses as too long is retried
once, shortened to the budget the refusal taught; a request whose images the server
refuses raises `ImagesRefused` for the caller to retry without them; any other failure
is told to the user in one sentence by its cause (model_failures.py). An answer cut
short (by the reply cap, by its deadline, by a stream that ended without a finish
reason) is shown with a note that says so. Every answer's tokens are recorded in the
usage and the asker's daily allowance: the server's usage when it sends it, else the
bot's count calibrated to the server's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import discord
import openai

from config import Settings
from conversation.access import UserLimits
from conversation.channel_settings import Effective
from conversation.prompts import MIN_HISTORY_BUDGET, Prompt, PromptBuilder
from conversation.usage import UsageLedger
from discord_side.replies import Reply, show_typing
from memory import ChannelMemory
from model.client import RETRACT, Answer, ChatModel, DeadlinePassed, EmptyAnswer
from model.context_window import ContextWindow
from model.failures import Cause, Failure, UnreadableReply, classify, user_message
from text.tokens import REPLY_PRIMING, counts_exactly

log = logging.getLogger("chatbot")

CUT_BY_CAP_NOTE = "-# ⚠️ Cut off: the answer reached the reply length limit (MAX_REPLY_TOKENS)."
NO_FINISH_NOTE = (
    "-# ⚠️ This answer may be incomplete: the model service ended it without saying it was finished."
)
FILTERED_NOTE = "-# ⚠️ Cut off by the model's content filter."


def finish_note(finish_reason: str | None) -> str | None:
    """The note for an answer that did not finish normally ("stop"), else None.

    OpenAI's finish reasons: "length" (the reply cap), "content_filter"; a missing one
    means the server ended the answer without saying it was complete.
    """
    if finish_reason == "length":
        return CUT_BY_CAP_NOTE
    if finish_reason == "content_filter":
        return FILTERED_NOTE
    if finish_reason is None:
        return NO_FINISH_NOTE
    return None


class ImagesRefused(Exception):
    """The model's server refused the image parts of a request (`error`, classified
    as `failure`); nothing was shown."""

    def __init__(self, error: Exception, failure: Failure) -> None:
        super().__init__(str(error))
        self.error = error
        self.failure = failure


@dataclass(frozen=True, slots=True)
class Asked:
    """What one answer is asked with: the channel's settings, its request builder, and
    the answer's deadline (event-loop time)."""

    effective: Effective
    prompts: PromptBuilder
    deadline: float

    @property
    def options(self) -> dict[str, str | None]:
        """The model and reasoning effort for `ChatModel.complete`/`stream`."""
        return {"model": self.effective.model, "reasoning_effort": self.effective.reasoning_effort}


class Answers:
    """Asks the model for answers and shows them; one `ContextWindow` per model."""

    def __init__(
        self, settings: Settings, model: ChatModel, usage: UsageLedger, limits: UserLimits
    ) -> None:
        self.settings = settings
        self.model = model
        self.usage = usage
        self.limits = limits
        # Per model: the prompt budget its server really takes, learnt from its answers.
        self.windows: dict[str, ContextWindow] = {}

    async def answer(
        self,
        reply: Reply,
        memory: ChannelMemory,
        prompts: PromptBuilder,
        effective: Effective,
        note: str | None,
    ) -> tuple[Answer, Prompt] | None:
        """Answer from `memory` (requests built by `prompts`) by one deadline, streamed
        or whole as the channel's settings `effective` say, with `note` under it; the
        answer and the prompt it was given, or None when it failed (the user is told
        why).

        A prompt refused as too long is retried once, shortened to the budget the
        refusal taught the model's `ContextWindow`. Raises ImagesRefused, with nothing
        shown, when the server refused the request's images (the caller retries
        without them).
        """
        channel_id = reply.channel.id
        window = self.window(effective.model, prompts)
        asked = Asked(effective, prompts, self.model.deadline())
        shortened = False
        while True:
            prompt = prompts.prompt(memory, window.budget)
            try:
                if effective.streaming:
                    answer = await self._streamed(reply, prompt, note, asked)
                else:
                    answer = await self._whole(reply, prompt, note, asked)
            except Exception as error:
                failure = self._classify(error, prompt, window)
                if failure.cause is Cause.CONTEXT_TOO_LONG and not shortened:
                    budget = window.refused(
                        prompt.tokens,
                        window=failure.context_window,
                        server_count=failure.prompt_tokens,
                    )
                    log.warning(
                        "channel %s: the model service found the prompt too long (%d tokens "
                        "by the bot's count; window %s); using a budget of %d tokens for "
                        "model %s from now on, and asking again",
                        channel_id,
                        prompt.tokens,
                        failure.context_window or "not stated",
                        budget,
                        window.model,
                    )
                    shortened = True
                    continue
                if failure.cause is Cause.IMAGES_REFUSED and _has_images(prompt):
                    raise ImagesRefused(error, failure) from error
                await self._report_failure(reply, error, failure, history_shortened=shortened)
                return None
            if answer.prompt_tokens is not None:
                window.observe(prompt.tokens, answer.prompt_tokens)
            return answer, prompt

    def window(self, model: str, prompts: PromptBuilder) -> ContextWindow:
        """The learnt prompt budget of `model` (one per model, for every channel)."""
        window = self.windows.get(model)
        if window is None:
            window = self.windows[model] = ContextWindow(
                model,
                self.settings.prompt_budget,
                reply_tokens=self.settings.max_reply_tokens,
                exact=counts_exactly(model),
                floor=prompts.system.tokens + MIN_HISTORY_BUDGET + REPLY_PRIMING,
            )
        return window

    def _classify(self, error: Exception, prompt: Prompt, window: ContextWindow) -> Failure:
        """The failure `error` reports. A stream with no chunk at all (not even the role
        chunk every server sends first) after a prompt with something to leave out is
        llama-cpp-python's refusal of a prompt too long for its window."""
        if isinstance(error, EmptyAnswer) and error.silent and prompt.tokens > window.floor:
            return Failure(Cause.CONTEXT_TOO_LONG, detail=str(error))
        return classify(error, deadline=self.settings.openai_timeout)

    async def _whole(self, reply: Reply, prompt: Prompt, note: str | None, asked: Asked) -> Answer:
        """Get the whole answer, then post it with a note if it was cut short.

        Raises what `ChatModel.complete` raises; nothing was posted then.
        """
        async with show_typing(reply.channel):
            answer = await self.model.complete(
                prompt.messages, deadline=asked.deadline, **asked.options
            )
        self._charge(reply, prompt, answer, asked)
        notes = [finish_note(answer.finish_reason), note]
        await reply.whole(answer.text, "\n".join(filter(None, notes)) or None)
        return answer

    async def _streamed(
        self, reply: Reply, prompt: Prompt, note: str | None, asked: Asked
    ) -> Answer:
        """Show the answer while it streams; the answer (or what arrived).

        A stream that breaks or stalls after some text keeps that text visible, marked
        as cut off, and it is remembered as the bot's turn: it is what the channel saw.
        Raises what `ChatModel.stream` raises when nothing is shown.
        """
        answer = None
        try:
            async with show_typing(reply.channel):
                stream = self.model.stream(
                    prompt.messages, deadline=asked.deadline, **asked.options
                )
                async for piece in stream:
                    if isinstance(piece, Answer):
                        answer = piece
                        self._charge(reply, prompt, answer, asked)
                    elif piece is RETRACT:
                        await reply.retract()
                    else:
                        reply.add(piece)
        except asyncio.CancelledError:
            # Shutdown closes off this answer: the tokens streamed so far were spent.
            if reply.text and answer is None:
                self._charge(reply, prompt, Answer(reply.text, None, None, "interrupted"), asked)
            raise
        except Exception as error:
            if not reply.text:
                await reply.finish()
                raise
            if isinstance(error, DeadlinePassed):
                log.warning("channel %s: the answer stream stalled: %s", reply.channel.id, error)
                why = f"the model stopped writing for {error.seconds:g} seconds."
            else:
                log.warning("channel %s: the answer stream broke: %r", reply.channel.id, error)
                why = user_message(classify(error, deadline=self.settings.openai_timeout))
            note = "\n".join(filter(None, [f"-# ⚠️ The answer was cut off: {why}", note]))
            answer = Answer(reply.text, None, None, "interrupted")
            self._charge(reply, prompt, answer, asked)
        else:
            assert answer is not None  # the stream ends with its Answer or raises
            note = "\n".join(filter(None, [finish_note(answer.finish_reason), note])) or None
        await reply.finish(note)
        return answer

    def _charge(self, reply: Reply, prompt: Prompt, answer: Answer, asked: Asked) -> None:
        """Record an answer's tokens in the stored usage and against its asker's daily
        allowance, before it is shown, so their next message is judged with it: the
        server's usage when it sent it, else the bot's count calibrated to the server's
        (context_window.py)."""
        message = reply.message
        effective, prompts = asked.effective, asked.prompts
        window = self.window(effective.model, prompts)
        completion = answer.completion_tokens
        if completion is None:
            completion = window.server_tokens(prompts.counter.count_text(answer.text))
        prompt_tokens = answer.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = window.server_tokens(prompt.tokens)
        self.usage.record(
            user_id=message.author.id,
            guild_id=message.guild.id if message.guild else None,
            channel_id=reply.channel.id,
            model=effective.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
        )
        if self.limits.daily_tokens:
            self.limits.record_usage(
                message.author.id, prompt_tokens + completion, discord.utils.utcnow()
            )

    async def _report_failure(
        self, reply: Reply, error: Exception, failure: Failure, *, history_shortened: bool
    ) -> None:
        """Tell the user briefly why no answer came, by its cause; the log gets the detail."""
        channel_id = reply.channel.id
        if isinstance(error, DeadlinePassed):
            log.warning("channel %s: no answer from the model: %s", channel_id, error)
        elif isinstance(error, openai.OpenAIError | EmptyAnswer | TimeoutError | UnreadableReply):
            log.warning(
                "channel %s: no answer from the model (%s): %r",
                channel_id,
                failure.cause.value,
                error,
            )
        else:  # a reply the SDK could not parse, say: keep serving
            log.error("channel %s: unexpected failure", channel_id, exc_info=error)
        await reply.notice(failure_sentence(error, failure, history_shortened=history_shortened))


def failure_sentence(
    error: BaseException, failure: Failure, *, history_shortened: bool = False
) -> str:
    """The one sentence the chat user reads when `error` (classified as `failure`) left
    them without an answer: an empty answer's own, else the failure's cause's
    (model_failures.user_message)."""
    if isinstance(error, EmptyAnswer) and failure.cause is not Cause.CONTEXT_TOO_LONG:
        return error.user_message()
    return user_message(failure, history_shortened=history_shortened)


def _has_images(prompt: Prompt) -> bool:
    return any(isinstance(message["content"], list) for message in prompt.messages)


def log_answer(channel_id: int, prompt_tokens: int, answer: Answer, latency: float) -> None:
    """One INFO line per answered message; the API's usage figures when it sent them."""
    log.info(
        "answered channel=%s prompt_tokens=%s completion_tokens=%s latency=%.2fs",
        channel_id,
        answer.prompt_tokens if answer.prompt_tokens is not None else prompt_tokens,
        answer.completion_tokens,
        latency,
    )
