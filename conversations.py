"""One conversation per channel: its waiting messages, its turn-taking and its memory.

Each channel (a thread and a DM are channels) has a queue of messages not yet taken
into the conversation and a lock, so turns are taken one at a time, in arrival order.
Its `ChannelMemory` is created on first use and read back from the channel's history.
A channel that falls behind answers its backlog together, in one call. The answer is
asked of the model (chat_model.py) and posted through one `Reply` (replies.py).

The turn remembered for an answer is what the channel shows (`Reply.shown_text`,
notes included), which is also what read-back rebuilds after a restart.
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
from channel_settings import ChannelSettings, Effective, Place
from chat_model import Answer, ChatModel, EmptyAnswer, explain_failure
from config import Settings
from history import read_back
from memory import ChannelMemory, Prompt, PromptBuilder, Turn, speaker_name
from replies import Reply, show_typing
from store import StoreError
from summaries import Summarizer
from tokenizer import TokenCounters
from usage import UsageLedger

log = logging.getLogger("chatbot")

SHORTENED_NOTE = "-# Your message was too long for me to read whole; I answered its beginning."
# More waiting messages than this in one channel are answered together, in one call.
COALESCE_AFTER = 3


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
        *,
        channel_settings: ChannelSettings,
        usage: UsageLedger,
        counters: TokenCounters,
    ) -> None:
        """`prompts` counts with OPENAI_MODEL's encoding and SYSTEM_PROMPT; a channel
        whose /settings choose another model or persona gets its own (`_profile`)."""
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
        self.channel_settings = channel_settings
        self.arrivals: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.usage = usage
        self.counters = counters
        # One PromptBuilder per (encoding, persona); per channel, the settings and
        # builder of its latest turn (its memory was counted with that builder).
        self._builders: dict[tuple[str, str], PromptBuilder] = {}
        self._in_use: dict[int, tuple[Effective, PromptBuilder]] = {}

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
        prompts = self._in_use[channel_id][1] if channel_id in self._in_use else self.prompts
        self.memories[channel_id] = ChannelMemory(self._memory_budget(prompts))
        if self.summarizer is not None:
            self.summarizer.forget(channel_id)

    async def report(self, channel: discord.abc.Messageable) -> str:
        """What the bot remembers in `channel`, for /memory (Discord markdown)."""
        channel_id = getattr(channel, "id", 0)
        async with self.locks[channel_id]:
            waiting = self.waiting[channel_id]
            await self._profile(channel)
            memory = await self._memory(channel, before=waiting[0].message if waiting else None)
        if memory.summary is not None:
            older = f"older messages are summarised ({memory.summary.tokens} tokens)"
        elif self.summarizer is not None:
            older = "older messages will be summarised when they no longer fit"
        else:
            older = "older messages are forgotten when they no longer fit"
        effective, prompts = self._in_use[channel_id]  # set by _profile above
        mode = "streamed" if effective.streaming else "posted when complete"
        who = "every message" if effective.reply_to == "all" else "mentions, replies and DMs"
        prompt = prompts.prompt(memory)
        return (
            f"**Memory in this channel:** {len(memory)} messages, {prompt.tokens:,} of "
            f"{self.settings.prompt_budget:,} prompt tokens used; {older}.\n"
            f"**Model:** {effective.model}, answers {mode}, answering {who}."
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
        effective, prompts = await self._profile(channel)
        memory = await self._memory(channel, before=batch[0].message)
        shortened = False
        for pending in batch:
            author = pending.message.author
            turn, shortened = prompts.turn(
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

        prompt = prompts.prompt(memory)
        note = SHORTENED_NOTE if shortened and to_answer[-1] is batch[-1] else None
        started = time.perf_counter()
        reply = Reply(message)
        if effective.streaming:
            answer = await self._answer_streaming(reply, prompt, note)
        else:
            answer = await self._answer_whole(reply, prompt, note)
        if answer is None or not reply.visible:
            return
        self._remember(channel.id, memory, prompts.turn("assistant", reply.shown_text)[0])
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
        prompts = self._in_use[channel_id][1] if channel_id in self._in_use else self.prompts
        budget = self._memory_budget(prompts)
        memory = self.memories[channel_id] = ChannelMemory(budget)
        assert self.client.user is not None
        try:
            turns = await read_back(
                channel,
                before=before,
                bot_id=self.client.user.id,
                prompts=prompts,
                budget=budget,
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
                answer = await self.model.complete(
                    prompt.messages, **self._request_options(reply.message.channel.id)
                )
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
                options = self._request_options(message.channel.id)
                async for piece in self.model.stream(prompt.messages, **options):
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
        """Record an answer's tokens (the server's usage when sent, else our count) in
        the stored usage and against its asker's daily allowance, before it is shown,
        so their next message is judged with it."""
        effective, prompts = self._in_use.get(message.channel.id, (None, self.prompts))
        completion = answer.completion_tokens
        if completion is None:
            completion = prompts.counter.count_text(answer.text)
        prompt_tokens = answer.prompt_tokens or prompt.tokens
        self.usage.record(
            user_id=message.author.id,
            guild_id=message.guild.id if message.guild else None,
            channel_id=message.channel.id,
            model=effective.model if effective else self.settings.openai_model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
        )
        limits = self.audience.limits
        if limits.daily_tokens:
            limits.record_usage(
                message.author.id, prompt_tokens + completion, discord.utils.utcnow()
            )

    async def _report_failure(self, reply: Reply, error: Exception) -> None:
        """Tell the user briefly why no answer came; the log gets the detail."""
        channel_id = reply.message.channel.id
        if isinstance(error, openai.OpenAIError | EmptyAnswer):
            log.warning("channel %s: no answer from the model: %r", channel_id, error)
        else:  # a reply the SDK could not parse, say: keep serving
            log.error("channel %s: unexpected failure", channel_id, exc_info=error)
        await reply.notice(explain_failure(error))

    # --- Settings per channel and stored usage (channel_settings.py, usage.py) ---------

    async def judge(self, message: discord.Message, me: discord.ClientUser) -> Verdict:
        """The audience's verdict on `message` with its channel's reply-to setting and
        its author's daily allowance as stored.

        Messages of one channel are judged in arrival order (a lock taken before the
        first await), so `receive`, called right after, queues them in that order.
        """
        async with self.arrivals[message.channel.id]:
            effective = await self.channel_settings.effective(Place.of(message.channel))
            await self.load_allowance(message.author.id)
            return self.audience.judge(message, me, effective.reply_to)

    async def load_allowance(self, user_id: int) -> None:
        """Bring the user's tokens today from the store (every process's answers) into
        the daily allowance; keeps the in-memory count if the database fails."""
        limits = self.audience.limits
        if not limits.daily_tokens or user_id in limits.admins:
            return
        now = discord.utils.utcnow()
        try:
            spent = await self.usage.tokens_on_day(user_id, now.date())
        except StoreError as error:
            log.warning("usage: daily allowance counted in memory: %s", error)
            return
        limits.set_usage(user_id, max(spent, limits.tokens_spent(user_id, now)), now)

    async def _profile(self, channel: discord.abc.Messageable) -> tuple[Effective, PromptBuilder]:
        """The channel's effective settings and the PromptBuilder for its model's
        encoding and persona. When either changed since the channel's memory was
        built, the memory is dropped and read back again, counted the new way."""
        channel_id = getattr(channel, "id", 0)
        effective = await self.channel_settings.effective(Place.of(channel))
        encoding = self.counters.encoding_name(effective.model)
        key = (encoding, effective.persona)
        prompts = self._builders.get(key)
        if prompts is None:
            default = (
                self.counters.encoding_name(self.settings.openai_model),
                self.settings.system_prompt,
            )
            if key == default:
                prompts = self.prompts
            else:
                counter = await self.counters.for_model(effective.model)
                try:
                    prompts = PromptBuilder(counter, effective.persona, self.settings.prompt_budget)
                except ValueError as error:  # checked by /settings persona; be safe anyway
                    log.warning(
                        "channel %s: persona refused, using SYSTEM_PROMPT: %s", channel_id, error
                    )
                    prompts = self.prompts
            self._builders[key] = prompts
        previous = self._in_use.get(channel_id)
        if previous is not None and previous[1] is not prompts:
            self.memories.pop(channel_id, None)
        self._in_use[channel_id] = (effective, prompts)
        return effective, prompts

    def _memory_budget(self, prompts: PromptBuilder) -> int:
        """Tokens a channel's turns may use with `prompts` (less the summary's share)."""
        if self.summarizer is None:
            return prompts.history_budget
        return prompts.history_budget - self.summarizer.max_tokens

    def _request_options(self, channel_id: int) -> dict[str, str | None]:
        """The model and reasoning effort the channel's settings choose, for ChatModel."""
        effective = self._in_use[channel_id][0] if channel_id in self._in_use else None
        if effective is None:
            return {}
        return {"model": effective.model, "reasoning_effort": effective.reasoning_effort}


def log_answer(channel_id: int, prompt_tokens: int, answer: Answer, latency: float) -> None:
    """One INFO line per answered message; the API's usage figures when it sent them."""
    log.info(
        "answered channel=%s prompt_tokens=%s completion_tokens=%s latency=%.2fs",
        channel_id,
        answer.prompt_tokens if answer.prompt_tokens is not None else prompt_tokens,
        answer.completion_tokens,
        latency,
    )
