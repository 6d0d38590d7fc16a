"""An answer's turn in its channel's memory: remembered as the channel will show it,
and corrected once its last edits land (`AnswerTurns`).

The last edits of an answer's messages run outside the channel's turn lock
(in_flight.py), so the turn is remembered as `Reply.final_text` at once; if Discord
then refuses an edit, the turn becomes what the channel shows after all, and an answer
whose messages were withdrawn is forgotten.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conversation.channel import Conversation
    from conversation.prompts import PromptBuilder
    from conversation.recall import Recall
    from discord_side.replies import Reply
    from memory import ChannelMemory, Turn


def answer_turn(prompts: PromptBuilder, text: str, reply: Reply) -> Turn:
    """The assistant turn showing `text` for `reply`'s posted messages."""
    turn = prompts.turn("assistant", text)[0]
    return dataclasses.replace(
        turn, message_ids=tuple(m.id for m in reply.posted), replies_to=reply.message.id
    )


class AnswerTurns:
    """Remembers answers in the conversations of `channels` (by channel id, the one dict
    `Conversations` keeps) through `recall`."""

    def __init__(self, recall: Recall, channels: dict[int, Conversation]) -> None:
        self.recall = recall
        self.channels = channels

    def remember(
        self,
        conversation: Conversation,
        memory: ChannelMemory,
        reply: Reply,
        prompts: PromptBuilder,
    ) -> None:
        """Remember the answer as the channel will show it once the last edits land
        (they run outside the lock); corrected if Discord refuses one."""
        self.recall.remember(conversation, memory, answer_turn(prompts, reply.final_text, reply))
        if reply.final_edits is not None:
            reply.final_edits.add_done_callback(
                lambda _: self._as_shown(conversation.id, reply, prompts)
            )

    def _as_shown(self, channel_id: int, reply: Reply, prompts: PromptBuilder) -> None:
        """After an answer's last edits: if Discord refused one, the remembered answer
        becomes what the channel shows after all (nothing, if it was deleted)."""
        conversation = self.channels.get(channel_id)
        memory = conversation.memory if conversation is not None else None
        if memory is None:
            return
        if reply.withdrawn:
            memory.forget({message.id for message in reply.posted})
            return
        if reply.shown_text == reply.final_text:
            return
        memory.replace(reply.posted[0].id, answer_turn(prompts, reply.shown_text, reply))
