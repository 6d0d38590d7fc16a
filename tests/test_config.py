"""Settings validation: every bad value names its variable; defaults are sane."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import DEFAULT_MODEL, ConfigError, load_settings, read_environment

MINIMAL = {"DISCORD_BOT_TOKEN": "abc.def.ghi", "OPENAI_API_KEY": "sk-test"}


def test_defaults() -> None:
    settings = load_settings(MINIMAL)
    assert settings.openai_model == DEFAULT_MODEL == "gpt-5.4-mini"
    assert settings.max_context_tokens == 4096
    assert settings.prompt_budget == 4096 - settings.max_reply_tokens
    assert settings.reply_to == "all"
    assert settings.allowed_channel_ids == frozenset()
    assert 0 < settings.openai_timeout < 600
    assert settings.stream_replies is True
    assert "Discord" in settings.system_prompt
    assert settings.allow_dms is True
    assert settings.user_rate_limit == settings.user_daily_tokens == 0  # no limits
    assert settings.max_concurrent_requests == 8
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
    assert settings.allowed_channel_ids == {123, 456, 789}
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
        }
    )
    assert settings.blocked_channel_ids == {1}
    assert settings.allowed_user_ids == {2, 3}
    assert (settings.blocked_user_ids, settings.allowed_role_ids) == ({4}, {5})
    assert (settings.blocked_role_ids, settings.admin_user_ids) == ({6}, {7})
    assert settings.allow_dms is False
    assert (settings.user_rate_limit, settings.user_daily_tokens) == (6, 20000)
    assert settings.max_concurrent_requests == 2


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
