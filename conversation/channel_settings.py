"""Settings per channel: persona, model, reply-to, reasoning effort, streaming, tools and
knowledge (whether the channel's messages are indexed: knowledge/).

The effective value of each setting for a channel is the most specific one stored in
its chain of scopes (store.Scope), over the environment's value (config.Settings):

    environment  <  server defaults  <  the channel  <  a thread's own settings

A thread inherits its parent channel's settings. A DM's chain is only its own scope.
`resolve` is the pure rule; `ChannelSettings` reads the store through a short cache
(so a change made by another bot process shows within CACHE_SECONDS, or at once when
processes share PostgreSQL: operations/settings_news.py), forgets a scope when it is
changed here, and, when the database fails while running, keeps using the values of
the last good read (logged).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast, get_args

from config import THREAD_MODES, ReplyTo, Settings
from store import Scope, ScopeTarget, Store, StoreError
from text.markdown import inline_code
from text.setting_values import MAX_MODEL_NAME, model_name_problem

if TYPE_CHECKING:
    import discord

log = logging.getLogger("chatbot")

SettingKey = Literal[
    "persona", "model", "reply_to", "reasoning_effort", "streaming", "tools", "knowledge"
]
SETTING_KEYS: tuple[SettingKey, ...] = get_args(SettingKey)
# What the commands call each setting.
LABELS: dict[SettingKey, str] = {
    "persona": "Persona",
    "model": "Model",
    "reply_to": "Reply to",
    "reasoning_effort": "Reasoning effort",
    "streaming": "Streaming",
    "tools": "Tools",
    "knowledge": "Knowledge",
}
# The environment variable each setting defaults to (reasoning effort has none: unset;
# tools none: on, offering whatever tools MCP_CONFIG's servers have; knowledge none: off).
ENVIRONMENT: dict[SettingKey, str] = {
    "persona": "SYSTEM_PROMPT",
    "model": "OPENAI_MODEL",
    "reply_to": "REPLY_TO",
    "streaming": "STREAM_REPLIES",
}
# OpenAI's values for `reasoning_effort` (chat completions API reference); models
# without reasoning refuse the parameter, so it is sent only when set.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# How long a scope's stored settings are trusted before they are read again.
CACHE_SECONDS = 30.0
# Scopes cached before expired ones are dropped (a bot may see many thousands of DMs).
CACHE_LIMIT = 1000
# A persona may use at most this share of the prompt budget, so the conversation keeps
# the rest.
PERSONA_SHARE = 0.5
# Discord: an autocomplete result holds at most 25 choices of 1-100 characters each.
MAX_SUGGESTIONS = 25
MAX_CHOICE_LENGTH = 100


@dataclass(frozen=True, slots=True)
class Place:
    """Where a message or command is: a server channel or thread, or a DM."""

    guild_id: int | None
    channel_id: int
    parent_id: int | None = None  # a thread's parent channel

    @classmethod
    def of(cls, channel: discord.abc.Snowflake) -> Place:
        """The place of a discord.py channel (a thread carries `parent_id`; a DM has no
        `guild`)."""
        guild = getattr(channel, "guild", None)
        return cls(
            guild_id=guild.id if guild is not None else None,
            channel_id=channel.id,
            parent_id=getattr(channel, "parent_id", None),
        )

    def chain(self) -> list[tuple[Scope, str]]:
        """The scopes whose settings apply here, most general first, each with a label."""
        if self.guild_id is None:
            return [(Scope("dm", self.channel_id), "this DM")]
        chain = [(Scope("guild", self.guild_id), "server default")]
        if self.parent_id is not None:
            chain.append((Scope("channel", self.parent_id), "parent channel"))
        own = "this thread" if self.parent_id is not None else "this channel"
        return [*chain, (Scope("channel", self.channel_id), own)]

    def scope(self, target: ScopeTarget) -> Scope:
        """The scope a change aimed at `target` writes to (in a DM: the DM's own)."""
        if self.guild_id is None:
            return Scope("dm", self.channel_id)
        if target == "server":
            return Scope("guild", self.guild_id)
        return Scope("channel", self.channel_id)


@dataclass(frozen=True, slots=True)
class Effective:
    """The settings that apply in one place, and where each comes from (`sources`:
    a chain label such as "this channel", or "environment (OPENAI_MODEL)")."""

    persona: str
    model: str
    reply_to: ReplyTo
    reasoning_effort: str | None
    streaming: bool
    sources: Mapping[SettingKey, str]
    tools: bool = True  # whether the model is offered tools here (when there are any)
    knowledge: bool = False  # whether messages here are indexed (knowledge/; never in DMs)


def parse(key: SettingKey, text: str) -> str:
    """`text` as stored for `key` (normalised), or ValueError with a reason for the user."""
    value = text.strip()
    if key == "persona":
        if not value:
            raise ValueError("the persona is empty")
        return value
    if key == "model":
        if (problem := model_name_problem(value)) is not None:
            raise ValueError(problem)
        return value
    choices = {
        "reply_to": get_args(ReplyTo),
        "reasoning_effort": REASONING_EFFORTS,
        "streaming": ("on", "off"),
        "tools": ("on", "off"),
        "knowledge": ("on", "off"),
    }[key]
    if value.lower() not in choices:
        raise ValueError(f"{LABELS[key].lower()} is one of {', '.join(choices)}")
    return value.lower()


def resolve(settings: Settings, layers: Sequence[tuple[str, Mapping[str, str]]]) -> Effective:
    """The effective settings: each key from the last of `layers` (label, {key: text})
    that holds a valid value for it, else the environment's. Stored values that no
    longer parse (written by a newer bot, say) are skipped."""
    values: dict[SettingKey, str | None] = {
        "persona": settings.system_prompt,
        "model": settings.openai_model,
        "reply_to": settings.reply_to,
        "reasoning_effort": None,
        "streaming": "on" if settings.stream_replies else "off",
        "tools": "on",
        "knowledge": "off",
    }
    sources: dict[SettingKey, str] = {
        key: f"environment ({ENVIRONMENT[key]})" if key in ENVIRONMENT else "not set"
        for key in SETTING_KEYS
    }
    sources["tools"] = sources["knowledge"] = "default"
    for label, stored in layers:
        for key in SETTING_KEYS:
            if key not in stored:
                continue
            try:
                values[key] = parse(key, stored[key])
            except ValueError:
                log.warning("ignoring the stored %s %r (%s)", key, stored[key], label)
                continue
            sources[key] = label
    return Effective(
        persona=values["persona"] or settings.system_prompt,
        model=values["model"] or settings.openai_model,
        reply_to=cast(ReplyTo, values["reply_to"] or settings.reply_to),  # checked by parse
        reasoning_effort=values["reasoning_effort"],
        streaming=values["streaming"] == "on",
        sources=sources,
        tools=values["tools"] == "on",
        knowledge=values["knowledge"] == "on",
    )


def persona_refusal(persona_tokens: int, prompt_budget: int) -> str | None:
    """Why a persona of `persona_tokens` (its whole system message) is refused, or None.

    It may use at most PERSONA_SHARE of the prompt budget (MAX_CONTEXT_TOKENS -
    MAX_REPLY_TOKENS), so that the conversation keeps the rest.
    """
    allowed = int(prompt_budget * PERSONA_SHARE)
    if persona_tokens <= allowed:
        return None
    return (
        f"That persona is {persona_tokens:,} tokens; a persona may use at most {allowed:,} "
        f"of the {prompt_budget:,}-token prompt budget, so the conversation keeps room. "
        "Shorten it."
    )


def reply_to_refusal(mode: str, place: Place, target: ScopeTarget) -> str | None:
    """Why reply mode `mode` may not be set at `target` from `place`, in one line, or None.

    The thread modes start threads in a server's text channels: a DM has none (Discord
    has no threads in DMs), and a thread cannot start threads of its own (Discord nests
    none), so in a thread they are set on its channel, whose threads inherit them.
    """
    if mode not in THREAD_MODES:
        return None
    if place.guild_id is None:
        return "There are no threads in a DM: choose all or mention here."
    if target == "channel" and place.parent_id is not None:
        return (
            "A thread can't start threads: set this mode on its channel (its threads "
            "inherit it), or choose all or mention for this thread."
        )
    return None


def knowledge_place(place: Place) -> Place | None:
    """Where /settings knowledge given at `place` applies: there, or for a thread or a
    forum post its channel (they follow it: issue 23), or nowhere (None) in a DM, which
    is never indexed."""
    if place.guild_id is None:
        return None
    if place.parent_id is not None:
        return Place(place.guild_id, place.parent_id)
    return place


def describe(key: SettingKey, value: str | None) -> str:
    """A setting's value as the commands show it (a long persona is shortened)."""
    if value is None:
        return "not set"
    if key == "persona":
        one_line = " ".join(value.split())
        return f"“{one_line[:150]}…”" if len(one_line) > 150 else f"“{one_line}”"
    return inline_code(value, MAX_MODEL_NAME)


def model_suggestions(models: Sequence[str], typed: str) -> list[str]:
    """The model ids to suggest while someone types `typed` into /settings model: those
    that contain it (case-insensitive; all for nothing typed), the ones starting with it
    first, otherwise in `models`' order, without repeats.

    Discord's rules for autocomplete results (docs, "Interactions: Receiving and
    Responding", autocomplete and "Application Commands", option choice structure):
    at most MAX_SUGGESTIONS choices, each name and string value 1-100 characters; an id
    that cannot be a choice's value is left out (it can still be typed whole).
    """
    wanted = typed.strip().casefold()
    usable = [m for m in dict.fromkeys(models) if 1 <= len(m) <= MAX_CHOICE_LENGTH]
    matching = [m for m in usable if wanted in m.casefold()]
    matching.sort(key=lambda m: not m.casefold().startswith(wanted))  # stable: keeps order
    return matching[:MAX_SUGGESTIONS]


def value_of(effective: Effective, key: SettingKey) -> str | None:
    """`key`'s effective value as text (the form `parse` returns)."""
    if key in ("streaming", "tools", "knowledge"):
        return "on" if getattr(effective, key) else "off"
    return getattr(effective, key)


def show(effective: Effective) -> str:
    """The /settings show report: each setting, its value and where it comes from."""
    return "\n".join(
        f"**{LABELS[key]}:** {describe(key, value_of(effective, key))} ({effective.sources[key]})"
        for key in SETTING_KEYS
    )


class ChannelSettings:
    """The effective settings of each place, from the store over the environment.

    One store read per lookup at most (only the scopes not read in the last
    `ttl` seconds); a change made here is seen at once, one made by another process
    within `ttl`. When the database fails, the last good read of each scope is used
    (none: the environment's values) and the failure is logged once until it recovers.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.ttl = ttl
        self.clock = clock
        self._read: dict[Scope, tuple[float, dict[str, str]]] = {}  # scope -> (when, values)
        self._failing = False
        # Called after each change here, to tell other processes (operations/settings_news.py).
        self.changed: Callable[[Scope], Awaitable[None]] | None = None
        self._forgotten = 0  # how many times `forget` was called

    async def effective(self, place: Place) -> Effective:
        """The settings that apply at `place`; never raises for a database failure."""
        chain = place.chain()
        now = self.clock()
        stale = [s for s, _ in chain if s not in self._read or now - self._read[s][0] >= self.ttl]
        if stale:
            forgotten = self._forgotten
            try:
                found = await self.store.get_settings(stale)
            except StoreError as error:
                if not self._failing:
                    log.warning("settings: using the last good read: %s", error)
                self._failing = True
            else:
                if self._failing:
                    log.info("settings: the database answers again")
                self._failing = False
                # A change heard of during the read may be newer: use it, keep it no longer.
                when = now if self._forgotten == forgotten else now - self.ttl
                for scope in stale:
                    self._read[scope] = (when, {k: s.value for k, s in found[scope].items()})
                self._forget_expired(now)
        layers = [(label, self._read.get(scope, (0.0, {}))[1]) for scope, label in chain]
        return resolve(self.settings, layers)

    def _forget_expired(self, now: float) -> None:
        """Keep the cache from growing with every channel ever seen: once it holds more
        than CACHE_LIMIT scopes, drop those read longer than `ttl` ago (read again when
        next needed)."""
        if len(self._read) > CACHE_LIMIT:
            self._read = {s: read for s, read in self._read.items() if now - read[0] < self.ttl}

    def forget(self, scope: Scope | None = None) -> None:
        """Drop `scope` (None: every scope) from the cache: read again when next needed."""
        self._forgotten += 1
        if scope is None:
            self._read.clear()
        else:
            self._read.pop(scope, None)

    async def _changed(self, scope: Scope) -> None:
        """`scope` was changed here: seen at once here, and told to other processes."""
        self.forget(scope)
        if self.changed is not None:
            await self.changed(scope)

    async def change(self, scope: Scope, key: SettingKey, value: str, *, by: int) -> str:
        """Store `key` = `value` (checked by `parse`) for `scope`; returns the stored text.

        Raises ValueError for a bad value, StoreError when the database fails.
        """
        text = parse(key, value)
        await self.store.set_setting(scope, key, text, updated_by=by)
        await self._changed(scope)
        return text

    async def unset(self, scope: Scope, key: SettingKey) -> bool:
        """Remove `key` from `scope` (back to inherited); True if it was set there.

        Raises StoreError when the database fails.
        """
        removed = await self.store.delete_setting(scope, key)
        await self._changed(scope)
        return removed

    async def reset(self, scope: Scope) -> int:
        """Remove every setting of `scope` (back to inherited); how many there were.

        Raises StoreError when the database fails.
        """
        removed = await self.store.clear_scope(scope)
        await self._changed(scope)
        return removed
