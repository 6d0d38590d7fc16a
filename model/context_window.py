"""How many prompt tokens the model's server really takes, learnt from its answers.

The bot counts a request with tiktoken (text/tokens.py). For OpenAI's models that is
OpenAI's own count; for anything else (llama.cpp, Ollama, vLLM serving open models)
it is an estimate, and a server can count twice as many tokens as the bot does.
`ContextWindow` turns what the server says into the budget trimming aims at, for the
life of the process:

- calibration: the ratio of the server's `usage.prompt_tokens` to the bot's count of
  the same request. While the two differ, the budget is the configured one divided by
  that ratio, less a margin (`MARGIN`), so trimming aims at the server's real count.
- a learnt limit: when the server refuses a prompt as too long, the budget drops below
  what was refused, and stays there. A window the server states ("maximum context
  length is N tokens") becomes N less the reply allowance, in the server's tokens; a
  refused prompt the server counted for itself calibrates the ratio; when it says
  neither (llama-cpp-python's empty stream), the budget halves from what was refused.
  Implausible figures are ignored (a stated window smaller than the floor, or over
  `IMPLAUSIBLE` times the configured budget; a count whose ratio to the bot's is outside
  `FACTOR_RANGE`), and one refusal never takes the budget below `LOWEST_LESSON` of what
  was refused: the lesson holds for every channel, so a slip must not starve them all.
- an answer cut at "length" well under the reply cap stopped at the server's window:
  prompt plus completion is that window (`filled`).
- rising again: the server's window may grow (restarted with a larger one, or the
  refusal was a slip). An accepted prompt near a learnt cap raises the cap by `RISE`;
  usage over a learnt server limit raises that limit to what the server took.

All counts are in the bot's own tokens unless a name says "server".
"""

from __future__ import annotations

import math

# Room kept below the server's real limit while the bot's counts are estimates.
MARGIN = 0.1
# A ratio this close to 1 means the bot counts what the server counts.
EXACT_TOLERANCE = 0.02
# How far the budget drops below a refused prompt: less when the server said how
# large its window or the prompt was, half when it said nothing.
SHRINK_STATED = 0.75
SHRINK_UNSTATED = 0.5
# Ratios outside this range are taken as this range's ends: no real tokenizer counts
# a text eight times longer than another, so such a figure is the server's slip.
FACTOR_RANGE = (0.25, 8.0)
IMPLAUSIBLE = 10
LOWEST_LESSON = 0.25
# How much an accepted prompt within NEAR_FULL of a learnt cap raises it.
RISE = 1.05
NEAR_FULL = 0.9


