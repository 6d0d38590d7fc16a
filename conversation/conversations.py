"""Every channel's conversation: routing each message to its channel's `Conversation`
(channel.py), and its turns, one at a time, in arrival order.

A channel that falls behind answers its backlog together, in as few calls as fit the
budget. Each channel's settings (model, persona, streaming, reply mode) come from
`ChannelSettings`; the answer itself is answers.py's (`Answers`), shown through one
`Reply` (replies.py).

The turn remembered for an answer is what the channel shows (`Reply.final_text`,
notes included: answer_turns.py), which is also what read-back rebuilds after a
restart; the answer to a message that is deleted goes with it.

A message's attachments (downloads.py), the message it replies to and the messages it
forwards (references.py) become part of its user turn; they are fetched as it arrives,
before the turn lock (incoming.py), and its turn waits for those of the messages before
it. What was skipped or shortened is said in the answer's note. A server that refuses
images gets the request again without them, and no images for the rest of the process.

A channel's turn lock covers what must happen in order: remembering the turns, asking
the model, posting the answer's messages. The last edits of an answer's messages
(`Reply.final_edits`) run outside it (in_flight.py), and `close` waits for them. Only
the MAX_CACHED_CHANNELS most recently active channels keep their `Conversation`; a
channel idle beyond that gives it up and is read back from Discord when it speaks again
(a channel with a turn in progress or waiting, or its summary being written, is never
given up).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import discord

from config import Settings
from conversation.answer_turns import AnswerTurns
from conversation.answers import Answers, log_answer
from conversation.audience import Audience, Verdict
from conversation.channel import Conversation, PendingTurn
from conversation.channel_settings import Place
from conversation.in_flight import InFlight
from conversation.incoming import Carried, Prepared, full_text, is_ready, prepare, remember_batch
from conversation.prompts import Prompt, PromptBuilder
from conversation.recall import MemoryFacts, Recall
from conversation.recency import RecentlyUsed
from conversation.services import Services
from conversation.summaries import SummaryState
from discord_side.downloads import AttachmentReader
from discord_side.pacing import ChannelPacer
from discord_side.permissions import PermissionNotes
from discord_side.replies import Reply
from memory import ChannelMemory, speaker_name
from model.client import Answer
from store import StoreError
from text.markdown import subtext
from text.tokens import REPLY_PRIMING

if TYPE_CHECKING:
    from collections.abc import Callable

    from discord.abc import MessageableChannel

    from operations.claims import Claims

log = logging.getLogger("chatbot")

NO_VISION_NOTE = subtext("This model can't see pictures, so I answered from the text alone.")
# More waiting messages than this in one channel are answered together, in one call.
COALESCE_AFTER = 3


class Conversations:
    """Every channel's conversation, at most MAX_CACHED_CHANNELS of them idle at once."""

    def __init__(
        self, settings: Settings, services: Services, audience: Audience, client: discord.Client
    ) -> None:
        """`client`'s user is known once logged in, before any message arrives."""
        self.settings = settings
        self.services = services
        self.prompts = services.prompts.default
        self.audience = audience
        self.files = AttachmentReader(settings, self.prompts.counter, self.prompts.history_budget)
        self.recall = Recall(settings, services, audience, client, self.files)
        self.told_no_vision = False  # users are told once per process that images are unseen
        self.carried = Carried()  # what remembered messages carry, kept for their edits
        self.in_flight = InFlight()
        self.answers = Answers(settings, services.model, services.usage, audience.limits)
        self.make_pacer: Callable[[], ChannelPacer] = ChannelPacer  # one per channel
        # Told of each answer remembered, once final: its messages and their final texts
        # (the knowledge index keeps them: knowledge/keeper.py).
        self.answered: Callable[[list[discord.Message], list[str]], None] = lambda *_: None
        self.channels: dict[int, Conversation] = {}  # by channel id
        # The channels above, most recently active last; the rest give their state up.
        self.active: RecentlyUsed[int] = RecentlyUsed(settings.max_cached_channels)
        self.claims: Claims | None = None  # which messages are this process's (bot.py)
        self.answer_turns = AnswerTurns(self.recall, self.channels)

    async def receive(
        self,
        message: discord.Message,
        text: str,
        verdict: Verdict,
        channel: MessageableChannel | None = None,
    ) -> None:
        """Take `message` (its text `text`) into the conversation of `channel` (default:
        its own channel; a thread started from it in thread mode) as `verdict` says:
        post its notices, remember it, and answer it in its turn. Nothing new is
        taken once the bot is shutting down."""
        if self.in_flight.closing:
            return
        if not verdict.remember:
            for notice in verdict.notices:
                await self._reply(message).notice(notice)
            return
        # Queue before the first await, so the queue is in arrival order; whichever
        # handler holds the channel's turn lock works from the head of the queue.
        channel = channel if channel is not None else message.channel
        conversation = self._conversation(channel.id)
        ready = asyncio.ensure_future(self._prepare(message, text, channel))
        conversation.waiting.append(PendingTurn(message, text, verdict.answer, channel, ready))
        # Downloads and fetches run outside the lock; the turn waits for those of the
        # messages before it too, so the head of the queue is ready when it is taken.
        ahead = [p.ready for p in conversation.waiting if p.ready is not None]
        for notice in verdict.notices:
            await self._reply(message).notice(notice)
        await asyncio.wait(ahead)
        async with conversation.turns:
            if not conversation.waiting or self.in_flight.closing:
                return  # answered together with others
            await self._take_turns(conversation, self._next_batch(conversation))

    async def _prepare(
        self, message: discord.Message, text: str, channel: MessageableChannel
    ) -> Prepared:
        """What `message` points at and carries (incoming.prepare), its pictures judged
        and costed by the model of `channel` (its /settings), not OPENAI_MODEL."""
        effective = await self.services.channel_settings.effective(Place.of(channel))
        files = self.files.viewing(effective.model)
        prompts = self.prompts
        return await prepare(message, text, files, prompts.counter, prompts.history_budget)

    def _next_batch(self, conversation: Conversation) -> list[PendingTurn]:
        """Take the messages to answer in the channel's next turn from the head of its
        queue.

        Normally the first one. A channel falling behind (more than COALESCE_AFTER
        waiting) answers its backlog together, but never more of it than a request in
        that channel can carry (`_batch_room`), so every message is in the request
        that answers it; the rest waits for the next turn, in order.
        """
        waiting = conversation.waiting
        if len(waiting) <= COALESCE_AFTER:
            return [waiting.pop(0)]
        prompts, room = self._batch_room(conversation)
        batch = [waiting.pop(0)]
        tokens = self._estimate(batch[0], prompts)
        while (
            waiting
            and is_ready(waiting[0])  # a message still downloading waits for its own turn
            and tokens + (cost := self._estimate(waiting[0], prompts)) <= room
        ):
            batch.append(waiting.pop(0))
            tokens += cost
        return batch

    def _batch_room(self, conversation: Conversation) -> tuple[PromptBuilder, int]:
        """The channel's request builder (its persona and model, as of its last turn)
        and the tokens its turns may use in one request: the memory budget, or less
        where the model's server was learnt to take less (`ContextWindow`)."""
        model, prompts = self.settings.openai_model, self.prompts
        if conversation.in_use is not None:
            effective, prompts = conversation.in_use
            model = effective.model
        window = self.answers.window(model, prompts).budget
        room = window - prompts.system.tokens - REPLY_PRIMING - self.recall.summary_tokens
        return prompts, min(self.recall.budget(prompts), room)

    def _estimate(self, pending: PendingTurn, prompts: PromptBuilder) -> int:
        """The most tokens `pending`'s turn will cost in a request (as `_take_turns`
        makes it), saying who spoke included: a backlog has several speakers."""
        author = pending.message.author
        name = speaker_name(author.display_name, author.id)
        turn = prompts.turn("user", full_text(pending), name)[0]
        return turn.tokens + turn.label_tokens

    def forget(self, channel_id: int, message_ids: set[int]) -> None:
        """Deleted messages: take them out of the channel's waiting messages and its
        memory (an answer goes whole if any of its messages is deleted). A channel
        whose memory is not loaded has nothing to forget: read-back sees the truth."""
        conversation = self.channels.get(channel_id)
        if conversation is None:
            return
        waiting = conversation.waiting
        waiting[:] = [p for p in waiting if p.message.id not in message_ids]
        memory = conversation.memory
        if memory is not None and (forgotten := memory.forget(message_ids)):
            log.info("channel %s: forgot %d deleted turn(s)", channel_id, len(forgotten))

    def replace(self, message: discord.Message, text: str) -> None:
        """An edited message: its remembered (or waiting) text becomes `text`,
        counted again as a new turn would be, with the quotes, forwards and files it
        carries kept (`Carried`); an edit that leaves no text forgets it."""
        channel_id = message.channel.id
        if not text:
            self.forget(channel_id, {message.id})
            return
        conversation = self.channels.get(channel_id)
        if conversation is None:
            return
        waiting = conversation.waiting
        for index, pending in enumerate(waiting):
            if pending.message.id == message.id:
                waiting[index] = dataclasses.replace(pending, text=text)
        memory = conversation.memory
        if memory is None:
            return
        name = speaker_name(message.author.display_name, message.author.id)
        text, images, files = self.carried.edited(message.id, text, memory)
        turn, _ = self.prompts.turn("user", text, name, images, files)
        dropped = memory.replace(message.id, dataclasses.replace(turn, message_ids=(message.id,)))
        if dropped is not None:
            log.info("channel %s: a remembered message was edited", channel_id)
            self.recall.summarise(conversation, memory, dropped)

    def reset(self, channel_id: int) -> None:
        """Forget the channel's conversation. The caller posts the reset message, the
        boundary read-back never crosses (readback.RESET_MESSAGE)."""
        # A new, empty memory: an answer in progress finishes into the old one, unseen.
        self.recall.reset(self._conversation(channel_id))

    def forget_channel(self, channel_id: int) -> None:
        """Drop a deleted channel's (a thread's) memory; an answer in progress ends
        quietly, as Discord refuses its posts."""
        conversation = self.channels.get(channel_id)
        if conversation is None:
            # Not busy when given up, so no summary of it is being written: the stored
            # one goes, after the channel's store writes in progress.
            self.recall.forget(SummaryState(channel_id))
            return
        conversation.memory = None
        conversation.permission_notes = PermissionNotes(channel_id)
        self.recall.forget(conversation.summary)

    def permission_notes(self, channel_id: int) -> PermissionNotes:
        """What the bot was found unable to do in the channel (kept with its conversation)."""
        return self._conversation(channel_id).permission_notes

    async def report(self, channel: MessageableChannel) -> MemoryFacts:
        """What the bot remembers in `channel`, for /memory."""
        conversation = self._conversation(channel.id)
        async with conversation.turns:
            waiting = conversation.waiting
            effective, prompts = await self.recall.profile(channel, conversation)
            memory = await self.recall.memory(
                channel, conversation, before=waiting[0].message if waiting else None
            )
        window = self.answers.window(effective.model, prompts)
        files, images = memory.attachments
        return MemoryFacts(
            messages=len(memory),
            attachments=files,
            images=images,
            prompt_tokens=prompts.prompt(memory, window.budget, sending=False).tokens,
            budget=window.budget,
            learnt=window.learnt,
            summary_tokens=memory.summary.tokens if memory.summary is not None else None,
            summarizing=self.recall.summarizer is not None,
            model=effective.model,
            streaming=effective.streaming,
            reply_to=effective.reply_to,
            counted=window.describe(),
        )

    async def close(self) -> None:
        """Shut down: take no new messages, finish or close off the answers in flight
        and wait for their last edits (`InFlight.close`), then stop background
        summaries. Discord must still be connected meanwhile. Only the first call does
        anything."""
        if self.in_flight.closing:
            return
        await self.in_flight.close()
        await self.recall.close()

    async def _take_turns(self, conversation: Conversation, batch: list[PendingTurn]) -> None:
        """Remember the messages of `batch`, in order, and answer the newest one to be
        answered (if any), with all of them in the conversation."""
        channel = batch[0].channel
        _, prompts = await self.recall.profile(channel, conversation)
        memory = await self.recall.memory(channel, conversation, before=batch[0].message)
        has_turn, shortened, notes = await self._remember_batch(
            conversation, memory, prompts, batch
        )
        to_answer = [pending for pending in batch if pending.answer]
        if not to_answer:
            return
        message = to_answer[-1].message
        if len(batch) > 1:
            log.info("channel %s: answering %d waiting messages at once", channel.id, len(batch))
        if not has_turn and to_answer[-1] is batch[-1]:
            # Nothing of the message could be read: say why instead of staying silent.
            if notes:
                await self._reply(message, channel).notice("\n".join(notes))
            return

        note_lines = [shortened] if shortened and to_answer[-1] is batch[-1] else []
        note = "\n".join(note_lines + notes) or None
        started = time.perf_counter()
        reply = self._reply(message, channel)
        answered = await self._answer_until_shutdown(reply, memory, note)
        shown = answered is not None and reply.visible and not reply.withdrawn
        if metrics := self.answers.metrics:  # with HEALTH_PORT: each message it answers
            metrics.message("answered" if shown else "failed", len(to_answer))
        if answered is None or not shown:
            return
        if not memory.holds(message.id):
            # The question was deleted while it was being answered: its answer, which
            # may repeat it, is not remembered either.
            log.info("channel %s: the question was deleted; its answer is forgotten", channel.id)
            return
        answer, prompt = answered
        self.answer_turns.remember(conversation, memory, reply, prompts)
        self.answered(reply.posted, reply.final)
        log_answer(channel.id, prompt.tokens, answer, time.perf_counter() - started)

    async def _remember_batch(
        self,
        conversation: Conversation,
        memory: ChannelMemory,
        prompts: PromptBuilder,
        batch: list[PendingTurn],
    ) -> tuple[bool, bool, list[str]]:
        """Remember each message of `batch` (incoming.py's `remember_batch`). Returns
        whether the last message made a turn, whether that turn was shortened, and the
        notes for the answer (attachments skipped or unseen)."""
        done = await remember_batch(
            batch,
            memory,
            prompts,
            lambda turn: self.recall.remember(conversation, memory, turn),
            tell_no_vision=not self.told_no_vision,
            carried=self.carried,
        )
        self.told_no_vision |= done.unseen_images  # set only by messages to answer
        return done.has_turn, done.shortened, done.notes

    def _refuse_images(self, model: str) -> str:
        """`model` takes no images: send it none again, in any channel. Returns the note
        that goes first under the answer asked again without them."""
        self.files.viewing(model).refuse_images()
        self.told_no_vision = True
        for conversation in self.channels.values():
            if conversation.memory is not None:
                conversation.memory.drop_images()
        return NO_VISION_NOTE

    def _reply(self, message: discord.Message, channel: MessageableChannel | None = None) -> Reply:
        """A `Reply` to `message` in `channel` (default: its own), with that channel's
        edit pacer and permission notes, which every reply there shares."""
        where = channel if channel is not None else message.channel
        conversation = self._conversation(where.id)
        notes, metrics = conversation.permission_notes, self.answers.metrics
        return Reply(message, conversation.pacer, where, notes=notes, metrics=metrics)

    def _conversation(self, channel_id: int) -> Conversation:
        """The channel's conversation (a new one if it has none), marked as the most
        recently active; channels idle beyond MAX_CACHED_CHANNELS give theirs up."""
        conversation = self.channels.get(channel_id)
        if conversation is None:
            conversation = self.channels[channel_id] = Conversation(channel_id, self.make_pacer())
        self.active.use(channel_id)
        # A channel given up is read back, its stored summary restored, when next used.
        for idle in self.active.overflow(lambda channel_id: self.channels[channel_id].busy):
            del self.channels[idle]
        return conversation

    async def _answer_until_shutdown(
        self, reply: Reply, memory: ChannelMemory, note: str | None
    ) -> tuple[Answer, Prompt] | None:
        """The answer, in a task that `close` can cut off while the model is still
        writing (`InFlight.run`)."""
        # Set by Recall.profile; the channel is busy, so its conversation is kept.
        effective, prompts = self.channels[reply.channel.id].in_use  # type: ignore[misc]
        tools = self.answers.tools_for(reply, effective)  # toolbox, approver (tool_rounds.py)
        return await self.in_flight.run(
            reply,
            lambda: self.answers.answer(
                reply, memory, prompts, effective, note, refuse_images=self._refuse_images, **tools
            ),
        )

    # --- Settings per channel and stored usage (channel_settings.py, usage.py) ---------

    async def judge(self, message: discord.Message, me: discord.ClientUser) -> Verdict:
        """The audience's verdict on `message` with its channel's reply-to setting and
        its author's daily allowance as stored.

        Messages of one channel are judged in arrival order (a lock taken before the
        first await), so `receive`, called right after, queues them in that order.
        """
        async with self._conversation(message.channel.id).arrivals:
            place = Place.of(message.channel)
            effective = await self.services.channel_settings.effective(place)
            await self.load_allowance(message.author.id)
            verdict = self.audience.judge(message, me, effective.reply_to)
            return await self.claims.message(message, verdict) if self.claims else verdict

    async def load_allowance(self, user_id: int) -> None:
        """Bring the user's tokens today from the store (every process's answers) into
        the daily allowance; keeps the in-memory count if the database fails."""
        limits = self.audience.limits
        if not limits.daily_tokens or user_id in limits.admins:
            return
        now = discord.utils.utcnow()
        try:
            spent = await self.services.usage.tokens_on_day(user_id, now.date())
        except StoreError as error:
            log.warning("usage: daily allowance counted in memory: %s", error)
            return
        limits.set_usage(user_id, max(spent, limits.tokens_spent(user_id, now)), now)
