"""The bot's settings: read once from the environment and `.env`, validated, frozen.

`load_settings` is the only place that interprets environment variables (with the
parsers of text/setting_values.py); everything else receives the resulting `Settings`. A bad
value raises `ConfigError`, whose message names the variable and says how to fix it
(bot.py prints it and exits).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from dotenv import dotenv_values

from store import DEFAULT_RETENTION_DAYS, StoreError, database_url
from text.setting_values import (
    ConfigError,
    Getter,
    boolean,
    host,
    http_url,
    id_list,
    integer,
    model_name_problem,
    number_ranges,
    port,
    price,
    quoted,
    require_header_safe,
    seconds,
    word,
)
from tools.mcp_config import McpConfigError, McpServer, read_mcp_config

DEFAULT_MODEL = "gpt-5.4-mini"
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant chatting in a Discord server. Several people may talk "
    "to you in one channel; each user message carries the speaker's name. Your replies "
    "are shown as Discord messages, which render Discord markdown (bold, italics, lists, "
    "fenced code blocks with a language tag); there are no tables or images, so keep "
    "answers concise and readable in a chat."
)
ReplyTo = Literal["all", "mention", "thread", "mention-thread"]
# The reply modes that answer a channel's new messages in threads (threads.py).
THREAD_MODES = ("thread", "mention-thread")
MemoryStrategy = Literal["drop", "summarize"]
ResetPermission = Literal["manage_messages", "everyone"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Vision = Literal["auto", "on", "off"]
ImageDetail = Literal["low", "high", "auto"]

# Every variable load_settings reads, in the order of .env.example (the tests check both).
VARIABLES = tuple(
    """
    DISCORD_BOT_TOKEN OPENAI_API_KEY OPENAI_MODEL OPENAI_BASE_URL SYSTEM_PROMPT
    MAX_CONTEXT_TOKENS MAX_REPLY_TOKENS REPLY_TO
    ALLOWED_CHANNEL_IDS BLOCKED_CHANNEL_IDS ALLOWED_USER_IDS BLOCKED_USER_IDS
    ALLOWED_ROLE_IDS BLOCKED_ROLE_IDS ADMIN_USER_IDS ALLOW_DMS
    USER_RATE_LIMIT USER_DAILY_TOKENS MAX_CONCURRENT_REQUESTS MAX_CACHED_CHANNELS
    STREAM_REPLIES OPENAI_TIMEOUT MEMORY_STRATEGY RESET_PERMISSION DEV_GUILD_ID LOG_LEVEL
    MAX_ATTACHMENT_BYTES VISION IMAGE_DETAIL DATABASE_URL USAGE_RETENTION_DAYS
    PRICE_INPUT_PER_MILLION PRICE_OUTPUT_PER_MILLION PRICE_CACHED_INPUT_PER_MILLION
    MCP_CONFIG MAX_TOOL_ROUNDS TOOL_TIMEOUT TOOL_ANSWER_TIMEOUT APPROVAL_TIMEOUT
    KNOWLEDGE_BACKFILL_DAYS KNOWLEDGE_RETENTION_DAYS SHARD_COUNT SHARD_IDS
    HEALTH_PORT HEALTH_HOST
    DISCORD_API_URL
    """.split()
)  # DISCORD_API_URL, last, is a test seam left unset in production: not in .env.example

# A request needs room for the system prompt and at least a short conversation.
MIN_PROMPT_BUDGET = 256
# Upper bounds, so that a typo fails at start-up rather than on a message:
# no model has a context window near 10 million tokens;
MAX_TOKENS = 10_000_000
# Discord lets no one post much faster than a message a second (use 0 for no limit);
MAX_MESSAGES_PER_MINUTE = 1_000
# a billion tokens is thousands of dollars for one user a day (use 0 for no limit);
MAX_DAILY_TOKENS = 1_000_000_000
# the OpenAI SDK's connection pool holds 1,000 connections; more requests would queue there.
MAX_CONCURRENT = 1_000
# a million channels' memories at the full default budget would be tens of gigabytes.
MAX_CHANNELS_CACHED = 1_000_000
# The store's default: a SQLite file in data/ beside bot.py (git-ignored), made on first run.
DEFAULT_DATABASE_URL = str(Path(__file__).resolve().parent / "data" / "bot.db")
MAX_RETENTION_DAYS = 3_650  # ten years of daily usage rows
# No model costs anywhere near this per million tokens; a typo fails at start-up.
MAX_PRICE = 10_000.0
# Tools: a model that asks for more than 50 rounds in one answer is looping; an hour is
# longer than anyone waits for a tool, an answer or a button press in a chat.
MAX_TOOL_ROUNDS = 50
MAX_TOOL_SECONDS = 3_600.0
# Discord asks for a shard per 1,000 to 2,500 servers; no bot is in 100 million.
MAX_SHARDS = 100_000
# Attachments: Discord's free upload limit is 10 MiB; no upload is larger than 1 GiB.
DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENT_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AccessRules:
    """ALLOWED_* / BLOCKED_* lists for channels, users and roles (ids); ALLOW_DMS;
    ADMIN_USER_IDS (`admins`). How they judge a message: conversation/access.py."""

    allowed_channels: frozenset[int] = frozenset()
    blocked_channels: frozenset[int] = frozenset()
    allowed_users: frozenset[int] = frozenset()
    blocked_users: frozenset[int] = frozenset()
    allowed_roles: frozenset[int] = frozenset()
    blocked_roles: frozenset[int] = frozenset()
    admins: frozenset[int] = frozenset()
    allow_dms: bool = True


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
    # Channels (and users) whose state is kept in memory; idle ones beyond are let go.
    max_cached_channels: int = 1000
    memory_strategy: MemoryStrategy = "drop"
    reset_permission: ResetPermission = "manage_messages"
    dev_guild_id: int | None = None
    openai_timeout: float = 60.0
    stream_replies: bool = True
    log_level: LogLevel = "INFO"
    # Attachments (discord_side/downloads.py): bytes downloaded per message at most;
    # whether images go to the model (auto: if the model is known to take them); the
    # detail images are sent at.
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    vision: Vision = "auto"
    image_detail: ImageDetail = "low"
    # The store (store/): a file path, sqlite:///path or postgresql://...
    database_url: str = DEFAULT_DATABASE_URL
    usage_retention_days: int = DEFAULT_RETENTION_DAYS  # UTC days of usage kept
    # Prices per million prompt, completion and cached prompt tokens (served from the
    # server's prompt cache), for /usage; None: no costs (cached: the input price).
    price_input_per_million: float | None = None
    price_output_per_million: float | None = None
    price_cached_input_per_million: float | None = None
    # Tools (tools/): the MCP_CONFIG file and its servers, read and checked at start-up;
    # model rounds with tool calls per answer; seconds for one tool call, for a whole
    # answer that uses tools, and for a person to Allow a call (then it is denied).
    mcp_config: Path | None = None
    mcp_servers: tuple[McpServer, ...] = ()
    max_tool_rounds: int = 8
    tool_timeout: float = 30.0
    tool_answer_timeout: float = 180.0
    approval_timeout: float = 300.0
    # The server's knowledge (knowledge/): days of history read back when it is turned
    # on, and days a message stays in the index.
    knowledge_backfill_days: int = 90
    knowledge_retention_days: int = 365
    # Gateway shards (operations/): the total, and the ones this process runs; None:
    # Discord's recommended count, every shard of it.
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    # /healthz, /readyz and /metrics on this local port (None: not served).
    health_port: int | None = None
    health_host: str = "127.0.0.1"
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

    `.env` is looked up in the current directory unless `env_file` is given. Raises
    `ConfigError` if it cannot be read as UTF-8 text.
    """
    path = env_file if env_file is not None else Path.cwd() / ".env"
    try:
        values = dotenv_values(path, encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: save it as UTF-8.") from None
    except OSError as error:
        raise ConfigError(f"{path} cannot be read: {error.strerror}.") from None
    from_file = {k: v for k, v in values.items() if v is not None}
    return {**from_file, **os.environ}


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate `env` (variable name -> text) into `Settings` or raise `ConfigError`.

    Reads the variables in `VARIABLES`. Empty values count as unset, so a copied
    `.env.example` with blanks is fine. Every value is checked here, at start-up, so
    that a setting the bot accepted cannot fail later, on each message.
    """
    get = _getter(env)
    # Checked in this order, so that of several bad values the first one is reported.
    token = _discord_token(get)
    openai = _openai_settings(get)
    dev_guild_id = _dev_guild_id(get)
    timeout = _openai_timeout(get)
    database = _database_url(get)
    return Settings(
        discord_bot_token=token,
        **openai,
        system_prompt=get("SYSTEM_PROMPT") or DEFAULT_SYSTEM_PROMPT,
        reply_to=word(get, "REPLY_TO", get_args(ReplyTo), "all"),
        access=_access_rules(get),
        **_limits(get),
        memory_strategy=word(get, "MEMORY_STRATEGY", get_args(MemoryStrategy), "drop"),
        reset_permission=word(
            get, "RESET_PERMISSION", get_args(ResetPermission), "manage_messages"
        ),
        dev_guild_id=dev_guild_id,
        openai_timeout=timeout,
        stream_replies=boolean(get, "STREAM_REPLIES", default=True),
        log_level=word(get, "LOG_LEVEL", get_args(LogLevel), "INFO"),
        database_url=database,
        usage_retention_days=integer(
            get,
            "USAGE_RETENTION_DAYS",
            DEFAULT_RETENTION_DAYS,
            minimum=1,
            maximum=MAX_RETENTION_DAYS,
        ),
        **{
            f"price_{kind}_per_million": price(get, f"PRICE_{kind.upper()}_PER_MILLION", MAX_PRICE)
            for kind in ("input", "output", "cached_input")
        },
        discord_api_url=http_url(get, "DISCORD_API_URL", example="http://127.0.0.1:8080"),
        **_attachment_settings(get),
        **_tool_settings(get),
        knowledge_backfill_days=integer(
            get, "KNOWLEDGE_BACKFILL_DAYS", 90, minimum=0, maximum=MAX_RETENTION_DAYS
        ),
        knowledge_retention_days=integer(
            get, "KNOWLEDGE_RETENTION_DAYS", 365, minimum=1, maximum=MAX_RETENTION_DAYS
        ),
        **_shards(get),
        health_port=port(get, "HEALTH_PORT"),
        health_host=host(get, "HEALTH_HOST", "127.0.0.1"),
    )


def _getter(env: Mapping[str, str]) -> Getter:
    """Variable name -> its stripped value in `env`, or None when unset or blank."""

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        if not value:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in a real environment variable
            raise ConfigError(f"{name} is not UTF-8 text: set it again in UTF-8.") from None
        return value

    return get


def _discord_token(get: Getter) -> str:
    """DISCORD_BOT_TOKEN, which must be set."""
    token = get("DISCORD_BOT_TOKEN")
    if token is None:
        raise ConfigError(
            "DISCORD_BOT_TOKEN is not set: copy your bot's token from the Discord Developer "
            "Portal (your application -> Bot -> Reset Token) into .env (or the environment)."
        )
    if token.lower().startswith("bot ") or any(c.isspace() for c in token):
        raise ConfigError(
            "DISCORD_BOT_TOKEN is malformed: paste only the token itself, with no 'Bot ' "
            "prefix, quotes or spaces."
        )
    require_header_safe("DISCORD_BOT_TOKEN", token, "token")
    return token


def _openai_settings(get: Getter) -> dict[str, object]:
    """OPENAI_BASE_URL, OPENAI_API_KEY (needed without a base URL), OPENAI_MODEL,
    MAX_CONTEXT_TOKENS and MAX_REPLY_TOKENS, as `Settings` fields."""
    base_url = http_url(get, "OPENAI_BASE_URL", example="http://localhost:11434/v1")
    api_key = get("OPENAI_API_KEY")
    if api_key is None and base_url is None:
        raise ConfigError(
            "OPENAI_API_KEY is not set: create a key at https://platform.openai.com/api-keys "
            "and put it in .env (or set OPENAI_BASE_URL to use a local OpenAI-compatible server)."
        )
    if api_key is not None:
        require_header_safe("OPENAI_API_KEY", api_key, "key")
    model = get("OPENAI_MODEL") or DEFAULT_MODEL
    if (problem := model_name_problem(model)) is not None:
        raise ConfigError(
            f"OPENAI_MODEL must be a model name such as {DEFAULT_MODEL}: {problem}; "
            f"got {quoted(model)}."
        )
    max_context = integer(
        get, "MAX_CONTEXT_TOKENS", 4096, minimum=MIN_PROMPT_BUDGET + 1, maximum=MAX_TOKENS
    )
    max_reply = integer(get, "MAX_REPLY_TOKENS", 1024, minimum=1, maximum=MAX_TOKENS)
    if max_context - max_reply < MIN_PROMPT_BUDGET:
        raise ConfigError(
            f"MAX_REPLY_TOKENS ({max_reply}) leaves fewer than {MIN_PROMPT_BUDGET} of "
            f"MAX_CONTEXT_TOKENS ({max_context}) for the conversation: lower MAX_REPLY_TOKENS "
            "or raise MAX_CONTEXT_TOKENS."
        )
    return {
        "openai_api_key": api_key,
        "openai_base_url": base_url,
        "openai_model": model,
        "max_context_tokens": max_context,
        "max_reply_tokens": max_reply,
    }


def _dev_guild_id(get: Getter) -> int | None:
    """DEV_GUILD_ID: one server id, or None."""
    dev_guild = id_list(get, "DEV_GUILD_ID")
    if len(dev_guild) > 1:
        raise ConfigError("DEV_GUILD_ID must be one server id.")
    return next(iter(dev_guild), None)


def _openai_timeout(get: Getter) -> float:
    """OPENAI_TIMEOUT: seconds, more than 0 and at most 600."""
    return seconds(get, "OPENAI_TIMEOUT", 60, maximum=600)


def _shards(get: Getter) -> dict[str, object]:
    """SHARD_COUNT and SHARD_IDS (which needs SHARD_COUNT), as `Settings` fields."""
    count = integer(get, "SHARD_COUNT", 0, minimum=1, maximum=MAX_SHARDS) or None
    if count is None and get("SHARD_IDS") is not None:
        raise ConfigError("SHARD_IDS needs SHARD_COUNT: set the total number of shards too.")
    ids = number_ranges(get, "SHARD_IDS", below=count or 1)
    return {"shard_count": count, "shard_ids": ids}


def _database_url(get: Getter) -> str:
    """DATABASE_URL, checked as the store will read it."""
    database = get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database.isprintable():
        raise ConfigError(
            "DATABASE_URL must be a file path or a database URL on one line, "
            f"got {quoted(database)}."
        )
    try:
        database_url(database)
    except StoreError as error:
        raise ConfigError(f"DATABASE_URL: {error}") from None
    return database


def _access_rules(get: Getter) -> AccessRules:
    """The ALLOWED_* / BLOCKED_* lists, ADMIN_USER_IDS and ALLOW_DMS."""
    return AccessRules(
        allowed_channels=id_list(get, "ALLOWED_CHANNEL_IDS"),
        blocked_channels=id_list(get, "BLOCKED_CHANNEL_IDS"),
        allowed_users=id_list(get, "ALLOWED_USER_IDS"),
        blocked_users=id_list(get, "BLOCKED_USER_IDS"),
        allowed_roles=id_list(get, "ALLOWED_ROLE_IDS"),
        blocked_roles=id_list(get, "BLOCKED_ROLE_IDS"),
        admins=id_list(get, "ADMIN_USER_IDS"),
        allow_dms=boolean(get, "ALLOW_DMS", default=True),
    )


def _limits(get: Getter) -> dict[str, object]:
    """USER_RATE_LIMIT, USER_DAILY_TOKENS, MAX_CONCURRENT_REQUESTS and
    MAX_CACHED_CHANNELS, as `Settings` fields."""
    return {
        "user_rate_limit": integer(
            get, "USER_RATE_LIMIT", 0, minimum=0, maximum=MAX_MESSAGES_PER_MINUTE
        ),
        "user_daily_tokens": integer(
            get, "USER_DAILY_TOKENS", 0, minimum=0, maximum=MAX_DAILY_TOKENS
        ),
        "max_concurrent_requests": integer(
            get, "MAX_CONCURRENT_REQUESTS", 8, minimum=1, maximum=MAX_CONCURRENT
        ),
        "max_cached_channels": integer(
            get, "MAX_CACHED_CHANNELS", 1000, minimum=1, maximum=MAX_CHANNELS_CACHED
        ),
    }


def _attachment_settings(get: Getter) -> dict[str, object]:
    """MAX_ATTACHMENT_BYTES, VISION and IMAGE_DETAIL, as `Settings` fields."""
    return {
        "max_attachment_bytes": integer(
            get,
            "MAX_ATTACHMENT_BYTES",
            DEFAULT_MAX_ATTACHMENT_BYTES,
            minimum=0,
            maximum=MAX_ATTACHMENT_BYTES,
        ),
        "vision": word(get, "VISION", get_args(Vision), "auto"),
        "image_detail": word(get, "IMAGE_DETAIL", get_args(ImageDetail), "low"),
    }


def _tool_settings(get: Getter) -> dict[str, object]:
    """MCP_CONFIG (its file read and checked now), MAX_TOOL_ROUNDS, TOOL_TIMEOUT,
    TOOL_ANSWER_TIMEOUT and APPROVAL_TIMEOUT, as `Settings` fields."""
    text = get("MCP_CONFIG")
    path = None if text is None else Path(text).expanduser()
    try:
        servers = () if path is None else read_mcp_config(path)
    except McpConfigError as error:
        raise ConfigError(f"MCP_CONFIG: {error}.") from None
    return {
        "mcp_config": path,
        "mcp_servers": servers,
        "max_tool_rounds": integer(get, "MAX_TOOL_ROUNDS", 8, minimum=1, maximum=MAX_TOOL_ROUNDS),
        "tool_timeout": seconds(get, "TOOL_TIMEOUT", 30, maximum=MAX_TOOL_SECONDS),
        "tool_answer_timeout": seconds(get, "TOOL_ANSWER_TIMEOUT", 180, maximum=MAX_TOOL_SECONDS),
        "approval_timeout": seconds(get, "APPROVAL_TIMEOUT", 300, maximum=MAX_TOOL_SECONDS),
    }
