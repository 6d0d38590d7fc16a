"""Per-channel conversation history (turns), kept within the prompt's token budget.

Each turn's token cost is counted once, when it is remembered; building a request
(conversation/prompts.py) then only adds cached numbers. A channel keeps no more than
can ever be sent: when a new turn pushes the history past the budget, the oldest turns
are dropped, in a step, down to LOW_MARK of the budget, so that the next several
requests only append to the one before and share its beginning: model servers cache a
prompt's beginning (OpenAI bills cached input tokens at a fraction of the price; vLLM
and llama.cpp skip evaluating it). Everything before the newest turns changes only at
such a step: images are let go of, and a channel's speaker labels switched off, there.

A user turn may carry images (`ImagePart`, from downloads.py): its message content is then
a list of parts, the text first, then one `image_url` part per image. An image costs
the prompt tokens OpenAI's vision rule gives it (attachments.image_tokens). Only the
newest IMAGE_TURNS turns with images keep them; older ones keep their text, which names
each image ("[image: name]"), so a channel full of screenshots still fits. Images of
older turns are let go of at a step, so between two steps more turns may keep theirs
(their tokens count in the budget all along).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]

_NAME_FORBIDDEN = re.compile(r"[^a-zA-Z0-9_-]+")
# How many of a channel's newest turns with images keep them (read-back re-fetches
# images for as many messages).
IMAGE_TURNS = 2
# What a step trims the history down to, as a share of the budget. A lower mark leaves
# more room for requests that only append (and so hit the model server's prompt cache),
# but sends less history on average (about (1 + LOW_MARK) / 2 of the budget). A
# simulation of OpenAI's caching rules (1,024-token minimum, 128-token increments) on a
# two-person channel (tests/test_memory_steps.py) gives, at 4,096 / 32,768 tokens:
#   mark 1.0 (one turn at a time): 8 % / 6 % of prompt tokens cached, 98 % of budget sent
#   mark 0.8: 73 % / 97 % cached, 88 % sent;  0.65: 81 % / 98 % cached, 80 % sent;
#   mark 0.5: 84 % / 98 % cached, 73 % sent.
# 0.65 costs about 0.24x (4,096) and 0.11x (32,768) of today's billed input per answer
# at a 90 % cache discount while keeping 80 % of the budget in view; below it the
# savings flatten and the model sees markedly less. A bench sets it to 1.0 to compare.
LOW_MARK = 0.65


@functools.lru_cache(maxsize=4096)  # one string per speaker, not one per turn
def speaker_name(display_name: str, user_id: int) -> str:
    """A name OpenAI accepts (`^[a-zA-Z0-9_-]{1,64}$`) that still reads like `display_name`.

    Accents are folded ("Zoë" -> "Zoe"), other characters become "_"; a name with
    nothing usable left becomes "user_<id>".
    """
    folded = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    cleaned = _NAME_FORBIDDEN.sub("_", folded).strip("_")[:64]
    return cleaned or f"user_{user_id}"


def image_placeholder(filename: str) -> str:
    """The line that stands for an image in a turn's text: "[image: name]"."""
    return f"[image: {filename}]"


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image in a turn: a data URL sent at `detail`, costing `tokens` prompt tokens."""

    filename: str
    url: str
    detail: Literal["low", "high", "auto"]
    tokens: int

    def as_part(self) -> dict[str, Any]:
        """The chat-completions `image_url` content part."""
        return {"type": "image_url", "image_url": {"url": self.url, "detail": self.detail}}


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation, with its token cost in a request.

    `content` is the turn's text; `images` are sent after it as content parts, and
    their tokens are part of `tokens`. `files` names the message's attachments that
    are part of the turn (text files, PDFs, images), for /memory.
    `message_ids`: the Discord messages it came from (a user's message; every message
    of a split answer), so a deletion or an edit on Discord can find it.
    `label_tokens`: what saying who spoke adds (a user turn with a name), see `labelled`.
    """

    role: Role
    content: str
    name: str | None
    tokens: int
    images: tuple[ImagePart, ...] = ()
    files: tuple[str, ...] = ()
    message_ids: tuple[int, ...] = ()
    label_tokens: int = 0
    replies_to: int | None = None  # an answer: the id of the message it answers

    @property
    def labelled(self) -> str:
        """The content saying who spoke ("Alice: hi"), for channels with several speakers:
        chat templates (Ollama's, llama.cpp's ChatML) drop `name`."""
        return f"{self.name}: {self.content}" if self.label_tokens else self.content

    def as_message(self, labelled: bool = False) -> dict[str, Any]:
        """The turn as a chat-completions message (content parts when it has images);
        `labelled`: the content says who spoke."""
        text = self.labelled if labelled else self.content
        content: str | list[dict[str, Any]] = text
        if self.images:
            content = [{"type": "text", "text": text}]
            content += [image.as_part() for image in self.images]
        message: dict[str, Any] = {"role": self.role, "content": content}
        if self.name is not None:
            message["name"] = self.name
        return message

    def without_images(self) -> Turn:
        """The same turn with its images left out (its text still names them)."""
        if not self.images:
            return self
        image_tokens = sum(image.tokens for image in self.images)
        return dataclasses.replace(self, tokens=self.tokens - image_tokens, images=())


