"""One conversation per channel: its waiting messages, its turn-taking and its memory.

Each channel (a thread and a DM are channels) has a queue of messages not yet taken
into the conversation and a lock, so turns are taken one at a time, in arrival order.
Its `ChannelMemory` is created on first use and read back from the channel's history.
A channel that falls behind answers its backlog together, in one call. The answer is
asked of the model (chat_model.py) and posted through one `Reply` (replies.py).

The turn remembered for an answer is what the channel shows (`Reply.shown_text`,
notes included), which is also what read-back rebuilds after a restart.

The lock covers what must happen in order: remembering the turns, asking the model,
posting the answer's messages. The last edits of an answer's messages (`Reply.final_edits`)
run outside it, in `final_edits`, which `close` waits for. Only the
MAX_CACHED_CHANNELS most recently active channels keep their memory, queue and lock;
a channel idle beyond that gives them up and is read back from Discord when it speaks
again (a channel with a turn in progress or waiting is never given up).
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
from chat_model import Answer, ChatModel, EmptyAnswer, explain_failure
from config import Settings
from history import read_back
from memory import ChannelMemory, Prompt, PromptBuilder, Turn, speaker_name
from pacing import ChannelPacer
from recency import RecentlyUsed
from replies import Reply, show_typing
from summaries import Summarizer

log = logging.getLogger("chatbot")

SHORTENED_NOTE = "-# Your message was too long for me to read whole; I answered its beginning."
# More waiting messages than this in one channel are answered together, in one call.
COALESCE_AFTER = 3
# At shutdown, wait at most this long (seconds) for answers' last edits to land.
FINAL_EDITS_TIMEOUT = 10.0


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
        self.memories: dict[int, ChannelMemory] = {}  # filled from history on first use
        # Per channel, the messages not yet taken into the conversation, and a lock so
        # that they are taken one turn at a time, in order.
        self.waiting: defaultdict[int, deque[PendingTurn]] = defaultdict(deque)
        self.locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.pacers: defaultdict[int, ChannelPacer] = defaultdict(ChannelPacer)
        # The channels above, most recently active last; the rest give their state up.
        self.active: RecentlyUsed[int] = RecentlyUsed(settings.max_cached_channels)
        # Answers' last edits still under way (outside the channels' locks).
        self.final_edits: set[asyncio.Task[None]] = set()

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
        self._use(message.channel.id)
        for notice in verdict.notices:
            await Reply(message, self.pacers[message.channel.id]).notice(notice)
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
        self._use(channel_id)
        if self.summarizer is not None:
            self.summarizer.forget(channel_id)

    async def report(self, channel: discord.abc.Messageable) -> str:
        """What the bot remembers in `channel`, for /memory (Discord markdown)."""
        channel_id = getattr(channel, "id", 0)
        self._use(channel_id)
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
        prompt = self.prompts.prompt(memory)
        return (
            f"**Memory in this channel:** {len(memory)} messages, {prompt.tokens:,} of "
            f"{self.settings.prompt_budget:,} prompt tokens used; {older}.\n"
            f"**Model:** {self.settings.openai_model}, answers {mode}, answering {who}."
        )

    async def close(self) -> None:
        """Let answers' last edits land, stop background summaries, close the model client."""
        if self.final_edits:
            await asyncio.wait(self.final_edits, timeout=FINAL_EDITS_TIMEOUT)
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

        prompt = self.prompts.prompt(memory)
        note = SHORTENED_NOTE if shortened and to_answer[-1] is batch[-1] else None
        started = time.perf_counter()
        reply = Reply(message, self.pacers[channel.id])
        if self.settings.stream_replies:
            answer = await self._answer_streaming(reply, prompt, note)
        else:
            answer = await self._answer_whole(reply, prompt, note)
        if reply.final_edits is not None:
            # Not awaited under the lock: the next turn need not wait for an edit.
            self.final_edits.add(reply.final_edits)
            reply.final_edits.add_done_callback(self.final_edits.discard)
        if answer is None or not reply.visible:
            return
        self._remember(channel.id, memory, self.prompts.turn("assistant", reply.shown_text)[0])
        log_answer(channel.id, prompt.tokens, answer, time.perf_counter() - started)

    def _use(self, channel_id: int) -> None:
        """Mark the channel as active; channels idle beyond MAX_CACHED_CHANNELS give up
        their memory, queue, lock and pacer (memory is read back when next needed)."""
        self.active.use(channel_id)
        for idle in self.active.overflow(self._busy):
            self.memories.pop(idle, None)
            self.waiting.pop(idle, None)
            self.locks.pop(idle, None)
            self.pacers.pop(idle, None)
            if self.summarizer is not None:
                self.summarizer.forget(idle)

    def _busy(self, channel_id: int) -> bool:
        """Whether the channel has a turn in progress or waiting."""
        lock = self.locks.get(channel_id)
        return bool(self.waiting.get(channel_id)) or (lock is not None and lock.locked())

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

    async def _answer_whole(self, reply: Reply, prompt: Prompt, note: str | None) -> Answer | None:
        """Get the whole answer, then post it; the answer, or None if it failed."""
        try:
            async with show_typing(reply.message.channel):
                answer = await self.model.complete(prompt.messages)
        except Exception as error:
            await self._report_failure(reply, error)
            return None
        self._charge(reply.message, prompt, answer)
        await reply.whole(answer.text, note)
        return answer

    async def _answer_streaming(
        self, reply: Reply, prompt: Prompt, note: str | None
    ) -> Answer | None:
        """Show the answer while it streams; the answer (or what arrived), or None.

        A stream that breaks after some text keeps that text visible, marked as cut
        off, and it is remembered as the bot's turn: it is what the channel saw.
        """
        message = reply.message
        answer = None
        try:
            async with show_typing(message.channel):
                async for piece in self.model.stream(prompt.messages):
                    if isinstance(piece, Answer):
                        answer = piece
                        self._charge(message, prompt, answer)
                    else:
                        reply.add(piece)
        except Exception as error:
            if not reply.text:
                await reply.finish()
                await self._report_failure(reply, error)
                return None
            log.warning("channel %s: the answer stream broke: %r", message.channel.id, error)
            cut_off = f"-# ⚠️ The answer was cut off: {explain_failure(error)}"
            note = "\n".join(filter(None, [cut_off, note]))
            answer = Answer(reply.text, None, None, "interrupted")
            self._charge(message, prompt, answer)
        await reply.finish(note)
        return answer

    def _charge(self, message: discord.Message, prompt: Prompt, answer: Answer) -> None:
        """Count an answer's tokens against its asker's daily allowance, before it is
        shown, so their next message is judged with it."""
        limits = self.audience.limits
        if not limits.daily_tokens:
            return  # no allowance to count against: skip re-encoding an answer without usage
        completion = answer.completion_tokens
        if completion is None:
            completion = self.prompts.counter.count_text(answer.text)
        spent = (answer.prompt_tokens or prompt.tokens) + completion
        limits.record_usage(message.author.id, spent, discord.utils.utcnow())

    async def _report_failure(self, reply: Reply, error: Exception) -> None:
        """Tell the user briefly why no answer came; the log gets the detail."""
        channel_id = reply.message.channel.id
        if isinstance(error, openai.OpenAIError | EmptyAnswer):
            log.warning("channel %s: no answer from the model: %r", channel_id, error)
        else:  # a reply the SDK could not parse, say: keep serving
            log.error("channel %s: unexpected failure", channel_id, exc_info=error)
        await reply.notice(explain_failure(error))


def log_answer(channel_id: int, prompt_tokens: int, answer: Answer, latency: float) -> None:
    """One INFO line per answered message; the API's usage figures when it sent them."""
    log.info(
        "answered channel=%s prompt_tokens=%s completion_tokens=%s latency=%.2fs",
        channel_id,
        answer.prompt_tokens if answer.prompt_tokens is not None else prompt_tokens,
        answer.completion_tokens,
        latency,
    )
