"""Per-channel conversation history, kept within the prompt's token budget.

Each turn's token cost is counted once, when it is remembered; building a request then
only adds cached numbers. A channel keeps no more than can ever be sent: when a new
turn pushes the history past the budget, the oldest turns are dropped.

A user turn may carry images (`ImagePart`, from files.py): its message content is then
a list of parts, the text first, then one `image_url` part per image. An image costs
the prompt tokens OpenAI's vision rule gives it (attachments.image_tokens). Only the
newest IMAGE_TURNS turns with images keep them; older ones keep their text, which names
each image ("[image: name]"), so a channel full of screenshots still fits.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from text.control import neutralise_control_text
from text.tokens import REPLY_PRIMING, TokenCounter

Role = Literal["system", "user", "assistant"]

_NAME_FORBIDDEN = re.compile(r"[^a-zA-Z0-9_-]+")
# The least room a request must leave for the conversation after the system prompt.
MIN_HISTORY_BUDGET = 32
SUMMARY_HEADING = "Summary of the earlier conversation in this channel:"
# How many of a channel's newest turns with images keep them (read-back re-fetches
# images for as many messages).
IMAGE_TURNS = 2


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


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request's messages and their total prompt tokens as the API counts them."""

    messages: list[dict[str, Any]]
    tokens: int


class PromptBuilder:
    """Makes turns that fit the budget and assembles requests from a channel's history."""

    def __init__(self, counter: TokenCounter, system_prompt: str, prompt_budget: int) -> None:
        """Raises ValueError (naming SYSTEM_PROMPT, for the user) if the system prompt
        leaves fewer than MIN_HISTORY_BUDGET tokens of `prompt_budget`."""
        self.counter = counter
        self.prompt_budget = prompt_budget
        self.system = self._turn("system", system_prompt, None)
        # Tokens the history may use: the budget less the system prompt and reply priming.
        self.history_budget = prompt_budget - self.system.tokens - REPLY_PRIMING
        if self.history_budget < MIN_HISTORY_BUDGET:
            raise ValueError(
                f"SYSTEM_PROMPT is {self.system.tokens:,} tokens, which leaves "
                f"{max(self.history_budget, 0):,} of the {prompt_budget:,}-token prompt budget "
                f"(MAX_CONTEXT_TOKENS - MAX_REPLY_TOKENS) for the conversation; at least "
                f"{MIN_HISTORY_BUDGET} are needed: shorten it or raise MAX_CONTEXT_TOKENS."
            )

    def turn(
        self,
        role: Role,
        content: str,
        name: str | None = None,
        images: tuple[ImagePart, ...] = (),
        files: tuple[str, ...] = (),
    ) -> tuple[Turn, bool]:
        """A turn for `content` (and `images`), its text shortened if the turn alone
        would not fit in a request. Images that alone leave no room are left out.

        Returns the turn and whether it was shortened. A user's text is sent with its
        chat-template control markers neutralised (control_text.py).
        """
        if role == "user":
            content = neutralise_control_text(content)
        turn = self._turn(role, content, name, images, files)
        if turn.tokens <= self.history_budget:
            return turn, False
        if turn.tokens - turn.without_images().tokens >= self.history_budget:
            turn, images = turn.without_images(), ()
        overhead = turn.tokens - self.counter.count_text(content)
        shortened = self.counter.truncate(content, self.history_budget - overhead)
        return self._turn(role, shortened, name, images, files), True

    def prompt(self, history: ChannelMemory, budget: int | None = None) -> Prompt:
        """The request for `history` within `budget` prompt tokens (default: the
        configured prompt budget).

        One system message: the system prompt, then the summary of older turns if there
        is one (chat templates keep only the first system message). Then the newest
        turns that fit, oldest first; the newest is shortened if it alone does not fit.
        Turns left out stay in `history`. When the user turns come from more than one
        speaker, each one's content starts with who spoke (`Turn.labelled`).
        """
        budget = self.prompt_budget if budget is None else budget
        head = self.system
        if history.summary is not None:
            content = f"{self.system.content}\n\n{history.summary.content}"
            head = self._turn("system", content, None)
        turns = list(history)
        speakers = {turn.name for turn in turns if turn.role == "user" and turn.name}
        labelled = len(speakers) > 1
        room = budget - head.tokens - REPLY_PRIMING
        kept: list[Turn] = []
        used = 0
        for turn in reversed(turns):
            cost = turn.tokens + (turn.label_tokens if labelled else 0)
            if kept and used + cost > room:
                break
            if not kept and cost > room:
                turn = self._shortened(turn, room - (turn.label_tokens if labelled else 0))
                cost = turn.tokens + (turn.label_tokens if labelled else 0)
            kept.append(turn)
            used += cost
        kept.reverse()
        messages = [head.as_message()] + [t.as_message(labelled) for t in kept]
        return Prompt(messages, head.tokens + used + REPLY_PRIMING)

    def summary(self, text: str, max_tokens: int) -> Turn:
        """The turn carrying a summary of dropped turns, at most `max_tokens`."""
        turn, _ = self.turn("system", f"{SUMMARY_HEADING}\n{text}")
        if turn.tokens > max_tokens:
            overhead = turn.tokens - self.counter.count_text(turn.content)
            turn = self._turn(
                "system", self.counter.truncate(turn.content, max_tokens - overhead), None
            )
        return turn

    def _turn(
        self,
        role: Role,
        content: str,
        name: str | None,
        images: tuple[ImagePart, ...] = (),
        files: tuple[str, ...] = (),
    ) -> Turn:
        tokens = self.counter.count_message(role, content, name)
        label_tokens = 0
        if role == "user" and name:
            label = self.counter.count_message(role, f"{name}: {content}", name) - tokens
            label_tokens = max(label, 1)  # nonzero marks a turn that can be labelled
        tokens += sum(image.tokens for image in images)
        return Turn(
            role, content, name, tokens, images=images, files=files, label_tokens=label_tokens
        )

    def _shortened(self, turn: Turn, max_tokens: int) -> Turn:
        """`turn` with its content cut to fit `max_tokens` tokens as a message."""
        overhead = turn.tokens - self.counter.count_text(turn.content)
        content = self.counter.truncate(turn.content, max(max_tokens - overhead, 0))
        return self._turn(turn.role, content, turn.name, turn.images, turn.files)