class ContextWindow:
    """The prompt budget for one model on its server, learnt as the bot goes.

    `configured`: MAX_CONTEXT_TOKENS less MAX_REPLY_TOKENS, the most prompt tokens a
    request may have. `reply_tokens`: MAX_REPLY_TOKENS, which the server keeps free
    in its window for the answer. `exact`: whether tiktoken knows the model, so the
    bot's counts are the server's until usage says otherwise. `floor`: the budget never
    drops below this (the system prompt and the least room for the conversation).
    """

    def __init__(
        self, model: str, configured: int, *, reply_tokens: int, exact: bool, floor: int
    ) -> None:
        self.model = model
        self.configured = configured
        self.reply_tokens = reply_tokens
        self.floor = min(floor, configured)
        self.factor = 1.0  # server tokens per bot-counted token
        self.calibrated = False  # `factor` comes from the server's usage
        self._tiktoken_exact = exact
        self.server_limit: int | None = None  # learnt: most server tokens it takes
        self.cap: int | None = None  # learnt: most bot tokens after a refusal
        self.largest_accepted = 0  # the largest prompt (bot tokens) answered with text

    @property
    def exact(self) -> bool:
        """Whether the bot's counts are the server's (known model, or usage agrees)."""
        if self.calibrated:
            return abs(self.factor - 1) <= EXACT_TOLERANCE
        return self._tiktoken_exact

    @property
    def learnt(self) -> bool:
        """Whether the budget is below the configured one because of what was learnt."""
        return self.budget < self.configured

    @property
    def budget(self) -> int:
        """The most prompt tokens (the bot's count) a request should have now."""
        limits = [self.configured]
        if self.calibrated and self.factor > 1 + EXACT_TOLERANCE:
            limits.append(math.floor(self.configured / self.factor * (1 - MARGIN)))
        if self.server_limit is not None:
            limits.append(math.floor(self.server_limit / self.factor * (1 - MARGIN)))
        if self.cap is not None:
            limits.append(self.cap)
        return max(self.floor, min(limits))

    def server_tokens(self, counted: int) -> int:
        """The calibrated estimate of what the server counts for `counted` bot tokens."""
        return math.ceil(counted * self.factor)

    def observe(self, counted: int, reported: int) -> None:
        """The server reported `reported` prompt tokens for a request the bot counted as
        `counted`: calibrate to that ratio (the latest request is the best guide).
        The server took that prompt, so a learnt limit it proves too low rises."""
        if counted > 0 and reported > 0:
            low, high = FACTOR_RANGE
            self.factor = min(max(reported / counted, low), high)
            self.calibrated = True
            if self.server_limit is not None and reported > self.server_limit:
                self.server_limit = reported
        if self.cap is not None and counted >= self.cap * NEAR_FULL:
            self.cap = math.ceil(self.cap * RISE) + 1
            if self.cap >= self.configured:
                self.cap = None

    def refused(
        self,
        counted: int,
        *,
        window: int | None = None,
        server_count: int | None = None,
    ) -> int:
        """The server refused a prompt the bot counted as `counted` as too long; `window`
        and `server_count` are its stated window and its count of that prompt, when its
        error said them. Returns the new budget, which is below `counted` unless
        the floor stops it, and not below LOWEST_LESSON of `counted`; implausible
        figures are ignored (module docstring)."""
        low, high = FACTOR_RANGE
        if server_count is not None and counted > 0 and low <= server_count / counted <= high:
            self.factor = server_count / counted
            self.calibrated = True
        else:
            server_count = None
        if window is not None and not self.floor <= window <= self.configured * IMPLAUSIBLE:
            window = None
        lowest = max(self.floor, math.floor(counted * LOWEST_LESSON))
        if window is not None:
            room = window - self.reply_tokens if window > self.reply_tokens else window // 2
            room = max(room, math.ceil(lowest * self.factor / (1 - MARGIN)))
            self.server_limit = room if self.server_limit is None else min(self.server_limit, room)
        if self.budget >= counted:
            stated = window is not None or server_count is not None
            shrunk = math.floor(counted * (SHRINK_STATED if stated else SHRINK_UNSTATED))
            shrunk = max(shrunk, lowest)
            self.cap = shrunk if self.cap is None else min(self.cap, shrunk)
        return self.budget

    def accepted(self, counted: int) -> None:
        """The server answered a prompt the bot counted as `counted` with text."""
        self.largest_accepted = max(self.largest_accepted, counted)

    def filled(self, server_total: int) -> bool:
        """An answer stopped at "length" well under the reply cap, after `server_total`
        tokens (prompt plus completion, the server's counts): the server's window, most
        likely (llama.cpp, LM Studio and Ollama stop there when the window is smaller
        than the bot was told). Learns that window, so the next prompts leave room for a
        whole answer, and returns True; False when `server_total` is too small to be a
        window (less than the floor plus a whole answer: the server's own length limit)."""
        room = server_total - self.reply_tokens
        if room < self.floor * self.factor:
            return False
        self.server_limit = room if self.server_limit is None else min(self.server_limit, room)
        return True

    def describe(self) -> str:
        """How the bot counts, for /memory: exact, or estimated and how it was learnt."""
        if self.exact:
            return "exact"
        if self.calibrated:
            ratio = f"{self.factor:.2f}"
            return f"estimated, calibrated to the server's usage (it counts {ratio} times more)"
        return "estimated (the server has not reported its own counts yet)"
