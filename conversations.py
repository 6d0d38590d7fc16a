"""One conversation per channel: its waiting messages, its turn-taking and its memory.

Each channel (a thread and a DM are channels) has a queue of messages not yet taken
into the conversation and a lock, so turns are taken one at a time, in arrival order.
Its `ChannelMemory` is created on first use and read back from the channel's history.
A channel that falls behind answers its backlog together, in one call. The answer is
asked of the model (chat_model.py) and posted through one `Reply` (replies.py).

The turn remembered for an answer is what the channel shows (`Reply.shown_text`,
notes included), which is also what read-back rebuilds after a restart. An answer cut
short (by the reply cap, by its deadline, by a stream that ended without a finish
reason) is shown and remembered with a note that says so.

Each answer has one deadline (OPENAI_TIMEOUT, chat_model.py) covering its retries. A
prompt the server refuses as too long is retried once, with the history shortened to
the budget learnt from the refusal (context_window.py); the server's usage calibrates
that budget and counts against the daily token limits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass

import discord
import openai

from audience import Audience, Verdict
from chat_model import RETRACT, Answer, ChatModel, DeadlinePassed, EmptyAnswer
from config import Settings
from context_window import ContextWindow
from history import read_back
from memory import MIN_HISTORY_BUDGET, ChannelMemory, Prompt, PromptBuilder, Turn, speaker_name
from model_failures import Cause, Failure, classify, user_message
from replies import Reply, show_typing
from summaries import Summarizer
from tokenizer import REPLY_PRIMING, counts_exactly

log = logging.getLogger("chatbot")

SHORTENED_NOTE = "-# Your message was too long for me to read whole; I answered its beginning."
# More waiting messages than this in one channel are answered together, in one call.
COALESCE_AFTER = 3
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


@dataclass(frozen=True, slots=True)
class PendingTurn:
    """A message waiting for its channel's turn; `answer`: whether to answer it."""

    message: discord.Message
    text: str
    answer: bool


