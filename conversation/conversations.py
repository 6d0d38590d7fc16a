"""One conversation per channel: its waiting messages, its turn-taking and its memory.

Each channel (a thread and a DM are channels) has a queue of messages not yet taken
into the conversation and a lock, so turns are taken one at a time, in arrival order.
Its `ChannelMemory` is created on first use and read back from the channel's history.
A channel that falls behind answers its backlog together, in as few calls as fit the
budget. Each channel's settings (model, persona, streaming, reply mode) come from
`ChannelSettings`; the answer itself is answers.py's (`Answers`), shown through one
`Reply` (replies.py).

The turn remembered for an answer is what the channel shows (`Reply.final_text`,
notes included), which is also what read-back rebuilds after a restart; the answer to
a message that is deleted goes with it.

A message's attachments (files.py) become part of its user turn; what was skipped or
shortened is said in the answer's note. A server that refuses images gets the request
again without them, and no images for the rest of the process.

The lock covers what must happen in order: remembering the turns, asking the model,
posting the answer's messages. The last edits of an answer's messages (`Reply.final_edits`)
run outside it, in `final_edits`, which `close` waits for. Only the
MAX_CACHED_CHANNELS most recently active channels keep their memory, queue and lock;
a channel idle beyond that gives them up and is read back from Discord when it speaks
again (a channel with a turn in progress or waiting is never given up).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable
from dataclasses import dataclass

import discord

from config import ConfigError, Settings
from conversation.answers import Answers, ImagesRefused, log_answer
from conversation.audience import Audience, Verdict
from conversation.channel_settings import ChannelSettings, Effective, Place
from conversation.prompts import Prompt, PromptBuilder
from conversation.recency import RecentlyUsed
from conversation.summaries import Summarizer
from conversation.usage import UsageLedger
from discord_side.downloads import FileReader, Files
from discord_side.pacing import ChannelPacer
from discord_side.readback import read_back
from discord_side.replies import PermissionWarnings, Reply
from memory import ChannelMemory, Turn, speaker_name
from model.client import Answer, ChatModel
from store import Store, StoreError
from text.tokens import REPLY_PRIMING, TokenCounter, TokenCounters, encoding_name_for_model

log = logging.getLogger("chatbot")

SHORTENED_NOTE = "-# Your message was too long for me to read whole; I answered its beginning."
NO_VISION_NOTE = "-# This model can't see pictures, so I answered from the text alone."
SHUTDOWN_NOTE = "-# ⚠️ The bot is shutting down; this answer was cut off."
SHUTDOWN_NOTICE = "The bot is shutting down, so I couldn't answer this. Please ask again later."
# On shutdown, answers in flight get this many seconds to finish before they are cut
# off (then their final edits may take a few seconds more: Discord is still there).
SHUTDOWN_GRACE = 2.0
SHUTDOWN_CLOSE_OFF = 6.0
# More waiting messages than this in one channel are answered together, in one call.
COALESCE_AFTER = 3
# At shutdown, wait at most this long (seconds) for answers' last edits to land.
FINAL_EDITS_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class PendingTurn:
    """A message waiting for its channel's turn; `answer`: whether to answer it;
    `channel`: the conversation it joins (its own channel, or a thread started from it)."""

    message: discord.Message
    text: str
    answer: bool
    channel: discord.abc.Messageable


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
        store: Store | None = None,
    ) -> None:
        """`prompts` counts with OPENAI_MODEL's encoding and SYSTEM_PROMPT; a channel
        whose /settings choose another model or persona gets its own (`_profile`).
        `store` keeps running summaries across restarts (MEMORY_STRATEGY=summarize)."""
        self.settings = settings
        self.prompts = prompts
        self.model = model
        self.audience = audience
        self.client = client  # its user is known once logged in, before any message
        self.summarizer: Summarizer | None = None
        if settings.memory_strategy == "summarize":
            self.summarizer = Summarizer(model, prompts, store)
        self.memories: dict[int, ChannelMemory] = {}  # filled from history on first use
        # Per channel, the messages not yet taken into the conversation, and a lock so
        # that they are taken one turn at a time, in order.
        self.waiting: defaultdict[int, deque[PendingTurn]] = defaultdict(deque)
        self.locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.files = FileReader(settings, prompts.counter, prompts.history_budget)
        self.told_no_vision = False  # users are told once per process that images are unseen
        self.answering: dict[asyncio.Task[Answer | None], Reply] = {}  # answers in flight
        self.closing = False
        self.channel_settings = channel_settings
        self.arrivals: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.usage = usage
        self.answers = Answers(settings, model, usage, audience.limits)
        self.counters = counters
        # One PromptBuilder per (encoding, persona); per channel, the settings and
        # builder of its latest turn (its memory was counted with that builder).
        self._builders: dict[tuple[str, str], PromptBuilder] = {}
        self._in_use: dict[int, tuple[Effective, PromptBuilder]] = {}
        self.pacers: defaultdict[int, ChannelPacer] = defaultdict(ChannelPacer)
        # Each missing permission is logged once per channel, across answers.
        self.permission_warnings = PermissionWarnings()
        # The channels above, most recently active last; the rest give their state up.
        self.active: RecentlyUsed[int] = RecentlyUsed(settings.max_cached_channels)
        # Answers' last edits still under way (outside the channels' locks).
        self.final_edits: set[asyncio.Task[None]] = set()

    async def receive(
        self,
        message: discord.Message,
        text: str,
        verdict: Verdict,
        channel: discord.abc.Messageable | None = None,
    ) -> None:
        """Take `message` (its text `text`) into the conversation of `channel` (default:
        its own channel; a thread started from it in thread mode) as `verdict` says:
        post its notices, remember it, and answer it in its turn. Nothing new is
        taken once the bot is shutting down."""
        if self.closing:
            return
        if not verdict.remember:
            if verdict.notices:
                self._use(message.channel.id)  # its pacer is given up with the channel
            for notice in verdict.notices:
                await self._reply(message).notice(notice)
            return
        # Queue before the first await, so the queue is in arrival order; whichever
        # handler holds the channel's lock works from the head of the queue.
        channel = channel if channel is not None else message.channel
        channel_id = getattr(channel, "id", 0)
        waiting = self.waiting[channel_id]
        waiting.append(PendingTurn(message, text, verdict.answer, channel))
        self._use(channel_id)
        for notice in verdict.notices:
            await self._reply(message).notice(notice)
        try:
            async with self.locks[channel_id]:
                if not waiting or self.closing:
                    return  # answered together with others
                await self._take_turns(self._next_batch(channel_id))
        finally:
            if not waiting and self.waiting.get(channel_id) is waiting:
                del self.waiting[channel_id]  # an empty deque is ~0.6 KB; most channels idle

    def _next_batch(self, channel_id: int) -> list[PendingTurn]:
        """Take the messages to answer in the channel's next turn from the head of its
        queue.

        Normally the first one. A channel falling behind (more than COALESCE_AFTER
        waiting) answers its backlog together, but never more of it than a request in
        that channel can carry (`_batch_room`), so every message is in the request
        that answers it; the rest waits for the next turn, in order.
        """
        waiting = self.waiting[channel_id]
        if len(waiting) <= COALESCE_AFTER:
            return [waiting.popleft()]
        prompts, room = self._batch_room(channel_id)
        batch = [waiting.popleft()]
        tokens = self._estimate(batch[0], prompts)
        while waiting and tokens + (cost := self._estimate(waiting[0], prompts)) <= room:
            batch.append(waiting.popleft())
            tokens += cost
        return batch

    def _batch_room(self, channel_id: int) -> tuple[PromptBuilder, int]:
        """The channel's request builder (its persona and model, as of its last turn)
        and the tokens its turns may use in one request: the memory budget, or less
        where the model's server was learnt to take less (`ContextWindow`)."""
        effective, prompts = self._in_use.get(channel_id, (None, self.prompts))
        model = effective.model if effective is not None else self.settings.openai_model
        window = self.answers.window(model, prompts).budget
        summary = self.summarizer.max_tokens if self.summarizer is not None else 0
        room = window - prompts.system.tokens - REPLY_PRIMING - summary
        return prompts, min(self._memory_budget(prompts), room)

    def _estimate(self, pending: PendingTurn, prompts: PromptBuilder) -> int:
        """The most tokens `pending`'s turn will cost in a request (as `_take_turns`
        makes it), saying who spoke included: a backlog has several speakers."""
        author = pending.message.author
        name = speaker_name(author.display_name, author.id)
        turn = prompts.turn("user", pending.text, name)[0]
        return turn.tokens + turn.label_tokens

    def forget(self, channel_id: int, message_ids: set[int]) -> None:
        """Deleted messages: take them out of the channel's waiting messages and its
        memory (an answer goes whole if any of its messages is deleted). A channel
        whose memory is not loaded has nothing to forget: read-back sees the truth."""
        waiting = self.waiting.get(channel_id)
        if waiting:
            kept = [p for p in waiting if p.message.id not in message_ids]
            waiting.clear()
            waiting.extend(kept)
        memory = self.memories.get(channel_id)
        if memory is not None and (forgotten := memory.forget(message_ids)):
            log.info("channel %s: forgot %d deleted turn(s)", channel_id, len(forgotten))

    def replace(self, message: discord.Message, text: str) -> None:
        """An edited message: its remembered (or waiting) text becomes `text`,
        counted again as a new turn would be; an edit that leaves no text forgets it."""
        channel_id = message.channel.id
        if not text:
            self.forget(channel_id, {message.id})
            return
        waiting = self.waiting.get(channel_id, ())
        for index, pending in enumerate(waiting):
            if pending.message.id == message.id:
                waiting[index] = dataclasses.replace(pending, text=text)  # type: ignore[index]
        memory = self.memories.get(channel_id)
        if memory is None:
            return
        author = message.author
        turn, _ = self.prompts.turn("user", text, speaker_name(author.display_name, author.id))
        dropped = memory.replace(message.id, dataclasses.replace(turn, message_ids=(message.id,)))
        if dropped is not None:
            log.info("channel %s: a remembered message was edited", channel_id)
            if self.summarizer is not None:
                self.summarizer.add(channel_id, memory, dropped)

    def reset(self, channel_id: int) -> None:
        """Forget the channel's conversation. The caller posts the reset message, the
        boundary read-back never crosses (history.RESET_MESSAGE)."""
        # A new, empty memory: an answer in progress finishes into the old one, unseen.
        prompts = self._in_use[channel_id][1] if channel_id in self._in_use else self.prompts
        self.memories[channel_id] = ChannelMemory(self._memory_budget(prompts))
        self._use(channel_id)
        if self.summarizer is not None:
            self.summarizer.forget(channel_id)

    def forget_channel(self, channel_id: int) -> None:
        """Drop a deleted channel's (a thread's) memory; an answer in progress ends
        quietly, as Discord refuses its posts."""
        self.memories.pop(channel_id, None)
        if self.summarizer is not None:
            self.summarizer.forget(channel_id)

    async def report(self, channel: discord.abc.Messageable) -> str:
        """What the bot remembers in `channel`, for /memory (Discord markdown)."""
        channel_id = getattr(channel, "id", 0)
        self._use(channel_id)
        async with self.locks[channel_id]:
            waiting = self.waiting.get(channel_id)
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
        who = {
            "all": "every message",
            "thread": "every message, each new question in a thread of its own",
            "mention-thread": "mentions and replies, each in a thread of its own",
        }.get(effective.reply_to, "mentions, replies and DMs")
        window = self.answers.window(effective.model, prompts)
        prompt = prompts.prompt(memory, window.budget)
        learnt = " (learnt from the model service)" if window.learnt else ""
        files, images = memory.attachments
        attached = f" ({_count(files, 'attachment')}, {_count(images, 'image')} sent)"
        return (
            f"**Memory in this channel:** {len(memory)} messages{attached}, {prompt.tokens:,} of "
            f"{window.budget:,} prompt tokens used{learnt}; {older}.\n"
            f"**Model:** {effective.model}, answers {mode}, answering {who}; "
            f"token counts {window.describe()}."
        )

    @classmethod
    async def open(
        cls,
        settings: Settings,
        tokenizer: Awaitable[TokenCounter],
        audience: Audience,
        client: discord.Client,
    ) -> Conversations:
        """Open the store (DATABASE_URL) and, once `tokenizer` (OPENAI_MODEL's) has
        loaded, the conversations. Raises ConfigError naming DATABASE_URL when the
        store cannot be opened or written, or SYSTEM_PROMPT when it leaves no room."""
        try:
            store = await Store.open(settings.database_url)
        except StoreError as error:  # not openable or not writable: stop with one line
            raise ConfigError(f"DATABASE_URL: {error}") from None
        log.info("storing settings and usage in %s", store.where)
        try:
            counter = await tokenizer
            prompts = PromptBuilder(counter, settings.system_prompt, settings.prompt_budget)
        except ValueError as error:  # the system prompt leaves no room for a conversation
            await store.close()
            raise ConfigError(str(error)) from None
        usage = UsageLedger(store)
        usage.start_pruning(settings.usage_retention_days)
        counters = TokenCounters({encoding_name_for_model(settings.openai_model): counter})
        # The model's HTTP client belongs to the running event loop, so it is made here.
        return cls(
            settings,
            prompts,
            ChatModel(settings),
            audience,
            client,
            channel_settings=ChannelSettings(store, settings),
            usage=usage,
            counters=counters,
            store=store,
        )

    async def close(self) -> None:
        """Shut down: take no new messages, let answers in flight finish for
        SHUTDOWN_GRACE seconds, close off the rest with SHUTDOWN_NOTE (waiting up to
        SHUTDOWN_CLOSE_OFF seconds for Discord), then stop background summaries, close
        the model client and the store once answers' last edits have landed (at most
        FINAL_EDITS_TIMEOUT seconds). Discord must still be connected meanwhile. Only
        the first call does anything."""
        if self.closing:
            return
        self.closing = True
        if self.answering:
            log.info("shutting down: finishing %d answer(s) in flight", len(self.answering))
            _, late = await asyncio.wait(list(self.answering), timeout=SHUTDOWN_GRACE)
            for task in late:
                if not self.answering[task].final_pass:  # never cut off a post mid-request
                    task.cancel()
            if late:
                await asyncio.wait(late, timeout=SHUTDOWN_CLOSE_OFF)
            # Whatever is still talking to Discord now (a request it leaves hanging)
            # is given up, so nothing runs on after the clients close.
            stuck = [task for task in late if not task.done()]
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        if self.final_edits:
            await asyncio.wait(self.final_edits, timeout=FINAL_EDITS_TIMEOUT)
            for edits in list(self.final_edits):
                edits.cancel()
        if self.summarizer is not None:
            await self.summarizer.close()
        await self.model.close()
        await self.usage.close()
        await self.usage.store.close()

    async def _take_turns(self, batch: list[PendingTurn]) -> None:
        """Remember the messages of `batch`, in order, and answer the newest one to be
        answered (if any), with all of them in the conversation."""
        channel = batch[0].channel
        _, prompts = await self._profile(channel)
        memory = await self._memory(channel, before=batch[0].message)
        shortened = False
        notes: list[str] = []
        has_turn = unseen_images = False
        for pending in batch:
            author = pending.message.author
            files = await self._read_files(pending)
            if pending.answer:
                notes += files.notes(tell_no_vision=not self.told_no_vision)
                unseen_images |= files.unseen_images
            text = "\n\n".join(filter(None, [pending.text, files.text]))
            shortened = has_turn = False
            if not text:
                continue  # only files that could not be read: nothing to remember
            turn, shortened = prompts.turn(
                "user",
                text,
                speaker_name(author.display_name, author.id),
                files.images,
                files.names,
            )
            has_turn = True
            turn = dataclasses.replace(turn, message_ids=(pending.message.id,))
            self._remember(channel.id, memory, turn)
            log.debug("channel %s: %s said %r", channel.id, turn.name, pending.text)
        to_answer = [pending for pending in batch if pending.answer]
        if not to_answer:
            return
        message = to_answer[-1].message
        if len(batch) > 1:
            log.info("channel %s: answering %d waiting messages at once", channel.id, len(batch))
        self.told_no_vision |= unseen_images
        if not has_turn and to_answer[-1] is batch[-1]:
            # Nothing of the message could be read: say why instead of staying silent.
            if notes:
                await self._reply(message, channel).notice("\n".join(notes))
            return

        note_lines = [SHORTENED_NOTE] if shortened and to_answer[-1] is batch[-1] else []
        note = "\n".join(note_lines + notes) or None
        started = time.perf_counter()
        reply = self._reply(message, channel)
        try:
            answered = await self._answer_until_shutdown(reply, memory, note)
        except ImagesRefused:
            log.warning("channel %s: the model refused images; sending none again", channel.id)
            self._refuse_images()  # the request has no images now: it cannot be raised again
            reply = self._reply(message, channel)
            note = "\n".join([NO_VISION_NOTE, *note_lines, *notes])
            answered = await self._answer_until_shutdown(reply, memory, note)
        if answered is None or not reply.visible or reply.withdrawn:
            return
        if not memory.holds(message.id):
            # The question was deleted while it was being answered: its answer, which
            # may repeat it, is not remembered either.
            log.info("channel %s: the question was deleted; its answer is forgotten", channel.id)
            return
        answer, prompt = answered
        # Remembered as the channel will show it once the last edits land (they run
        # outside the lock); corrected if Discord refuses one.
        turn = prompts.turn("assistant", reply.final_text)[0]
        turn = dataclasses.replace(
            turn, message_ids=tuple(m.id for m in reply.posted), replies_to=reply.message.id
        )
        self._remember(channel.id, memory, turn)
        if reply.final_edits is not None:
            reply.final_edits.add_done_callback(
                lambda _: self._remember_as_shown(channel.id, reply, prompts)
            )
        log_answer(channel.id, prompt.tokens, answer, time.perf_counter() - started)

    def _remember_as_shown(self, channel_id: int, reply: Reply, prompts: PromptBuilder) -> None:
        """After an answer's last edits: if Discord refused one, the remembered answer
        becomes what the channel shows after all (nothing, if it was deleted)."""
        memory = self.memories.get(channel_id)
        if memory is None:
            return
        if reply.withdrawn:
            memory.forget({message.id for message in reply.posted})
            return
        if reply.shown_text == reply.final_text:
            return
        turn = prompts.turn("assistant", reply.shown_text)[0]
        turn = dataclasses.replace(
            turn, message_ids=tuple(m.id for m in reply.posted), replies_to=reply.message.id
        )
        memory.replace(reply.posted[0].id, turn)

    async def _read_files(self, pending: PendingTurn) -> Files:
        """What the message's attachments add to its turn (nothing without any)."""
        attachments = pending.message.attachments
        if not attachments:
            return Files()
        author = pending.message.author
        name = speaker_name(author.display_name, author.id)
        text_tokens = self.prompts.counter.count_message("user", pending.text, name)
        return await self.files.read(attachments, text_tokens=text_tokens)

    def _refuse_images(self) -> None:
        """The model takes no images: send none again, in any channel."""
        self.files.refuse_images()
        self.told_no_vision = True
        for memory in self.memories.values():
            memory.drop_images()

    def _reply(
        self, message: discord.Message, channel: discord.abc.Messageable | None = None
    ) -> Reply:
        """A `Reply` to `message` in `channel` (default: its own), with that channel's
        edit pacer and the permission warnings every reply shares."""
        where = channel if channel is not None else message.channel
        return Reply(message, self.pacers[where.id], where, warnings=self.permission_warnings)

    def _use(self, channel_id: int) -> None:
        """Mark the channel as active; channels idle beyond MAX_CACHED_CHANNELS give up
        their memory, queue, lock and pacer (memory is read back when next needed)."""
        self.active.use(channel_id)
        for idle in self.active.overflow(self._busy):
            self.memories.pop(idle, None)
            self.waiting.pop(idle, None)
            self.locks.pop(idle, None)
            self.pacers.pop(idle, None)
            self._in_use.pop(idle, None)
            self.arrivals.pop(idle, None)
            if self.summarizer is not None:
                self.summarizer.forget(idle)

    def _busy(self, channel_id: int) -> bool:
        """Whether the channel has a turn in progress or waiting."""
        locks = (self.locks.get(channel_id), self.arrivals.get(channel_id))
        return bool(self.waiting.get(channel_id)) or any(lock and lock.locked() for lock in locks)

    async def _memory(
        self, channel: discord.abc.Messageable, before: discord.Message | None
    ) -> ChannelMemory:
        """The channel's memory; the first time, rebuilt from its history before `before`,
        and with summaries on, from its stored summary: the history is then read back
        only after the newest message that summary covers.

        Call with the channel's lock held. A channel that cannot be read back, for
        whatever reason (Discord refuses, or sends what discord.py cannot parse), starts
        empty.
        """
        channel_id = getattr(channel, "id", 0)
        memory = self.memories.get(channel_id)
        if memory is not None:
            return memory
        prompts = self._in_use[channel_id][1] if channel_id in self._in_use else self.prompts
        budget = self._memory_budget(prompts)
        memory = self.memories[channel_id] = ChannelMemory(budget)
        assert self.client.user is not None
        after = None
        if self.summarizer is not None and (stored := await self.summarizer.stored(channel_id)):
            self.summarizer.restored(channel_id, memory, stored)
            after = stored.last_message_id
            log.info("channel %s: restored its summary (%d tokens)", channel_id, stored.tokens)
        try:
            turns = await read_back(
                channel,
                before=before,
                after=after,
                bot_id=self.client.user.id,
                prompts=prompts,
                budget=budget,
                remembered=self.audience.history_filter(),
                files=self.files,
            )
        except Exception as error:  # a refusal, or a payload discord.py could not parse
            log.warning(
                "channel %s: could not read its history, starting empty: %r", channel_id, error
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

    async def _answer_until_shutdown(
        self, reply: Reply, memory: ChannelMemory, note: str | None
    ) -> tuple[Answer, Prompt] | None:
        """`_answer` in a task that `close` can cut off while the model is still writing."""
        answering = asyncio.create_task(self._answer_or_close_off(reply, memory, note))
        self.answering[answering] = reply
        try:
            await asyncio.wait([answering])
        finally:
            del self.answering[answering]
        return answering.result()

    async def _answer_or_close_off(
        self, reply: Reply, memory: ChannelMemory, note: str | None
    ) -> tuple[Answer, Prompt] | None:
        """The answer; one cut off by `close` is closed off on Discord with
        SHUTDOWN_NOTE (or SHUTDOWN_NOTICE if nothing was shown) and not remembered."""
        try:
            effective, prompts = self._in_use[reply.channel.id]  # set by _profile
            try:
                return await self.answers.answer(reply, memory, prompts, effective, note)
            except asyncio.CancelledError:
                if not self.closing:
                    raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]  # ours, handled
            if reply.visible:  # part of the answer is showing: finish it with the note
                await reply.finish(SHUTDOWN_NOTE)
            else:  # nothing is showing: a silent notice, which read-back skips
                await reply.stop_painting()
                await reply.notice(SHUTDOWN_NOTICE)
            return None
        finally:
            # Tracked from this task, before it ends, so that `close` waits for them too.
            if reply.final_edits is not None:
                self.final_edits.add(reply.final_edits)
                reply.final_edits.add_done_callback(self.final_edits.discard)

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


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" + ("" if number == 1 else "s")