class ChannelMemory:
    """One channel's turns, oldest first, never more tokens than `budget`, and
    optionally a summary of the turns that no longer fit (kept outside the budget).

    `tokens` counts each turn as it is sent: with its speaker label while the channel is
    `labelled` (more than one person spoke in the remembered turns; once on, it stays on
    until a step or a reset leaves a single speaker). When a turn pushes `tokens` past
    `budget`, a step (`_make_room`) lets go of the images of all but the newest
    `image_turns` turns that have them and drops the oldest turns down to
    `low_mark` x `budget`, or to the `unsent` newest turns if they take more (within the
    budget): a backlog answered together must reach the model. `prompt_start`: the
    oldest turn the last request built from this memory sent when a smaller, learnt
    window left older turns out (conversation/prompts.py keeps it, so such requests
    also move in steps)."""

    def __init__(
        self, budget: int, image_turns: int = IMAGE_TURNS, low_mark: float | None = None
    ) -> None:
        self.budget = budget
        self.image_turns = image_turns
        # Read at construction, so a bench can compare with LOW_MARK = 1.0.
        self.low_mark = LOW_MARK if low_mark is None else low_mark
        # A list, not a deque: an empty deque is ~0.6 KB, and thousands of channels
        # hold one each; turns leave from the front a few at a time.
        self._turns: list[Turn] = []
        self.tokens = 0
        self.labelled = False
        self.summary: Turn | None = None
        self.prompt_start: Turn | None = None
        # How many of the newest turns no request has carried yet (see `_make_room`).
        self.unsent = 0

    def cost(self, turn: Turn) -> int:
        """`turn`'s tokens in a request from this memory (its label included when on)."""
        return turn.tokens + (turn.label_tokens if self.labelled else 0)

    def remember(self, turn: Turn) -> list[Turn]:
        """Add `turn` as the newest; when the history outgrows the budget, take a step:
        drop and return the oldest turns, down to the low mark (see the class).

        The newest turn always stays (`PromptBuilder.turn` makes every turn fit alone).
        """
        self._turns.append(turn)
        self.unsent += 1
        self.tokens += self.cost(turn)
        if not self.labelled and turn.role == "user" and turn.name and self._speakers() > 1:
            self._label(True)
        return self._make_room()

    def fill(self, turns: Iterable[Turn]) -> list[Turn]:
        """Remember `turns` (oldest first; a channel's history read back), keeping the
        newest that fit the whole budget: no step, so a read-back fills the budget.
        The turns dropped, oldest first."""
        low_mark, self.low_mark = self.low_mark, 1.0
        try:
            return [gone for turn in turns for gone in self.remember(turn)]
        finally:
            self.low_mark = low_mark

    def sent(self) -> None:
        """A request now carries every remembered turn (conversation/prompts.py)."""
        self.unsent = 0

    def unsent_tokens(self) -> int:
        """The tokens of the newest turns no request has carried yet."""
        return sum(self.cost(turn) for turn in self._turns[len(self._turns) - self.unsent :])

    def _speakers(self) -> int:
        return len({t.name for t in self._turns if t.role == "user" and t.name})

    def _label(self, on: bool) -> None:
        self.labelled = on
        labels = sum(turn.label_tokens for turn in self._turns)
        self.tokens += labels if on else -labels

    def _make_room(self) -> list[Turn]:
        """When the history is over the budget: one step (see the class), the newest
        turn aside (it always stays); the turns dropped, oldest first."""
        if self.tokens <= self.budget:
            return []
        self.drop_images(keep=self.image_turns)
        # Turns no request has carried yet (a backlog answered in one request, sized to
        # fit the budget) stay, as far as the budget allows.
        mark = min(max(int(self.budget * self.low_mark), self.unsent_tokens()), self.budget)
        cut = 0
        while self.tokens > mark and cut < len(self._turns) - 1:
            self.tokens -= self.cost(self._turns[cut])
            cut += 1
        dropped = self._turns[:cut]
        del self._turns[:cut]
        self.unsent = min(self.unsent, len(self._turns))
        if self.labelled and self._speakers() <= 1:
            self._label(False)
        return dropped

    def drop_images(self, keep: int = 0) -> None:
        """Let go of the images of all but the newest `keep` turns that have them
        (0: all, e.g. once the model turned out to take no images)."""
        with_images = [i for i, turn in enumerate(self._turns) if turn.images]
        for index in with_images[: max(len(with_images) - keep, 0)]:
            old = self._turns[index]
            self._turns[index] = old.without_images()
            self.tokens -= old.tokens - self._turns[index].tokens

    @property
    def attachments(self) -> tuple[int, int]:
        """(attachments read into the remembered turns, images still sent with them)."""
        files = sum(len(turn.files) for turn in self._turns)
        return files, sum(len(turn.images) for turn in self._turns)

    def forget(self, message_ids: Collection[int]) -> list[Turn]:
        """Drop every turn that came from any of `message_ids`, and the answers to
        them; the turns dropped.

        An answer goes whole when any of its messages is deleted, and with the message
        it answers (it may well repeat what was deleted)."""
        gone = set(message_ids)

        def deleted(turn: Turn) -> bool:
            return not gone.isdisjoint(turn.message_ids) or turn.replies_to in gone

        kept = [t for t in self._turns if not deleted(t)]
        forgotten = [t for t in self._turns if deleted(t)]
        self._turns = kept
        self.unsent = min(self.unsent, len(kept))
        self.tokens -= sum(self.cost(t) for t in forgotten)
        return forgotten

    def replace(self, message_id: int, turn: Turn) -> list[Turn] | None:
        """Put `turn` in place of the turn that came from `message_id` (an edited
        message); None if no turn did, else the oldest turns dropped because the
        history no longer fits the budget, as `remember` drops them (which may be
        `turn` itself when it is the oldest; the newest turn always stays)."""
        for index, old in enumerate(self._turns):
            if message_id in old.message_ids:
                self._turns[index] = turn
                self.tokens += self.cost(turn) - self.cost(old)
                break
        else:
            return None
        return self._make_room()

    def holds(self, message_id: int) -> bool:
        """Whether a remembered turn came from Discord message `message_id`."""
        return any(message_id in turn.message_ids for turn in self._turns)

    def __iter__(self) -> Iterator[Turn]:
        return iter(self._turns)

    def __len__(self) -> int:
        return len(self._turns)