class ChannelMemory:
    """One channel's turns, oldest first, never more tokens than `budget`, and
    optionally a summary of the turns that no longer fit (kept outside the budget).

    Images stay in the newest `image_turns` turns that have them (see `remember`)."""

    def __init__(self, budget: int, image_turns: int = IMAGE_TURNS) -> None:
        self.budget = budget
        self.image_turns = image_turns
        # A list, not a deque: an empty deque is ~0.6 KB, and thousands of channels
        # hold one each; turns leave from the front a few at a time.
        self._turns: list[Turn] = []
        self.tokens = 0
        self.summary: Turn | None = None

    def remember(self, turn: Turn) -> list[Turn]:
        """Add `turn` as the newest; drop and return the oldest turns that no longer fit.

        The newest turn always stays (`PromptBuilder.turn` makes every turn fit alone).
        Images of turns older than the newest `image_turns` with images are let go first.
        """
        self._turns.append(turn)
        self.tokens += turn.tokens
        if turn.images:
            self.drop_images(keep=self.image_turns)
        return self._make_room()

    def _make_room(self) -> list[Turn]:
        """Drop the oldest turns until the history fits the budget, the newest turn
        aside (it always stays); the turns dropped, oldest first."""
        cut = 0
        while self.tokens > self.budget and cut < len(self._turns) - 1:
            self.tokens -= self._turns[cut].tokens
            cut += 1
        dropped = self._turns[:cut]
        del self._turns[:cut]
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
        self.tokens -= sum(t.tokens for t in forgotten)
        return forgotten

    def replace(self, message_id: int, turn: Turn) -> list[Turn] | None:
        """Put `turn` in place of the turn that came from `message_id` (an edited
        message); None if no turn did, else the oldest turns dropped because the
        history no longer fits the budget, as `remember` drops them (which may be
        `turn` itself when it is the oldest; the newest turn always stays)."""
        for index, old in enumerate(self._turns):
            if message_id in old.message_ids:
                self._turns[index] = turn
                self.tokens += turn.tokens - old.tokens
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
