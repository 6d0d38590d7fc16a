"""The bot's settings: read once from the environment and `.env`, validated, frozen.

`load_settings` is the only place that interprets environment variables; everything
else receives the resulting `Settings`. A bad value raises `ConfigError`, whose
message names the variable and says how to fix it (bot.py prints it and exits).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar, get_args
from urllib.parse import urlsplit

from dotenv import dotenv_values

from conversation.access import AccessRules
from store import DEFAULT_RETENTION_DAYS, StoreError, database_url

DEFAULT_MODEL = "gpt-5.4-mini"
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant chatting in a Discord server. Several people may talk "
    "to you in one channel; each user message carries the speaker's name. Your replies "
    "are shown as Discord messages, which render Discord markdown (bold, italics, lists, "
    "fenced code blocks with a language tag); there are no tables or images, so keep "
    "answers concise and readable in a chat."
)
ReplyTo = Literal["all", "mention", "thread", "mention-thread"]
MemoryStrategy = Literal["drop", "summarize"]
ResetPermission = Literal["manage_messages", "everyone"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Vision = Literal["auto", "on", "off"]
ImageDetail = Literal["low", "high", "auto"]
Getter = Callable[[str], "str | None"]
Word = TypeVar("Word", bound=str)

# Every variable load_settings reads, in the order of .env.example (the tests check both).
VARIABLES = (
    "DISCORD_BOT_TOKEN",
    "OPENAI_API_KEY",
    "OPENAI_MODEL",
    "OPENAI_BASE_URL",
    "SYSTEM_PROMPT",
    "MAX_CONTEXT_TOKENS",
    "MAX_REPLY_TOKENS",
    "REPLY_TO",
    "ALLOWED_CHANNEL_IDS",
    "BLOCKED_CHANNEL_IDS",
    "ALLOWED_USER_IDS",
    "BLOCKED_USER_IDS",
    "ALLOWED_ROLE_IDS",
    "BLOCKED_ROLE_IDS",
    "ADMIN_USER_IDS",
    "ALLOW_DMS",
    "USER_RATE_LIMIT",
    "USER_DAILY_TOKENS",
    "MAX_CONCURRENT_REQUESTS",
    "MAX_CACHED_CHANNELS",
    "STREAM_REPLIES",
    "OPENAI_TIMEOUT",
    "MEMORY_STRATEGY",
    "RESET_PERMISSION",
    "DEV_GUILD_ID",
    "LOG_LEVEL",
    "MAX_ATTACHMENT_BYTES",
    "VISION",
    "IMAGE_DETAIL",
    "DATABASE_URL",
    "USAGE_RETENTION_DAYS",
    "PRICE_INPUT_PER_MILLION",
    "PRICE_OUTPUT_PER_MILLION",
    "DISCORD_API_URL",  # test seam, unset in production: not in .env.example
)

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
MAX_URL_LENGTH = 2_000  # what browsers and servers reliably take
MAX_SNOWFLAKE = 2**64 - 1  # Discord ids are unsigned 64-bit numbers, never 0
# The store's default: a SQLite file in data/ beside bot.py (git-ignored), made on first run.
DEFAULT_DATABASE_URL = str(Path(__file__).resolve().parent / "data" / "bot.db")
MAX_RETENTION_DAYS = 3_650  # ten years of daily usage rows
# No model costs anywhere near this per million tokens; a typo fails at start-up.
MAX_PRICE_PER_MILLION = 10_000.0

INTEGER = re.compile(r"-?[0-9]+")
DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
SNOWFLAKE = re.compile(r"[0-9]{1,20}")
# Straight, curly and angle quote marks, as pasted around a key (the look-alikes are the point).
QUOTES = "\"'`‘’‚‛“”„‟«»‹›"  # noqa: RUF001
# The host (a name or a bracketed IPv6 address) and port of a URL's netloc.
HOST_AND_PORT = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^\[\]:]*))(?::(?P<port>.*))?")
HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
NUMERIC_HOST = re.compile(r"[0-9.]+")
# Attachments: Discord's free upload limit is 10 MiB; no upload is larger than 1 GiB.
DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENT_BYTES = 1024 * 1024 * 1024


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
    # Channels (and users) whose state is kept in memory; idle ones beyond are let go.
    max_cached_channels: int = 1000
    memory_strategy: MemoryStrategy = "drop"
    reset_permission: ResetPermission = "manage_messages"
    dev_guild_id: int | None = None
    openai_timeout: float = 60.0
    stream_replies: bool = True
    log_level: LogLevel = "INFO"
    # Attachments (files.py): bytes downloaded per message at most; whether images go to
    # the model (auto: if the model is known to take them); the detail images are sent at.
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    vision: Vision = "auto"
    image_detail: ImageDetail = "low"
    # The store (store.py): a file path, sqlite:///path or postgresql://...
    database_url: str = DEFAULT_DATABASE_URL
    usage_retention_days: int = DEFAULT_RETENTION_DAYS  # UTC days of usage kept
    # Prices per million prompt/completion tokens, for /usage; None: no costs shown.
    price_input_per_million: float | None = None
    price_output_per_million: float | None = None
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

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        if not value:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in a real environment variable
            raise ConfigError(f"{name} is not UTF-8 text: set it again in UTF-8.") from None
        return value

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
    _require_header_safe("DISCORD_BOT_TOKEN", token, "token")

    base_url = _url(get, "OPENAI_BASE_URL", example="http://localhost:11434/v1")
    api_key = get("OPENAI_API_KEY")
    if api_key is None and base_url is None:
        raise ConfigError(
            "OPENAI_API_KEY is not set: create a key at https://platform.openai.com/api-keys "
            "and put it in .env (or set OPENAI_BASE_URL to use a local OpenAI-compatible server)."
        )
    if api_key is not None:
        _require_header_safe("OPENAI_API_KEY", api_key, "key")

    model = get("OPENAI_MODEL") or DEFAULT_MODEL
    if not model.isprintable() or any(c.isspace() for c in model):
        raise ConfigError(
            f"OPENAI_MODEL must be a model name such as {DEFAULT_MODEL}, with no spaces or "
            f"control characters, got {_quote(model)}."
        )

    max_context = _integer(
        get, "MAX_CONTEXT_TOKENS", 4096, minimum=MIN_PROMPT_BUDGET + 1, maximum=MAX_TOKENS
    )
    max_reply = _integer(get, "MAX_REPLY_TOKENS", 1024, minimum=1, maximum=MAX_TOKENS)
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
    # Plain decimals only: float() would also take 'nan', 'inf', '1_0' and '٣'.
    timeout = float(timeout_text) if DECIMAL.fullmatch(timeout_text) else math.nan
    if not 0 < timeout <= 600:
        raise ConfigError(
            f"OPENAI_TIMEOUT must be a number of seconds between 0 and 600, "
            f"got {_quote(timeout_text)}."
        )

    database = get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database.isprintable():
        raise ConfigError(
            "DATABASE_URL must be a file path or a database URL on one line, "
            f"got {_quote(database)}."
        )
    try:
        database_url(database)
    except StoreError as error:
        raise ConfigError(f"DATABASE_URL: {error}") from None

    return Settings(
        discord_bot_token=token,
        openai_api_key=api_key,
        openai_base_url=base_url,
        openai_model=model,
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
        user_rate_limit=_integer(
            get, "USER_RATE_LIMIT", 0, minimum=0, maximum=MAX_MESSAGES_PER_MINUTE
        ),
        user_daily_tokens=_integer(
            get, "USER_DAILY_TOKENS", 0, minimum=0, maximum=MAX_DAILY_TOKENS
        ),
        max_concurrent_requests=_integer(
            get, "MAX_CONCURRENT_REQUESTS", 8, minimum=1, maximum=MAX_CONCURRENT
        ),
        max_cached_channels=_integer(
            get, "MAX_CACHED_CHANNELS", 1000, minimum=1, maximum=MAX_CHANNELS_CACHED
        ),
        memory_strategy=_word(get, "MEMORY_STRATEGY", get_args(MemoryStrategy), "drop"),
        reset_permission=_word(
            get, "RESET_PERMISSION", get_args(ResetPermission), "manage_messages"
        ),
        dev_guild_id=next(iter(dev_guild), None),
        openai_timeout=timeout,
        stream_replies=_boolean(get, "STREAM_REPLIES", default=True),
        log_level=_word(get, "LOG_LEVEL", get_args(LogLevel), "INFO"),
        database_url=database,
        usage_retention_days=_integer(
            get,
            "USAGE_RETENTION_DAYS",
            DEFAULT_RETENTION_DAYS,
            minimum=1,
            maximum=MAX_RETENTION_DAYS,
        ),
        price_input_per_million=_price(get, "PRICE_INPUT_PER_MILLION"),
        price_output_per_million=_price(get, "PRICE_OUTPUT_PER_MILLION"),
        discord_api_url=_url(get, "DISCORD_API_URL", example="http://127.0.0.1:8080"),
        **_attachment_settings(get),
    )


def _attachment_settings(get: Getter) -> dict[str, object]:
    """MAX_ATTACHMENT_BYTES, VISION and IMAGE_DETAIL, as `Settings` fields."""
    return {
        "max_attachment_bytes": _integer(
            get,
            "MAX_ATTACHMENT_BYTES",
            DEFAULT_MAX_ATTACHMENT_BYTES,
            minimum=0,
            maximum=MAX_ATTACHMENT_BYTES,
        ),
        "vision": _word(get, "VISION", get_args(Vision), "auto"),
        "image_detail": _word(get, "IMAGE_DETAIL", get_args(ImageDetail), "low"),
    }


def _quote(text: str) -> str:
    """`text` as an error message shows it: quoted, escaped onto one line, cut if long."""
    return repr(text) if len(text) <= 60 else f"{text[:60]!r}..."


def _require_header_safe(name: str, secret: str, what: str) -> None:
    """Refuse a `secret` that cannot be sent in an HTTP header, without showing it.

    A header value must be printable ASCII; a key with a curly quote, a non-ASCII
    letter or a space would otherwise be accepted and then fail on every request.
    """
    if secret[0] in QUOTES or secret[-1] in QUOTES:
        raise ConfigError(
            f"{name} starts or ends with a quote mark: remove the quotes and paste only the "
            f"{what} itself."
        )
    for char in secret:
        if not "!" <= char <= "~":
            shown = "a space" if char.isspace() else f"{char!r} (U+{ord(char):04X})"
            raise ConfigError(
                f"{name} contains {shown}, which cannot be sent in an HTTP header: copy the "
                f"{what} again and paste only the {what} itself."
            )


def _url(get: Getter, name: str, *, example: str) -> str | None:
    text = get(name)
    if text is None:
        return None
    problem = _url_problem(text)
    if problem is not None:
        raise ConfigError(
            f"{name} must be an http(s) URL such as {example}, got {_quote(text)}: {problem}."
        )
    return text


def _url_problem(url: str) -> str | None:
    """What is wrong with `url` as the base URL of an HTTP API, or None if nothing."""
    if len(url) > MAX_URL_LENGTH:
        return f"it is longer than {MAX_URL_LENGTH} characters"
    # Non-ASCII hosts would need IDNA encoding, which can fail later; ask for the
    # ASCII (punycode) form instead.
    if not all("!" <= c <= "~" for c in url):
        return "it may contain only ASCII letters, digits and punctuation, and no spaces"
    try:
        parts = urlsplit(url)
    except ValueError as error:  # an unclosed '[', or brackets around a non-address
        return f"it cannot be read ({error})"
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    match = HOST_AND_PORT.fullmatch(parts.netloc.rpartition("@")[2])
    if match is None:
        return "brackets may only enclose an IPv6 address, with at most :port after it"
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return f"{match['ipv6']!r} in brackets is not an IPv6 address"
        if "%" in match["ipv6"]:  # a zone id: not every HTTP client takes one
            return "the IPv6 address may not have a zone id (%...)"
    elif not match["host"]:
        return "the host name is missing"
    elif not HOST_NAME.fullmatch(match["host"]):
        return (
            "the host must be a name of letters, digits, '-', '_' and dots, or an IP "
            "address (an IPv6 address in [brackets])"
        )
    elif NUMERIC_HOST.fullmatch(match["host"]):
        # Read as an IPv4 address by HTTP clients (httpx refuses an invalid one).
        try:
            ipaddress.IPv4Address(match["host"])
        except ValueError:
            return f"{match['host']!r} is not an IPv4 address"
    port = match["port"]
    if port is not None and not (
        port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535  # ASCII: checked above
    ):
        return f"the port must be a number from 1 to 65535, got {port!r}"
    return None


def _integer(get: Getter, name: str, default: int, *, minimum: int, maximum: int) -> int:
    text = get(name)
    if text is None:
        return default
    # Plain ASCII digits only: int() would also take '1_000', '+5' and '٣'.
    if INTEGER.fullmatch(text) is None:
        raise ConfigError(f"{name} must be a whole number, got {_quote(text)}.")
    # Every bound is below 10**18; int() would refuse more than 4,300 digits.
    too_long = len(text.lstrip("-").lstrip("0")) > 18
    if too_long or not minimum <= int(text) <= maximum:
        raise ConfigError(
            f"{name} must be a whole number from {minimum} to {maximum:,}, got {_quote(text)}."
        )
    return int(text)


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
    raise ConfigError(f"{name} must be {choices}, got {_quote(given)}.")


def _id_list(get: Getter, name: str) -> frozenset[int]:
    text = get(name)
    if text is None:
        return frozenset()
    ids = set()
    for part in text.replace(",", " ").split():
        # isdigit() alone also passes '²' and '٣', which int() then refuses or misreads.
        if not SNOWFLAKE.fullmatch(part) or not 1 <= int(part) <= MAX_SNOWFLAKE:
            raise ConfigError(
                f"{name} must be Discord ids separated by commas, got {_quote(part)} "
                "(with Developer Mode on, right-click a channel, user or role -> Copy ID)."
            )
        ids.add(int(part))
    return frozenset(ids)


def _price(get: Getter, name: str) -> float | None:
    """A price in the owner's currency per million tokens, or None when unset."""
    text = get(name)
    if text is None:
        return None
    # Plain decimals only, as for OPENAI_TIMEOUT: float() would take 'nan' and 'inf'.
    price = float(text) if DECIMAL.fullmatch(text) else math.nan
    if not 0 <= price <= MAX_PRICE_PER_MILLION:
        raise ConfigError(
            f"{name} must be a price per million tokens from 0 to {MAX_PRICE_PER_MILLION:,.0f}, "
            f"such as 0.40, got {_quote(text)}."
        )
    return price


def _boolean(get: Getter, name: str, *, default: bool) -> bool:
    text = get(name)
    if text is None:
        return default
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {_quote(text)}.")
