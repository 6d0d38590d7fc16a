"""The bot's settings: read once from the environment and `.env`, validated, frozen.

`load_settings` is the only place that interprets environment variables; everything
else receives the resulting `Settings`. A bad value raises `ConfigError`, whose
message names the variable and says how to fix it (bot.py prints it and exits).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar, get_args
from urllib.parse import urlparse

from dotenv import dotenv_values

from guards import AccessRules

DEFAULT_MODEL = "gpt-5.4-mini"
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant chatting in a Discord server. Several people may talk "
    "to you in one channel; each user message carries the speaker's name. Your replies "
    "are shown as Discord messages, which render Discord markdown (bold, italics, lists, "
    "fenced code blocks with a language tag); there are no tables or images, so keep "
    "answers concise and readable in a chat."
)
ReplyTo = Literal["all", "mention"]
MemoryStrategy = Literal["drop", "summarize"]
ResetPermission = Literal["manage_messages", "everyone"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Getter = Callable[[str], "str | None"]
Word = TypeVar("Word", bound=str)

# A request needs room for the system prompt and at least a short conversation.
MIN_PROMPT_BUDGET = 256


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line meant for the user."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot can be configured with. Built once at start-up."""

    discord_bot_token: str
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = DEFAULT_MODEL
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_context_tokens: int = 4096
    max_reply_tokens: int = 1024
    reply_to: ReplyTo = "all"
    # The ALLOWED_* / BLOCKED_* lists, ADMIN_USER_IDS and ALLOW_DMS.
    access: AccessRules = field(default_factory=AccessRules)
    user_rate_limit: int = 0  # messages per minute; 0: no limit
    user_daily_tokens: int = 0  # prompt + completion tokens per UTC day; 0: no limit
    max_concurrent_requests: int = 8
    memory_strategy: MemoryStrategy = "drop"
    reset_permission: ResetPermission = "manage_messages"
    dev_guild_id: int | None = None
    openai_timeout: float = 60.0
    stream_replies: bool = True
    log_level: LogLevel = "INFO"
    # Test seam: where discord.py sends REST and gateway traffic. Unset in production.
    discord_api_url: str | None = None

    @property
    def prompt_budget(self) -> int:
        """Most prompt tokens one request may carry; the rest is kept for the answer."""
        return self.max_context_tokens - self.max_reply_tokens

    def __repr__(self) -> str:
        # Keep secrets out of logs and tracebacks.
        return f"Settings(model={self.openai_model!r}, reply_to={self.reply_to!r}, ...)"


