"""The bot's settings: read once from the environment and `.env`, validated, frozen.

`load_settings` is the only place that interprets environment variables; everything
else receives the resulting `Settings`. A bad value raises `ConfigError`, whose
message names the variable and says how to fix it (bot.py prints it and exits).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from dotenv import dotenv_values

DEFAULT_MODEL = "gpt-5.4-mini"
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant chatting in a Discord server. Several people may talk "
    "to you in one channel; each user message carries the speaker's name. Your replies "
    "are shown as Discord messages, which render Discord markdown (bold, italics, lists, "
    "fenced code blocks with a language tag); there are no tables or images, so keep "
    "answers concise and readable in a chat."
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ReplyTo = Literal["all", "mention"]
MemoryStrategy = Literal["drop", "summarize"]
ResetPermission = Literal["manage_messages", "everyone"]
Vision = Literal["auto", "on", "off"]
ImageDetail = Literal["low", "high", "auto"]
Getter = Callable[[str], "str | None"]

# A request needs room for the system prompt and at least a short conversation.
MIN_PROMPT_BUDGET = 256
# Attachments: Discord's free upload limit is 10 MiB; larger files are not downloaded.
DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


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
    allowed_channel_ids: frozenset[int] = frozenset()
    blocked_channel_ids: frozenset[int] = frozenset()
    allowed_user_ids: frozenset[int] = frozenset()
    blocked_user_ids: frozenset[int] = frozenset()
    allowed_role_ids: frozenset[int] = frozenset()
    blocked_role_ids: frozenset[int] = frozenset()
    admin_user_ids: frozenset[int] = frozenset()
    allow_dms: bool = True
    user_rate_limit: int = 0  # messages per minute; 0: no limit
    user_daily_tokens: int = 0  # prompt + completion tokens per UTC day; 0: no limit
    max_concurrent_requests: int = 8
    memory_strategy: MemoryStrategy = "drop"
    reset_permission: ResetPermission = "manage_messages"
    dev_guild_id: int | None = None
    openai_timeout: float = 60.0
    stream_replies: bool = True
    log_level: str = "INFO"
    # Attachments (files.py): bytes downloaded per message at most; whether images go to
    # the model (auto: if the model is known to take them); the detail images are sent at.
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    vision: Vision = "auto"
    image_detail: ImageDetail = "low"
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

    reply_to = (get("REPLY_TO") or "all").lower()
    if reply_to not in ("all", "mention"):
        raise ConfigError(f"REPLY_TO must be 'all' or 'mention', got {reply_to!r}.")

    memory_strategy = (get("MEMORY_STRATEGY") or "drop").lower()
    if memory_strategy not in ("drop", "summarize"):
        raise ConfigError(
            f"MEMORY_STRATEGY must be 'drop' or 'summarize', got {memory_strategy!r}."
        )
    reset_permission = (get("RESET_PERMISSION") or "manage_messages").lower()
    if reset_permission not in ("manage_messages", "everyone"):
        raise ConfigError(
            f"RESET_PERMISSION must be 'manage_messages' or 'everyone', got {reset_permission!r}."
        )
    dev_guild = _id_list(get, "DEV_GUILD_ID")
    if len(dev_guild) > 1:
        raise ConfigError("DEV_GUILD_ID must be one server id.")

    log_level = (get("LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}.")

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
        reply_to=reply_to,  # type: ignore[arg-type]  # checked above
        allowed_channel_ids=_id_list(get, "ALLOWED_CHANNEL_IDS"),
        blocked_channel_ids=_id_list(get, "BLOCKED_CHANNEL_IDS"),
        allowed_user_ids=_id_list(get, "ALLOWED_USER_IDS"),
        blocked_user_ids=_id_list(get, "BLOCKED_USER_IDS"),
        allowed_role_ids=_id_list(get, "ALLOWED_ROLE_IDS"),
        blocked_role_ids=_id_list(get, "BLOCKED_ROLE_IDS"),
        admin_user_ids=_id_list(get, "ADMIN_USER_IDS"),
        allow_dms=_boolean(get, "ALLOW_DMS", default=True),
        user_rate_limit=_integer(get, "USER_RATE_LIMIT", 0, minimum=0),
        user_daily_tokens=_integer(get, "USER_DAILY_TOKENS", 0, minimum=0),
        max_concurrent_requests=_integer(get, "MAX_CONCURRENT_REQUESTS", 8, minimum=1),
        memory_strategy=memory_strategy,  # type: ignore[arg-type]  # checked above
        reset_permission=reset_permission,  # type: ignore[arg-type]  # checked above
        dev_guild_id=next(iter(dev_guild), None),
        openai_timeout=timeout,
        stream_replies=_boolean(get, "STREAM_REPLIES", default=True),
        log_level=log_level,
        discord_api_url=get("DISCORD_API_URL"),
        **_attachment_settings(get),
    )


def _attachment_settings(get: Getter) -> dict[str, object]:
    """MAX_ATTACHMENT_BYTES, VISION and IMAGE_DETAIL, as `Settings` fields."""
    vision = (get("VISION") or "auto").lower()
    if vision not in ("auto", "on", "off"):
        raise ConfigError(f"VISION must be 'auto', 'on' or 'off', got {vision!r}.")
    detail = (get("IMAGE_DETAIL") or "low").lower()
    if detail not in ("low", "high", "auto"):
        raise ConfigError(f"IMAGE_DETAIL must be 'low', 'high' or 'auto', got {detail!r}.")
    return {
        "max_attachment_bytes": _integer(
            get, "MAX_ATTACHMENT_BYTES", DEFAULT_MAX_ATTACHMENT_BYTES, minimum=0
        ),
        "vision": vision,
        "image_detail": detail,
    }


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
