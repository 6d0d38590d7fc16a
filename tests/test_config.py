"""Settings validation: every bad value names its variable; defaults are sane."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import discord
import httpx2
import pytest
import yarl
from dotenv import dotenv_values
from hypothesis import given
from hypothesis import strategies as st

import config
from config import (
    DEFAULT_MODEL,
    MAX_TOKENS,
    VARIABLES,
    AccessRules,
    ConfigError,
    Settings,
    load_settings,
    read_environment,
)
from conversation.channel_settings import parse
from store import database_url
from text.setting_values import MAX_MODEL_NAME, MAX_SNOWFLAKE, QUOTES

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = {"DISCORD_BOT_TOKEN": "abc.def.ghi", "OPENAI_API_KEY": "sk-test"}
# A good value for every variable, so that a bad one put in its place is the only fault.
EVERY = {
    **MINIMAL,
    "OPENAI_MODEL": "gpt-4o",
    "OPENAI_BASE_URL": "http://localhost:11434/v1",
    "SYSTEM_PROMPT": "Be brief.",
    "MAX_CONTEXT_TOKENS": "8000",
    "MAX_REPLY_TOKENS": "500",
    "REPLY_TO": "mention",
    "ALLOWED_CHANNEL_IDS": "1",
    "BLOCKED_CHANNEL_IDS": "2",
    "ALLOWED_USER_IDS": "3",
    "BLOCKED_USER_IDS": "4",
    "ALLOWED_ROLE_IDS": "5",
    "BLOCKED_ROLE_IDS": "6",
    "ADMIN_USER_IDS": "7",
    "ALLOW_DMS": "false",
    "USER_RATE_LIMIT": "5",
    "USER_DAILY_TOKENS": "1000",
    "MAX_CONCURRENT_REQUESTS": "3",
    "MAX_CACHED_CHANNELS": "50",
    "STREAM_REPLIES": "false",
    "OPENAI_TIMEOUT": "30",
    "MEMORY_STRATEGY": "summarize",
    "RESET_PERMISSION": "everyone",
    "DEV_GUILD_ID": "8",
    "LOG_LEVEL": "DEBUG",
    "MAX_ATTACHMENT_BYTES": "1000000",
    "VISION": "on",
    "IMAGE_DETAIL": "high",
    "DATABASE_URL": "sqlite:///data/test.db",
    "USAGE_RETENTION_DAYS": "30",
    "PRICE_INPUT_PER_MILLION": "0.40",
    "PRICE_OUTPUT_PER_MILLION": "1.6",
    "PRICE_CACHED_INPUT_PER_MILLION": "0.04",
    "MCP_CONFIG": str(ROOT / "mcp.example.json"),
    "MAX_TOOL_ROUNDS": "3",
    "TOOL_TIMEOUT": "10",
    "TOOL_ANSWER_TIMEOUT": "60",
    "APPROVAL_TIMEOUT": "120",
    "KNOWLEDGE_BACKFILL_DAYS": "30",
    "KNOWLEDGE_RETENTION_DAYS": "100",
    "SHARD_COUNT": "4",
    "SHARD_IDS": "0-1,3",
    "HEALTH_PORT": "9100",
    "HEALTH_HOST": "0.0.0.0",
    "DISCORD_API_URL": "http://127.0.0.1:8080",
}


def refusal(env: dict[str, str]) -> str:
    """The message of the ConfigError that `env` raises."""
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    return str(raised.value)


def test_defaults() -> None:
    settings = load_settings(MINIMAL)
    assert settings.openai_model == DEFAULT_MODEL == "gpt-5.4-mini"
    assert settings.max_context_tokens == 4096
    assert settings.prompt_budget == 4096 - settings.max_reply_tokens
    assert settings.reply_to == "all"
    assert settings.access == AccessRules()  # everyone, everywhere, DMs too
    assert 0 < settings.openai_timeout < 600
    assert settings.stream_replies is True
    assert "Discord" in settings.system_prompt
    assert settings.user_rate_limit == settings.user_daily_tokens == 0  # no limits
    assert settings.max_concurrent_requests == 8
    assert settings.max_cached_channels == 1000
    assert settings.memory_strategy == "drop"
    assert settings.reset_permission == "manage_messages"
    assert settings.dev_guild_id is None


def test_secrets_stay_out_of_repr() -> None:
    text = repr(load_settings(MINIMAL))
    assert "abc.def.ghi" not in text and "sk-test" not in text


def test_a_local_server_needs_no_api_key() -> None:
    settings = load_settings(
        {"DISCORD_BOT_TOKEN": "t", "OPENAI_BASE_URL": "http://localhost:11434/v1"}
    )
    assert settings.openai_api_key is None
    assert settings.openai_base_url == "http://localhost:11434/v1"


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            **MINIMAL,
            "REPLY_TO": "Mention",
            "ALLOWED_CHANNEL_IDS": "123, 456 789",
            "MAX_CONTEXT_TOKENS": "8000",
            "MAX_REPLY_TOKENS": "500",
            "OPENAI_TIMEOUT": "12.5",
            "STREAM_REPLIES": "off",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.reply_to == "mention"
    assert settings.access.allowed_channels == {123, 456, 789}
    assert settings.prompt_budget == 7500
    assert settings.openai_timeout == 12.5
    assert settings.stream_replies is False
    assert settings.log_level == "DEBUG"


def test_guard_settings_are_parsed() -> None:
    settings = load_settings(
        {
            **MINIMAL,
            "BLOCKED_CHANNEL_IDS": "1",
            "ALLOWED_USER_IDS": "2,3",
            "BLOCKED_USER_IDS": "4",
            "ALLOWED_ROLE_IDS": "5",
            "BLOCKED_ROLE_IDS": "6",
            "ADMIN_USER_IDS": "7",
            "ALLOW_DMS": "no",
            "USER_RATE_LIMIT": "6",
            "USER_DAILY_TOKENS": "20000",
            "MAX_CONCURRENT_REQUESTS": "2",
            "MAX_CACHED_CHANNELS": "20",
        }
    )
    assert settings.access == AccessRules(
        blocked_channels=frozenset({1}),
        allowed_users=frozenset({2, 3}),
        blocked_users=frozenset({4}),
        allowed_roles=frozenset({5}),
        blocked_roles=frozenset({6}),
        admins=frozenset({7}),
        allow_dms=False,
    )
    assert (settings.user_rate_limit, settings.user_daily_tokens) == (6, 20000)
    assert settings.max_concurrent_requests == 2
    assert settings.max_cached_channels == 20


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "DISCORD_BOT_TOKEN"),
        ({"DISCORD_BOT_TOKEN": "   "}, "DISCORD_BOT_TOKEN"),
        ({"DISCORD_BOT_TOKEN": "Bot abc"}, "DISCORD_BOT_TOKEN"),
        ({"DISCORD_BOT_TOKEN": "t"}, "OPENAI_API_KEY"),
        ({**MINIMAL, "OPENAI_BASE_URL": "localhost:11434"}, "OPENAI_BASE_URL"),
        ({**MINIMAL, "MAX_CONTEXT_TOKENS": "lots"}, "MAX_CONTEXT_TOKENS"),
        ({**MINIMAL, "MAX_CONTEXT_TOKENS": "-5"}, "MAX_CONTEXT_TOKENS"),
        ({**MINIMAL, "MAX_REPLY_TOKENS": "4000"}, "MAX_REPLY_TOKENS"),
        ({**MINIMAL, "REPLY_TO": "everyone"}, "REPLY_TO"),
        ({**MINIMAL, "ALLOWED_CHANNEL_IDS": "general"}, "ALLOWED_CHANNEL_IDS"),
        ({**MINIMAL, "OPENAI_TIMEOUT": "0"}, "OPENAI_TIMEOUT"),
        ({**MINIMAL, "OPENAI_TIMEOUT": "nan"}, "OPENAI_TIMEOUT"),
        ({**MINIMAL, "STREAM_REPLIES": "maybe"}, "STREAM_REPLIES"),
        ({**MINIMAL, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({**MINIMAL, "BLOCKED_ROLE_IDS": "@mods"}, "BLOCKED_ROLE_IDS"),
        ({**MINIMAL, "ALLOW_DMS": "sometimes"}, "ALLOW_DMS"),
        ({**MINIMAL, "USER_RATE_LIMIT": "-1"}, "USER_RATE_LIMIT"),
        ({**MINIMAL, "USER_DAILY_TOKENS": "1e6"}, "USER_DAILY_TOKENS"),
        ({**MINIMAL, "MAX_CONCURRENT_REQUESTS": "0"}, "MAX_CONCURRENT_REQUESTS"),
        ({**MINIMAL, "MAX_CACHED_CHANNELS": "0"}, "MAX_CACHED_CHANNELS"),
        ({**MINIMAL, "MEMORY_STRATEGY": "remember-all"}, "MEMORY_STRATEGY"),
        ({**MINIMAL, "RESET_PERMISSION": "admins"}, "RESET_PERMISSION"),
        ({**MINIMAL, "DEV_GUILD_ID": "1,2"}, "DEV_GUILD_ID"),
        ({**MINIMAL, "DEV_GUILD_ID": "my-server"}, "DEV_GUILD_ID"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    message = str(raised.value)
    assert message.startswith(variable)
    assert "\n" not in message


def test_real_environment_wins_over_dotenv(tmp_path: Path, monkeypatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("OPENAI_MODEL=from-file\nSYSTEM_PROMPT='Be kind.'\n")
    monkeypatch.setenv("OPENAI_MODEL", "from-environment")
    env = read_environment(env_file)
    assert env["OPENAI_MODEL"] == "from-environment"
    assert env["SYSTEM_PROMPT"] == "Be kind."


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "REPLY_TO",
            "Everyone",
            "REPLY_TO must be one of all, mention, thread, mention-thread, got 'everyone'.",
        ),
        (
            "MEMORY_STRATEGY",
            "keep",
            "MEMORY_STRATEGY must be 'drop' or 'summarize', got 'keep'.",
        ),
        (
            "RESET_PERMISSION",
            "Admins",
            "RESET_PERMISSION must be 'manage_messages' or 'everyone', got 'admins'.",
        ),
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'."),
    ],
)
def test_a_word_setting_lists_its_choices(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**MINIMAL, variable: value})
    assert str(raised.value) == message


def test_word_settings_take_any_case() -> None:
    settings = load_settings(
        {
            **MINIMAL,
            "MEMORY_STRATEGY": "Summarize",
            "RESET_PERMISSION": "EVERYONE",
            "LOG_LEVEL": "warning",
        }
    )
    assert (settings.memory_strategy, settings.reset_permission) == ("summarize", "everyone")
    assert settings.log_level == "WARNING"


# --- Every setting is checked at start-up ----------------------------------------------


def test_every_variable_is_listed_and_read() -> None:
    read: list[str] = []

    class Recording(dict):
        def get(self, name, default=None):
            read.append(name)
            return super().get(name, default)

    load_settings(Recording(EVERY))
    assert sorted(set(read)) == sorted(VARIABLES) == sorted(EVERY)


def test_the_example_env_lists_every_setting_at_its_default() -> None:
    example_env = dotenv_values(ROOT / ".env.example")
    assert list(example_env) == [v for v in VARIABLES if v != "DISCORD_API_URL"]
    filled = {k: v for k, v in example_env.items() if v} | MINIMAL
    assert load_settings(filled) == load_settings(MINIMAL)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALLOWED_USER_IDS", "²"),  # str.isdigit() says yes; int() refuses it
        ("BLOCKED_CHANNEL_IDS", "12, ٣٤"),  # int() would read Arabic-Indic digits
        ("ADMIN_USER_IDS", "0"),
        ("ALLOWED_ROLE_IDS", str(MAX_SNOWFLAKE + 1)),
        ("BLOCKED_USER_IDS", "9" * 5000),  # more digits than int() converts
        ("DEV_GUILD_ID", "\uff11\uff12\uff13"),  # fullwidth digits
    ],
)
def test_ids_must_be_discord_snowflakes(variable: str, value: str) -> None:
    message = refusal({**MINIMAL, variable: value})
    assert message.startswith(f"{variable} must be Discord ids")
    assert len(message) < 300  # junk is shown cut short


def test_the_largest_snowflake_is_an_id() -> None:
    settings = load_settings({**MINIMAL, "ALLOWED_USER_IDS": f"1, {MAX_SNOWFLAKE}"})
    assert settings.access.allowed_users == {1, MAX_SNOWFLAKE}


@pytest.mark.parametrize("variable", ["OPENAI_BASE_URL", "DISCORD_API_URL"])
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1", "cannot be read"),  # urlsplit raises ValueError
        ("http://::1]:8080/", "cannot be read"),
        ("http://[::1]x/", "brackets"),
        ("http://[not:an:address]/", "cannot be read"),
        ("http://[fe80::1%25eth0]/", "zone id"),
        ("http://localhost:65536/v1", "port"),
        ("http://localhost:0/v1", "port"),
        ("http://localhost:/v1", "port"),
        ("http://localhost:80a/v1", "port"),
        ("http://localhost:1:2/v1", "port"),
        ("http://my host/v1", "no spaces"),
        ("http://local\thost/v1", "no spaces"),  # urlsplit would silently drop a tab
        ("http://héllo.example/v1", "ASCII"),
        ("http://1.2.3.999/v1", "not an IPv4 address"),
        ("http://loc@lhost!/v1", "host must be"),
        ("http:///v1", "host name is missing"),
        ("ws://localhost:8080", "http:// or https://"),
        ("localhost:11434", "http:// or https://"),
        ("http://localhost/" + "v" * 2000, "longer than"),
    ],
)
def test_urls_are_checked_whole(variable: str, url: str, problem: str) -> None:
    message = refusal({**EVERY, variable: url})
    assert message.startswith(f"{variable} must be an http(s) URL")
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/v1",
        "http://[::1]:11434/v1",
        "http://user:secret@my_server.lan:8080/v1/",
        "http://192.168.1.10:1",
        "HTTP://LOCALHOST:65535",
    ],
)
def test_good_urls_are_kept_as_given(url: str) -> None:
    settings = load_settings({**EVERY, "OPENAI_BASE_URL": url, "DISCORD_API_URL": url})
    assert settings.openai_base_url == settings.discord_api_url == url


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_CONTEXT_TOKENS", "1" + "0" * 30),
        ("MAX_CONTEXT_TOKENS", str(MAX_TOKENS + 1)),
        ("MAX_CONTEXT_TOKENS", "9" * 5000),
        ("MAX_CONTEXT_TOKENS", "-" + "9" * 5000),
        ("MAX_CONTEXT_TOKENS", "8_000"),
        ("MAX_CONTEXT_TOKENS", "+8000"),
        ("MAX_CONTEXT_TOKENS", "٨٠٠٠"),
        ("MAX_CONTEXT_TOKENS", "8000.0"),
        ("MAX_REPLY_TOKENS", "99999999999"),
        ("USER_RATE_LIMIT", "1001"),
        ("USER_DAILY_TOKENS", "1000000001"),
        ("MAX_CONCURRENT_REQUESTS", "1001"),
        ("MAX_CACHED_CHANNELS", "1000001"),
    ],
)
def test_whole_numbers_are_plain_digits_within_bounds(variable: str, value: str) -> None:
    message = refusal({**MINIMAL, variable: value})
    assert message.startswith(f"{variable} must be a whole number")
    assert len(message) < 300


def test_the_bounds_themselves_are_accepted() -> None:
    settings = load_settings(
        {
            **MINIMAL,
            "MAX_CONTEXT_TOKENS": str(MAX_TOKENS),
            "MAX_REPLY_TOKENS": "0100",
            "USER_RATE_LIMIT": "1000",
            "USER_DAILY_TOKENS": "1000000000",
            "MAX_CONCURRENT_REQUESTS": "1000",
            "MAX_CACHED_CHANNELS": "1000000",
        }
    )
    assert (settings.max_context_tokens, settings.max_reply_tokens) == (MAX_TOKENS, 100)
    assert settings.user_daily_tokens == 1_000_000_000
    assert settings.max_cached_channels == 1_000_000


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "DISCORD_BOT_TOKEN"])
@pytest.mark.parametrize(
    ("secret", "hint"),
    [
        ("“sk-abc123”", "quote"),
        ('"sk-abc123"', "quote"),
        ("'sk-abc123'", "quote"),
        ("sk-abc123\u2019", "quote"),
        ("sk-äbc123", "U+00E4"),
        ("sk-abc\u200b123", "U+200B"),  # zero-width space, invisible when pasted
        ("sk-abc\x7f123", "U+007F"),
        ("sk-abc\x00123", "U+0000"),
    ],
)
def test_secrets_must_fit_in_an_http_header(variable: str, secret: str, hint: str) -> None:
    message = refusal({**MINIMAL, variable: secret})
    assert message.startswith(variable)
    assert hint in message
    assert "abc" not in message  # the secret itself is never shown


def test_an_api_key_with_a_space_is_refused() -> None:
    message = refusal({**MINIMAL, "OPENAI_API_KEY": "sk-abc 123"})
    assert message.startswith("OPENAI_API_KEY contains a space")


@pytest.mark.parametrize("model", ["gpt 4o", "gpt-4o\x00", "gpt\u200b4o", "gpt-4o\u2028mini"])
def test_a_model_name_is_printable_without_spaces(model: str) -> None:
    assert refusal({**MINIMAL, "OPENAI_MODEL": model}).startswith("OPENAI_MODEL must be")


@pytest.mark.parametrize("timeout", ["inf", "-inf", "nan", "infinity", "1e1", "1_0", "٣", "600.01"])
def test_a_timeout_is_a_plain_number_of_seconds(timeout: str) -> None:
    message = refusal({**MINIMAL, "OPENAI_TIMEOUT": timeout})
    assert message.startswith("OPENAI_TIMEOUT must be a number of seconds")


def test_text_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    # os.environ carries undecodable bytes as lone surrogates.
    assert refusal({**MINIMAL, "SYSTEM_PROMPT": "caf\udce9"}).startswith("SYSTEM_PROMPT")
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"SYSTEM_PROMPT=caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_environment(env_file)


def test_an_unreadable_dotenv_is_a_config_error(tmp_path: Path, monkeypatch) -> None:
    def refuse(path: Path, encoding: str) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(config, "dotenv_values", refuse)  # root could read a chmod 000 file
    with pytest.raises(ConfigError, match=r"\.env cannot be read: Permission denied\."):
        read_environment(tmp_path / ".env")


# Pieces of the junk that broke the bot or could: unicode digits, huge numbers, control
# characters, brackets, quotes, URL parts, lone surrogates.
FRAGMENTS = [
    "0", "1", "9", "²", "٣", "\uff11", "_", "+", "-", ".", ",", " ", "\t", "\n", "\x00", "\x7f",
    "\u200b", "\u2028", "\udc80", "[", "]", ":", "/", "@", "%", "'", '"', "“", "”", "e",
    "nan", "inf", "http://", "https://", "ws://", "localhost", "::1", "Bot ", "true", "é",
    "18446744073709551616", "65536", "DEBUG", "summarize",
]  # fmt: skip
JUNK = st.one_of(
    st.text(),
    st.integers().map(str),
    st.integers(min_value=0, max_value=6000).map(lambda n: "9" * n),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3))).map("".join),
)
# Junk shaped like a URL or a secret, for the settings that are one: mostly right, so
# that the part that is wrong gets through the checks before it.
URL_JUNK = st.tuples(
    st.one_of(st.just("http://"), st.sampled_from(["https://", "HTTP://", "ws://", "http:", ""])),
    st.sampled_from(["", "user:pw@", "@"]),
    st.one_of(
        st.sampled_from(
            "localhost,[::1],[::1,::1],[::1]x,[fe80::1%eth0],1.2.3.4,1.2.3.999,999,a.1,"
            "my host,h\u00e9llo,a..b,-,_,".split(",")
        ),
        st.lists(st.integers(0, 999).map(str), min_size=4, max_size=4).map(".".join),
        st.text(max_size=4),
    ),
    st.one_of(
        st.just(""),
        st.integers(min_value=-1, max_value=70_000).map(lambda n: f":{n}"),
        st.integers().map(lambda n: f":{n}"),
        st.text(max_size=4).map(lambda t: f":{t}"),
    ),
    st.sampled_from(["", "/", "/v1", "/v1?x=1#y", "/\\^{}|", "/v1 x"]),
).map("".join)
QUOTE_OR_NOT = st.one_of(st.just(""), st.sampled_from(QUOTES))
SECRET_JUNK = st.tuples(QUOTE_OR_NOT, st.text(st.characters(codec="ascii")), QUOTE_OR_NOT)
SHAPED = {
    "OPENAI_BASE_URL": URL_JUNK,
    "DISCORD_API_URL": URL_JUNK,
    "OPENAI_API_KEY": SECRET_JUNK.map("".join),
    "DISCORD_BOT_TOKEN": SECRET_JUNK.map("".join),
}


def assert_usable(settings: Settings) -> None:
    """What the bot relies on from every accepted setting, checked with the libraries
    that will use each value."""
    for url in (settings.openai_base_url, settings.discord_api_url):
        if url is not None:
            assert httpx2.URL(url).scheme in ("http", "https")  # the OpenAI SDK's client
            port = yarl.URL(url).explicit_port  # discord.py's, via point_discord_at
            assert port is None or 1 <= port <= 65535
    for secret in (settings.discord_bot_token, settings.openai_api_key or "sk"):
        assert httpx2.Headers({"Authorization": f"Bearer {secret}"})["authorization"]
        assert secret.isascii() and secret.isprintable() and " " not in secret
        assert secret[0] not in QUOTES and secret[-1] not in QUOTES
    assert settings.openai_model.isprintable() and not settings.openai_model.isspace()
    settings.system_prompt.encode("utf-8")
    assert settings.prompt_budget >= 256 and settings.max_context_tokens <= MAX_TOKENS
    assert math.isfinite(settings.openai_timeout) and 0 < settings.openai_timeout <= 600
    access = settings.access
    ids = [*access.allowed_channels, *access.blocked_channels, *access.allowed_users]
    ids += [*access.blocked_users, *access.allowed_roles, *access.blocked_roles]
    ids += [*access.admins, settings.dev_guild_id or 1]
    assert all(1 <= i <= MAX_SNOWFLAKE for i in ids)
    assert database_url(settings.database_url).backend in ("sqlite", "postgresql")
    assert settings.database_url.isprintable() and 1 <= settings.usage_retention_days <= 3650
    for price in (settings.price_input_per_million, settings.price_output_per_million):
        assert price is None or (math.isfinite(price) and price >= 0)
    assert 1 <= settings.max_tool_rounds <= 50
    for seconds in (settings.tool_timeout, settings.tool_answer_timeout):
        assert math.isfinite(seconds) and 0 < seconds <= 3600
    assert math.isfinite(settings.approval_timeout) and 0 < settings.approval_timeout <= 3600
    assert (settings.mcp_config is None) == (settings.mcp_servers == ())


@pytest.mark.parametrize("variable", VARIABLES)
@given(data=st.data())
def test_junk_in_any_setting_is_accepted_usable_or_named(
    variable: str, data: st.DataObject
) -> None:
    junk = data.draw(SHAPED.get(variable, st.nothing()) | JUNK, label=variable)
    try:
        settings = load_settings({**EVERY, variable: junk})
    except ConfigError as error:
        message = str(error)
        assert variable in message
        assert "\n" not in message and "\r" not in message
    else:
        assert_usable(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALLOWED_CHANNEL_IDS", "²"),
        ("OPENAI_BASE_URL", "http://[::1"),
        ("MCP_CONFIG", "mcp.json"),  # malformed, below
    ],
)
def test_bot_py_prints_one_line_for_a_bad_setting(
    tmp_path: Path, variable: str, value: str
) -> None:
    # A closed local port for Discord, so that a setting wrongly accepted cannot reach out.
    dotenv = {**MINIMAL, "DISCORD_API_URL": "http://127.0.0.1:9", variable: value}
    (tmp_path / "mcp.json").write_text('{"mcpServers": [')
    (tmp_path / ".env").write_text(
        "".join(f"{k}={v}\n" for k, v in dotenv.items()), encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "bot.py")],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"Configuration error: {variable}")


def test_attachment_settings() -> None:
    defaults = load_settings(MINIMAL)
    assert defaults.max_attachment_bytes == 10 * 1024 * 1024
    assert (defaults.vision, defaults.image_detail) == ("auto", "low")
    settings = load_settings(
        {**MINIMAL, "MAX_ATTACHMENT_BYTES": "0", "VISION": "Off", "IMAGE_DETAIL": "HIGH"}
    )
    assert settings.max_attachment_bytes == 0  # no file is downloaded
    assert (settings.vision, settings.image_detail) == ("off", "high")
    for env, variable in [
        ({"MAX_ATTACHMENT_BYTES": "10MB"}, "MAX_ATTACHMENT_BYTES"),
        ({"MAX_ATTACHMENT_BYTES": "-1"}, "MAX_ATTACHMENT_BYTES"),
        ({"VISION": "maybe"}, "VISION"),
        ({"IMAGE_DETAIL": "medium"}, "IMAGE_DETAIL"),
    ]:
        with pytest.raises(ConfigError, match=f"^{variable} "):
            load_settings({**MINIMAL, **env})


def test_store_settings_default_to_a_file_beside_the_bot_and_are_checked() -> None:
    settings = load_settings(MINIMAL)
    assert settings.database_url == str(ROOT / "data" / "bot.db")
    assert settings.usage_retention_days == 90
    assert settings.price_input_per_million is settings.price_output_per_million is None
    chosen = load_settings(EVERY)
    assert chosen.database_url == "sqlite:///data/test.db"
    assert (chosen.price_input_per_million, chosen.price_output_per_million) == (0.4, 1.6)
    assert refusal({**MINIMAL, "DATABASE_URL": "mysql://db/bot"}) == (
        "DATABASE_URL: unsupported scheme 'mysql': use a file path, sqlite:///path or "
        "postgresql://..."
    )
    assert "from 0 to 10,000" in refusal({**MINIMAL, "PRICE_OUTPUT_PER_MILLION": "inf"})
    assert "from 1 to 3,650" in refusal({**MINIMAL, "USAGE_RETENTION_DAYS": "0"})


# --- Tools ---------------------------------------------------------------------------


def test_tool_settings_default_to_no_servers_and_sane_limits() -> None:
    settings = load_settings(MINIMAL)
    assert settings.mcp_config is None and settings.mcp_servers == ()
    assert settings.max_tool_rounds == 8
    assert (settings.tool_timeout, settings.tool_answer_timeout) == (30, 180)
    assert settings.approval_timeout == 300
    chosen = load_settings(EVERY)
    assert chosen.mcp_config == ROOT / "mcp.example.json"
    assert [server.name for server in chosen.mcp_servers] == ["time", "files", "docs"]
    assert (chosen.max_tool_rounds, chosen.tool_timeout) == (3, 10)
    assert (chosen.tool_answer_timeout, chosen.approval_timeout) == (60, 120)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MAX_TOOL_ROUNDS", "0", "MAX_TOOL_ROUNDS must be a whole number from 1 to 50, got '0'."),
        ("MAX_TOOL_ROUNDS", "51", "MAX_TOOL_ROUNDS must be a whole number from 1 to 50, got '51'."),
        (
            "TOOL_TIMEOUT",
            "0",
            "TOOL_TIMEOUT must be a number of seconds between 0 and 3600, got '0'.",
        ),
        (
            "TOOL_ANSWER_TIMEOUT",
            "2h",
            "TOOL_ANSWER_TIMEOUT must be a number of seconds between 0 and 3600, got '2h'.",
        ),
        (
            "APPROVAL_TIMEOUT",
            "3601",
            "APPROVAL_TIMEOUT must be a number of seconds between 0 and 3600, got '3601'.",
        ),
    ],
)
def test_tool_limits_are_checked(variable: str, value: str, message: str) -> None:
    assert refusal({**MINIMAL, variable: value}) == message


def test_the_mcp_config_file_is_read_and_checked_at_start_up(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    assert refusal({**MINIMAL, "MCP_CONFIG": str(missing)}) == (
        f"MCP_CONFIG: {missing} does not exist."
    )
    assert refusal({**MINIMAL, "MCP_CONFIG": str(tmp_path)}).startswith(
        f"MCP_CONFIG: {tmp_path} cannot be read ("
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"mcpServers": {"time": {"command": "x",}}}')
    assert refusal({**MINIMAL, "MCP_CONFIG": str(broken)}).startswith(
        f"MCP_CONFIG: {broken} is not valid JSON at line 1: "
    )
    no_command = tmp_path / "no-command.json"
    no_command.write_text('{"mcpServers": {"time": {"args": ["x"]}}}')
    assert refusal({**MINIMAL, "MCP_CONFIG": str(no_command)}) == (
        f'MCP_CONFIG: {no_command}: server "time" needs a "command" (a local server) or a '
        '"url" (a remote one).'
    )
    good = tmp_path / "good.json"
    good.write_text('{"mcpServers": {"time": {"command": "mcp-server-time"}}}')
    settings = load_settings({**MINIMAL, "MCP_CONFIG": str(good)})
    assert settings.mcp_config == good
    assert [(s.name, s.command) for s in settings.mcp_servers] == [("time", "mcp-server-time")]


def test_a_model_name_the_store_cannot_keep_usage_for_is_refused_at_start_up() -> None:
    too_long = "org/" + "m" * (MAX_MODEL_NAME - 3)
    message = refusal({**MINIMAL, "OPENAI_MODEL": too_long})
    assert message.startswith("OPENAI_MODEL must be a model name such as")
    assert f"at most {MAX_MODEL_NAME} characters" in message and "has 201" in message
    assert "\n" not in message
    longest = "org/" + "m" * (MAX_MODEL_NAME - 4)
    assert load_settings({**MINIMAL, "OPENAI_MODEL": longest}).openai_model == longest


def test_start_up_and_slash_settings_refuse_a_model_name_with_the_same_words() -> None:
    too_long = "m" * (MAX_MODEL_NAME + 1)
    with pytest.raises(ValueError) as refused_by_command:
        parse("model", too_long)
    assert str(refused_by_command.value) in refusal({**MINIMAL, "OPENAI_MODEL": too_long})


# --- Knowledge, shards and health --------------------------------------------------------


def test_knowledge_shard_and_health_settings() -> None:
    settings = load_settings(EVERY)
    assert (settings.knowledge_backfill_days, settings.knowledge_retention_days) == (30, 100)
    assert (settings.shard_count, settings.shard_ids) == (4, (0, 1, 3))
    assert (settings.health_port, settings.health_host) == (9100, "0.0.0.0")
    defaults = load_settings(MINIMAL)
    assert (defaults.shard_count, defaults.shard_ids, defaults.health_port) == (None, None, None)
    assert (defaults.knowledge_backfill_days, defaults.knowledge_retention_days) == (90, 365)
    assert defaults.health_host == "127.0.0.1"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"SHARD_IDS": "0"}, "SHARD_IDS needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "2"}, "SHARD_IDS must name numbers from 0 to 1"),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "3-1"},
            "SHARD_IDS has a range that runs backwards: write '1-3'",
        ),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "a"}, "SHARD_IDS must be numbers or ranges"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "1-"}, "SHARD_IDS must be numbers or ranges"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "9" * 5000}, "SHARD_IDS must be numbers or ranges"),
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT must be a whole number from 1"),
        ({"HEALTH_PORT": "70000"}, "HEALTH_PORT must be a whole number from 1 to 65,535"),
        ({"HEALTH_HOST": "not a host"}, "HEALTH_HOST must be an IP address or host name"),
        ({"KNOWLEDGE_RETENTION_DAYS": "0"}, "KNOWLEDGE_RETENTION_DAYS must be a whole number"),
    ],
)
def test_bad_knowledge_shard_and_health_settings_are_named(env: dict[str, str], words: str) -> None:
    assert words in refusal(MINIMAL | env)


def test_a_missing_or_rejected_token_says_where_settings_come_from() -> None:
    # In a container the settings come from the environment, not a .env file.
    with pytest.raises(ConfigError) as raised:
        load_settings({"OPENAI_API_KEY": "sk-test"})
    assert str(raised.value).endswith("into .env (or the environment).")
    from operations.process import START_UP_FAILURES

    assert START_UP_FAILURES[discord.LoginFailure].endswith("into .env (or the environment).")