def read_environment(env_file: Path | None = None) -> dict[str, str]:
    """The process environment over the values of `.env` (real variables win).

    `.env` is looked up in the current directory unless `env_file` is given.
    """
    path = env_file if env_file is not None else Path.cwd() / ".env"
    from_file = {k: v for k, v in dotenv_values(path).items() if v is not None}
    return {**from_file, **os.environ}


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate `env` (variable name -> text) into `Settings` or raise `ConfigError`.

    Empty values count as unset, so a copied `.env.example` with blanks is fine.
    """

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    token = get("DISCORD_BOT_TOKEN")
    if token is None:
        raise ConfigError(
            "DISCORD_BOT_TOKEN is not set: copy your bot's token from the Discord Developer "
            "Portal (your application -> Bot -> Reset Token) into .env."
        )
    if token.lower().startswith("bot ") or any(c.isspace() for c in token):
        raise ConfigError(
            "DISCORD_BOT_TOKEN is malformed: paste only the token itself, with no 'Bot ' "
            "prefix, quotes or spaces."
        )

    base_url = get("OPENAI_BASE_URL")
    if base_url is not None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(
                f"OPENAI_BASE_URL must be an http(s) URL such as http://localhost:11434/v1, "
                f"got {base_url!r}."
            )
    api_key = get("OPENAI_API_KEY")
    if api_key is None and base_url is None:
        raise ConfigError(
            "OPENAI_API_KEY is not set: create a key at https://platform.openai.com/api-keys "
            "and put it in .env (or set OPENAI_BASE_URL to use a local OpenAI-compatible server)."
        )

    max_context = _integer(get, "MAX_CONTEXT_TOKENS", 4096, minimum=MIN_PROMPT_BUDGET + 1)
    max_reply = _integer(get, "MAX_REPLY_TOKENS", 1024, minimum=1)
    if max_context - max_reply < MIN_PROMPT_BUDGET:
        raise ConfigError(
            f"MAX_REPLY_TOKENS ({max_reply}) leaves fewer than {MIN_PROMPT_BUDGET} of "
            f"MAX_CONTEXT_TOKENS ({max_context}) for the conversation: lower MAX_REPLY_TOKENS "
            "or raise MAX_CONTEXT_TOKENS."
        )

    dev_guild = _id_list(get, "DEV_GUILD_ID")
    if len(dev_guild) > 1:
        raise ConfigError("DEV_GUILD_ID must be one server id.")

    timeout_text = get("OPENAI_TIMEOUT") or "60"
    try:
        timeout = float(timeout_text)
    except ValueError:
        timeout = float("nan")
    if not 0 < timeout <= 600:
        raise ConfigError(
            f"OPENAI_TIMEOUT must be a number of seconds between 0 and 600, got {timeout_text!r}."
        )

    return Settings(
        discord_bot_token=token,
        openai_api_key=api_key,
        openai_base_url=base_url,
        openai_model=get("OPENAI_MODEL") or DEFAULT_MODEL,
        system_prompt=get("SYSTEM_PROMPT") or DEFAULT_SYSTEM_PROMPT,
        max_context_tokens=max_context,
        max_reply_tokens=max_reply,
        reply_to=_word(get, "REPLY_TO", get_args(ReplyTo), "all"),
        access=AccessRules(
            allowed_channels=_id_list(get, "ALLOWED_CHANNEL_IDS"),
            blocked_channels=_id_list(get, "BLOCKED_CHANNEL_IDS"),
            allowed_users=_id_list(get, "ALLOWED_USER_IDS"),
            blocked_users=_id_list(get, "BLOCKED_USER_IDS"),
            allowed_roles=_id_list(get, "ALLOWED_ROLE_IDS"),
            blocked_roles=_id_list(get, "BLOCKED_ROLE_IDS"),
            admins=_id_list(get, "ADMIN_USER_IDS"),
            allow_dms=_boolean(get, "ALLOW_DMS", default=True),
        ),
        user_rate_limit=_integer(get, "USER_RATE_LIMIT", 0, minimum=0),
        user_daily_tokens=_integer(get, "USER_DAILY_TOKENS", 0, minimum=0),
        max_concurrent_requests=_integer(get, "MAX_CONCURRENT_REQUESTS", 8, minimum=1),
        memory_strategy=_word(get, "MEMORY_STRATEGY", get_args(MemoryStrategy), "drop"),
        reset_permission=_word(
            get, "RESET_PERMISSION", get_args(ResetPermission), "manage_messages"
        ),
        dev_guild_id=next(iter(dev_guild), None),
        openai_timeout=timeout,
        stream_replies=_boolean(get, "STREAM_REPLIES", default=True),
        log_level=_word(get, "LOG_LEVEL", get_args(LogLevel), "INFO"),
        discord_api_url=get("DISCORD_API_URL"),
    )


def _integer(get: Getter, name: str, default: int, *, minimum: int) -> int:
    text = get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {text!r}.") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}.")
    return value


def _word(get: Getter, name: str, words: tuple[Word, ...], default: Word) -> Word:
    """The one of `words` that `name` is set to, in any case; `default` if unset."""
    text = get(name)
    if text is None:
        return default
    # The words are all lower case (LOG_LEVEL's, like logging's, all upper case).
    given = text.upper() if words[0].isupper() else text.lower()
    for word in words:
        if word == given:
            return word
    if len(words) == 2:
        choices = f"{words[0]!r} or {words[1]!r}"
    else:
        choices = f"one of {', '.join(words)}"
    raise ConfigError(f"{name} must be {choices}, got {given!r}.")


def _id_list(get: Getter, name: str) -> frozenset[int]:
    text = get(name)
    if text is None:
        return frozenset()
    ids = set()
    for part in text.replace(",", " ").split():
        if not part.isdigit():
            raise ConfigError(
                f"{name} must be Discord ids separated by commas, got {part!r} "
                "(with Developer Mode on, right-click a channel, user or role -> Copy ID)."
            )
        ids.add(int(part))
    return frozenset(ids)


def _boolean(get: Getter, name: str, *, default: bool) -> bool:
    text = get(name)
    if text is None:
        return default
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {text!r}.")