class Conversations:
    """Every channel's conversation. Built once the tokenizer has loaded."""

    def __init__(
        self,
        settings: Settings,
        prompts: PromptBuilder,
        model: ChatModel,
        audience: Audience,
        client: discord.Client,
    ) -> None:
        self.settings = settings
        self.prompts = prompts
        self.model = model
        self.audience = audience
        self.client = client  # its user is known once logged in, before any message
        self.summarizer: Summarizer | None = None
        # With summaries, part of the history budget is kept for the summary.
        self.memory_budget = prompts.history_budget
        if settings.memory_strategy == "summarize":
            self.summarizer = Summarizer(model, prompts)
            self.memory_budget -= self.summarizer.max_tokens
        # The prompt budget this model's server really takes, learnt from its answers.
        self.window = ContextWindow(
            settings.openai_model,
            settings.prompt_budget,
            reply_tokens=settings.max_reply_tokens,
            exact=counts_exactly(settings.openai_model),
            floor=prompts.system.tokens + MIN_HISTORY_BUDGET + REPLY_PRIMING,
        )
        self.memories: dict[int, ChannelMemory] = {}  # filled from history on first use
        # Per channel, the messages not yet taken into the conversation, and a lock so
        # that they are taken one turn at a time, in order.
        self.waiting: defaultdict[int, deque[PendingTurn]] = defaultdict(deque)
        self.locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def receive(self, message: discord.Message, text: str, verdict: Verdict) -> None:
        """Take `message` (its text `text`) into its channel's conversation as `verdict`
        says: post its notices, remember it, and answer it in its turn."""
        if not verdict.remember:
            for notice in verdict.notices:
                await Reply(message).notice(notice)
            return
        # Queue before the first await, so the queue is in arrival order; whichever
        # handler holds the channel's lock works from the head of the queue.
        waiting = self.waiting[message.channel.id]
        waiting.append(PendingTurn(message, text, verdict.answer))
        for notice in verdict.notices:
            await Reply(message).notice(notice)
        async with self.locks[message.channel.id]:
            if not waiting:
                return  # answered together with others
            if len(waiting) > COALESCE_AFTER:
                # Falling behind: answer the newest with everything waiting as context.
                batch = list(waiting)
                waiting.clear()
            else:
                batch = [waiting.popleft()]
            await self._take_turns(batch)

    def reset(self, channel_id: int) -> None:
        """Forget the channel's conversation. The caller posts the reset message, the
        boundary read-back never crosses (history.RESET_MESSAGE)."""
        # A new, empty memory: an answer in progress finishes into the old one, unseen.
        self.memories[channel_id] = ChannelMemory(self.memory_budget)
        if self.summarizer is not None:
            self.summarizer.forget(channel_id)

    async def report(self, channel: discord.abc.Messageable) -> str:
        """What the bot remembers in `channel`, for /memory (Discord markdown)."""
        channel_id = getattr(channel, "id", 0)
        async with self.locks[channel_id]:
            waiting = self.waiting[channel_id]
            memory = await self._memory(channel, before=waiting[0].message if waiting else None)
        if memory.summary is not None:
            older = f"older messages are summarised ({memory.summary.tokens} tokens)"
        elif self.summarizer is not None:
            older = "older messages will be summarised when they no longer fit"
        else:
            older = "older messages are forgotten when they no longer fit"
        mode = "streamed" if self.settings.stream_replies else "posted when complete"
        who = "every message" if self.settings.reply_to == "all" else "mentions, replies and DMs"
        budget = self.window.budget
        prompt = self.prompts.prompt(memory, budget)
        learnt = " (learnt from the model service)" if self.window.learnt else ""
        return (
            f"**Memory in this channel:** {len(memory)} messages, {prompt.tokens:,} of "
            f"{budget:,} prompt tokens used{learnt}; {older}.\n"
            f"**Model:** {self.settings.openai_model}, answers {mode}, answering {who}; "
            f"token counts {self.window.describe()}."
        )

    async def close(self) -> None:
        """Stop background summaries and close the model client."""
        if self.summarizer is not None:
            await self.summarizer.close()
        await self.model.close()

    async def _take_turns(self, batch: list[PendingTurn]) -> None:
        """Remember the messages of `batch`, in order, and answer the newest one to be
        answered (if any), with all of them in the conversation."""
        channel = batch[0].message.channel
        memory = await self._memory(channel, before=batch[0].message)
        shortened = False
        for pending in batch:
            author = pending.message.author
            turn, shortened = self.prompts.turn(
                "user", pending.text, speaker_name(author.display_name, author.id)
            )
            self._remember(channel.id, memory, turn)
            log.debug("channel %s: %s said %r", channel.id, turn.name, pending.text)
        to_answer = [pending for pending in batch if pending.answer]
        if not to_answer:
            return
        message = to_answer[-1].message
        if len(batch) > 1:
            log.info("channel %s: answering %d waiting messages at once", channel.id, len(batch))

        note = SHORTENED_NOTE if shortened and to_answer[-1] is batch[-1] else None
        started = time.perf_counter()
        reply = Reply(message)
        answered = await self._answer(reply, memory, note)
        if answered is None or not reply.visible:
            return
        answer, prompt = answered
        self._remember(channel.id, memory, self.prompts.turn("assistant", reply.shown_text)[0])
        log_answer(channel.id, prompt.tokens, answer, time.perf_counter() - started)

    async def _memory(
        self, channel: discord.abc.Messageable, before: discord.Message | None
    ) -> ChannelMemory:
        """The channel's memory; the first time, rebuilt from its history before `before`.

        Call with the channel's lock held. A channel that cannot be read back starts empty.
        """
        channel_id = getattr(channel, "id", 0)
        memory = self.memories.get(channel_id)
        if memory is not None:
            return memory
        memory = self.memories[channel_id] = ChannelMemory(self.memory_budget)
        assert self.client.user is not None
        try:
            turns = await read_back(
                channel,
                before=before,
                bot_id=self.client.user.id,
                prompts=self.prompts,
                budget=self.memory_budget,
                remembered=self.audience.history_filter(),
            )
        except discord.HTTPException as error:
            log.warning(
                "channel %s: could not read its history, starting empty: %s", channel_id, error
            )
            return memory
        for turn in turns:
            memory.remember(turn)  # what does not fit is simply dropped, not summarised
        log.info("channel %s: read back %d turns from its history", channel_id, len(memory))
        return memory

    def _remember(self, channel_id: int, memory: ChannelMemory, turn: Turn) -> None:
        """Add `turn`; with summaries on, turns that no longer fit go to the summarizer."""
        dropped = memory.remember(turn)
        if self.summarizer is not None:
            self.summarizer.add(channel_id, memory, dropped)

    async def _answer(
        self, reply: Reply, memory: ChannelMemory, note: str | None
    ) -> tuple[Answer, Prompt] | None:
        """Answer from `memory` by one deadline; the answer and the prompt it was given,
        or None when it failed (the user is told why).

        A prompt refused as too long is retried once, shortened to the budget the
        refusal taught `self.window`.
        """
        channel_id = reply.message.channel.id
        deadline = self.model.deadline()
        shortened = False
        while True:
            prompt = self.prompts.prompt(memory, self.window.budget)
            try:
                if self.settings.stream_replies:
                    answer = await self._answer_streaming(reply, prompt, note, deadline)
                else:
                    answer = await self._answer_whole(reply, prompt, note, deadline)
            except Exception as error:
                failure = self._classify(error, prompt)
                if failure.cause is Cause.CONTEXT_TOO_LONG and not shortened:
                    budget = self.window.refused(
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
                        self.window.model,
                    )
                    shortened = True
                    continue
                await self._report_failure(reply, error, failure, history_shortened=shortened)
                return None
            if answer.prompt_tokens is not None:
                self.window.observe(prompt.tokens, answer.prompt_tokens)
            return answer, prompt

    def _classify(self, error: Exception, prompt: Prompt) -> Failure:
        """The failure `error` reports. A stream with no chunk at all (not even the role
        chunk every server sends first) after a prompt with something to leave out is
        llama-cpp-python's refusal of a prompt too long for its window."""
        if isinstance(error, EmptyAnswer) and error.silent and prompt.tokens > self.window.floor:
            return Failure(Cause.CONTEXT_TOO_LONG, detail=str(error))
        return classify(error, deadline=self.settings.openai_timeout)

    async def _answer_whole(
        self, reply: Reply, prompt: Prompt, note: str | None, deadline: float
    ) -> Answer:
        """Get the whole answer, then post it with a note if it was cut short.

        Raises what `ChatModel.complete` raises; nothing was posted then.
        """
        async with show_typing(reply.message.channel):
            answer = await self.model.complete(prompt.messages, deadline=deadline)
        self._charge(reply.message, prompt, answer)
        notes = [finish_note(answer.finish_reason), note]
        await reply.whole(answer.text, "\n".join(filter(None, notes)) or None)
        return answer

    async def _answer_streaming(
        self, reply: Reply, prompt: Prompt, note: str | None, deadline: float
    ) -> Answer:
        """Show the answer while it streams; the answer (or what arrived).

        A stream that breaks or stalls after some text keeps that text visible, marked
        as cut off, and it is remembered as the bot's turn: it is what the channel saw.
        Raises what `ChatModel.stream` raises when nothing is shown.
        """
        message = reply.message
        answer = None
        try:
            async with show_typing(message.channel):
                async for piece in self.model.stream(prompt.messages, deadline=deadline):
                    if isinstance(piece, Answer):
                        answer = piece
                        self._charge(message, prompt, answer)
                    elif piece is RETRACT:
                        await reply.retract()
                    else:
                        reply.add(piece)
        except Exception as error:
            if not reply.text:
                await reply.finish()
                raise
            if isinstance(error, DeadlinePassed):
                log.warning("channel %s: the answer stream stalled: %s", message.channel.id, error)
            else:
                log.warning("channel %s: the answer stream broke: %r", message.channel.id, error)
            if isinstance(error, DeadlinePassed):
                why = f"the model stopped writing for {error.seconds:g} seconds."
            else:
                why = user_message(classify(error, deadline=self.settings.openai_timeout))
            cut_off = f"-# ⚠️ The answer was cut off: {why}"
            note = "\n".join(filter(None, [cut_off, note]))
            answer = Answer(reply.text, None, None, "interrupted")
            self._charge(message, prompt, answer)
        else:
            assert answer is not None  # the stream ends with its Answer or raises
            note = "\n".join(filter(None, [finish_note(answer.finish_reason), note])) or None
        await reply.finish(note)
        return answer

    def _charge(self, message: discord.Message, prompt: Prompt, answer: Answer) -> None:
        """Count an answer's tokens against its asker's daily allowance, before it is
        shown, so their next message is judged with it: the server's usage when it sent
        it, else the bot's count calibrated to the server's (context_window.py)."""
        limits = self.audience.limits
        if not limits.daily_tokens:
            return  # no allowance to count against: skip re-encoding an answer without usage
        completion = answer.completion_tokens
        if completion is None:
            completion = self.window.server_tokens(self.prompts.counter.count_text(answer.text))
        spent = completion + (
            answer.prompt_tokens
            if answer.prompt_tokens is not None
            else self.window.server_tokens(prompt.tokens)
        )
        limits.record_usage(message.author.id, spent, discord.utils.utcnow())

    async def _report_failure(
        self, reply: Reply, error: Exception, failure: Failure, *, history_shortened: bool
    ) -> None:
        """Tell the user briefly why no answer came, by its cause; the log gets the detail."""
        channel_id = reply.message.channel.id
        if isinstance(error, DeadlinePassed):
            log.warning("channel %s: no answer from the model: %s", channel_id, error)
        elif isinstance(error, openai.OpenAIError | EmptyAnswer | TimeoutError):
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


def log_answer(channel_id: int, prompt_tokens: int, answer: Answer, latency: float) -> None:
    """One INFO line per answered message; the API's usage figures when it sent them."""
    log.info(
        "answered channel=%s prompt_tokens=%s completion_tokens=%s latency=%.2fs",
        channel_id,
        answer.prompt_tokens if answer.prompt_tokens is not None else prompt_tokens,
        answer.completion_tokens,
        latency,
    )
