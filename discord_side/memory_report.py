"""/memory's answer: what the bot remembers in a channel, in the user's words."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conversation.recall import MemoryFacts

ANSWERING = {  # whom each reply mode answers
    "all": "every message",
    "thread": "every message, each new question in a thread of its own",
    "mention-thread": "mentions and replies, each in a thread of its own",
}


def memory_report(facts: MemoryFacts) -> str:
    """/memory's answer (Discord markdown)."""
    if facts.summary_tokens is not None:
        older = f"older messages are summarised ({facts.summary_tokens} tokens)"
    elif facts.summarizing:
        older = "older messages will be summarised when they no longer fit"
    else:
        older = "older messages are forgotten when they no longer fit"
    mode = "streamed" if facts.streaming else "posted when complete"
    who = ANSWERING.get(facts.reply_to, "mentions, replies and DMs")
    learnt = " (learnt from the model service)" if facts.learnt else ""
    attached = f" ({_count(facts.attachments, 'attachment')}, {_count(facts.images, 'image')} sent)"
    return (
        f"**Memory in this channel:** {facts.messages} messages{attached}, "
        f"{facts.prompt_tokens:,} of {facts.budget:,} prompt tokens used{learnt}; {older}.\n"
        f"**Model:** {facts.model}, answers {mode}, answering {who}; "
        f"token counts {facts.counted}."
    )


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" + ("" if number == 1 else "s")
