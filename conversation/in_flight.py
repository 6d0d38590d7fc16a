"""Answers being written and their last edits: what shutdown finishes or closes off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from discord_side.replies import Reply
from text.markdown import subtext

log = logging.getLogger("chatbot")

SHUTDOWN_NOTE = subtext("⚠️ The bot is shutting down; this answer was cut off.")
SHUTDOWN_NOTICE = "The bot is shutting down, so I couldn't answer this. Please ask again later."
# On shutdown, answers in flight get this many seconds to finish before they are cut
# off (then their final edits may take a few seconds more: Discord is still there).
SHUTDOWN_GRACE = 2.0
SHUTDOWN_CLOSE_OFF = 6.0
# At shutdown, wait at most this long (seconds) for answers' last edits to land.
FINAL_EDITS_TIMEOUT = 10.0
# At most this many channels take a turn (remember, ask the model, post) at once; the
# others' messages wait in their queues as they arrived. A burst (a message in each of
# 1,000 channels at once: a busy server after an outage, or a raid) otherwise holds a
# prompt, a model request, an answer and a reply for each at once: ~24 MB more at its
# peak (bench figure 4, in waves: 178 MB, 155 MB with this bound). More would hardly
# answer sooner: Discord takes 50 requests a second from a bot, and each answer is one
# or more. A turn waiting for a person to approve a tool keeps its place meanwhile
# (TOOL_ANSWER_TIMEOUT at most). A channel takes its place under its own turn lock, so
# it never holds a place it cannot use.
TURNS_AT_ONCE = 32

Answered = TypeVar("Answered")


class InFlight:
    """The answers in flight (`answering`, each with its `Reply`), the last edits
    still under way outside the channels' turn locks (`final_edits`), and the places
    for turns in progress across channels (`turns`, TURNS_AT_ONCE)."""

    def __init__(self) -> None:
        self.answering: dict[asyncio.Task[object], Reply] = {}
        self.turns = asyncio.Semaphore(TURNS_AT_ONCE)  # read here, so a test can set it
        self.final_edits: set[asyncio.Task[None]] = set()
        self.closing = False

    async def run(
        self, reply: Reply, answer: Callable[[], Awaitable[Answered | None]]
    ) -> Answered | None:
        """`answer()` in a task that `close` can cut off while the model is still writing;
        one cut off is closed off on Discord with SHUTDOWN_NOTE (or SHUTDOWN_NOTICE if
        nothing was shown): None, and not remembered."""
        answering = asyncio.create_task(self._answer_or_close_off(reply, answer))
        self.answering[answering] = reply  # type: ignore[index]
        try:
            await asyncio.wait([answering])
        finally:
            del self.answering[answering]  # type: ignore[arg-type]
        return answering.result()

    async def _answer_or_close_off(
        self, reply: Reply, answer: Callable[[], Awaitable[Answered | None]]
    ) -> Answered | None:
        try:
            try:
                return await answer()
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

    async def close(self) -> None:
        """Let answers in flight finish for SHUTDOWN_GRACE seconds, close off the rest
        with SHUTDOWN_NOTE (waiting up to SHUTDOWN_CLOSE_OFF seconds for Discord), then
        wait for answers' last edits to land (at most FINAL_EDITS_TIMEOUT seconds).
        Discord must still be connected meanwhile. `closing` is set from the start."""
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
