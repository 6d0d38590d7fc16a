"""Chat-completions requests built from a channel's memory, within the prompt budget."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from config import Settings
from memory import ChannelMemory, ImagePart, Role, Turn
from text.control import neutralise_control_text
from text.markdown import subtext
from text.quoting import OWN_CUT, QUOTES_CUT, fit_turn_text
from text.tokens import REPLY_PRIMING, TokenCounter, TokenCounters

log = logging.getLogger("chatbot")

# The least room a request must leave for the conversation after the system prompt.
MIN_HISTORY_BUDGET = 32
SUMMARY_HEADING = "Summary of the earlier conversation in this channel:"
# Under an answer to a message that was cut to fit: on arrival (conversations.py), or
# when a request is built within a smaller, learnt budget (`Prompt.cut`).
SHORTENED_NOTE = subtext(
    "Your message was too long for me to read whole; I answered its beginning."
)
# The same when only what the message replies to or forwards was cut: the person's own
# words were read whole.
QUOTE_SHORTENED_NOTE = subtext(
    "The message you replied to or forwarded was too long for me to read whole; "
    "I read its beginning and all of yours."
)
_NOTES = {QUOTES_CUT: QUOTE_SHORTENED_NOTE, OWN_CUT: SHORTENED_NOTE}


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request's messages and their total prompt tokens as the API counts them;
    `cut`: the note for the newest message shortened to fit (SHORTENED_NOTE, or
    QUOTE_SHORTENED_NOTE when only what it quotes was cut), "" when it is whole."""

    messages: list[dict[str, Any]]
    tokens: int
    cut: str = ""


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
    ) -> tuple[Turn, str]:
        """A turn for `content` (and `images`), its text shortened if the turn alone
        would not fit in a request (what it quotes first: `fit_turn_text`). Images that
        alone leave no room are left out.

        Returns the turn and the note for its shortening ("" when whole: see
        `Prompt.cut`). A user's text is sent with its chat-template control markers
        neutralised (text/control.py).
        """
        if role == "user":
            content = neutralise_control_text(content)
        turn = self._turn(role, content, name, images, files)
        if turn.tokens <= self.history_budget:
            return turn, ""
        if turn.tokens - turn.without_images().tokens >= self.history_budget:
            turn = turn.without_images()
            if turn.tokens <= self.history_budget:  # its pictures were what was cut
                return turn, SHORTENED_NOTE
        return self._shortened(turn, self.history_budget)

    def prompt(
        self, history: ChannelMemory, budget: int | None = None, *, sending: bool = True
    ) -> Prompt:
        """The request for `history` within `budget` prompt tokens (default: the
        configured prompt budget). `Prompt.cut` says whether the newest turn was cut.
        `sending`: the request is sent, so `history` records where it started and that
        its turns were carried; False (a /memory report) leaves `history` as it was.

        One system message: the system prompt, then the summary of older turns if there
        is one (chat templates keep only the first system message). Then the history's
        turns, oldest first; the newest is shortened if it alone does not fit. When
        `budget` (a smaller, learnt window) leaves no room for all of them, the request
        starts where the previous such request started (`ChannelMemory.prompt_start`)
        while that still fits, else a step later: the oldest turns are left out down to
        the memory's low mark of the room, so consecutive requests share their
        beginning (see memory.py). Turns left out stay in `history`. While the memory
        is `labelled`, each user turn's content starts with who spoke (`Turn.labelled`).
        """
        budget = self.prompt_budget if budget is None else budget
        head = self.system
        if history.summary is not None:
            content = f"{self.system.content}\n\n{history.summary.content}"
            head = self._turn("system", content, None)
        labelled = history.labelled
        room = budget - head.tokens - REPLY_PRIMING
        turns = self._window(history, room, sending)
        used = sum(history.cost(turn) for turn in turns)
        cut = ""
        if turns and used > room:  # the newest turn alone does not fit: shorten it
            newest = turns[-1]
            label = newest.label_tokens if labelled else 0
            turns[-1], cut = self._shortened(newest, room - label)
            used = history.cost(turns[-1])
        messages = [head.as_message()] + [t.as_message(labelled) for t in turns]
        if sending:
            history.sent()
        return Prompt(messages, head.tokens + used + REPLY_PRIMING, cut)

    @staticmethod
    def _window(history: ChannelMemory, room: int, sending: bool) -> list[Turn]:
        """The turns of `history` a request with `room` tokens for them sends (all of
        them when they fit; else from `prompt_start`, or a step later; at least the
        newest)."""
        turns = list(history)
        total = history.tokens
        if total <= room:
            if sending:
                history.prompt_start = None
            return turns
        start = 0
        if history.prompt_start is not None:
            start = next((i for i, t in enumerate(turns) if t is history.prompt_start), 0)
        total -= sum(history.cost(turn) for turn in turns[:start])
        if total > room:  # a step: down to the low mark of the room, unsent turns kept
            mark = min(max(int(room * history.low_mark), history.unsent_tokens()), room)
            while total > mark and start < len(turns) - 1:
                total -= history.cost(turns[start])
                start += 1
        if sending:
            history.prompt_start = turns[start] if turns else None
        return turns[start:]

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

    def _shortened(self, turn: Turn, max_tokens: int) -> tuple[Turn, str]:
        """`turn` with its content cut to fit `max_tokens` tokens as a message (what it
        quotes first, the person's own words last), and the note saying what was cut."""
        overhead = turn.tokens - self.counter.count_text(turn.content)
        limit = max(max_tokens - overhead, 0)
        content, what = fit_turn_text(turn.content, limit, self.counter)
        shortened = self._turn(turn.role, content, turn.name, turn.images, turn.files)
        shortened = dataclasses.replace(shortened, message_ids=turn.message_ids)
        return shortened, _NOTES.get(what, "")


class PromptBuilders:
    """One PromptBuilder per (model's encoding, persona), made on first use: channels
    whose /settings choose another model or persona share it. `default` counts with
    OPENAI_MODEL's encoding and SYSTEM_PROMPT."""

    def __init__(self, default: PromptBuilder, counters: TokenCounters, settings: Settings) -> None:
        self.default = default
        self.counters = counters
        self.settings = settings
        self._builders: dict[tuple[str, str], PromptBuilder] = {}

    async def get(self, model: str, persona: str, channel_id: int) -> PromptBuilder:
        """The builder for `model` and `persona` in the channel `channel_id`; SYSTEM_PROMPT's
        (logged) when `persona` leaves no room."""
        key = (self.counters.encoding_name(model), persona)
        prompts = self._builders.get(key)
        if prompts is not None:
            return prompts
        default = (
            self.counters.encoding_name(self.settings.openai_model),
            self.settings.system_prompt,
        )
        if key == default:
            prompts = self.default
        else:
            counter = await self.counters.for_model(model)
            try:
                prompts = PromptBuilder(counter, persona, self.settings.prompt_budget)
            except ValueError as error:  # checked by /settings persona; be safe anyway
                log.warning(
                    "channel %s: persona refused, using SYSTEM_PROMPT: %s", channel_id, error
                )
                prompts = self.default
        self._builders[key] = prompts
        return prompts
