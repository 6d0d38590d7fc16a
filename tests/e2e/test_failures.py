"""API failures end to end: one clear message per failure, and the next turn works."""

from __future__ import annotations

import json

import pytest

from tests.helpers import closed_port_url, final_messages, replies
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import (
    CutStream,
    EmptyReply,
    Error,
    Garbage,
    Hang,
    NoChoices,
    OpenAIStandIn,
    Reply,
    Step,
)

# Rate limits, server errors and dropped connections are retried twice (model/retries.py).
ATTEMPTS = 3

LIMITED = {"message": "Rate limit exceeded", "code": "rate_limit_exceeded"}

FAILURES = {
    "rate limited": (Error.rate_limited(0.01, times=ATTEMPTS), "busy right now"),
    # Retry-After (30 s) past the answer's deadline (5 s): told at once, not as a timeout.
    "rate limited for longer": (Error.rate_limited(30), "busy right now"),
    "out of credit": (Error.quota_exhausted(retry_after=0.01, times=ATTEMPTS), "out of credit"),
    "server error": (Error.server_error(retry_after=0.01, times=ATTEMPTS), "internal error"),
    # Refused again after the bot shortened the history and asked once more.
    "context too long": (
        Error.context_length_exceeded(times=2),
        "too long for the model, even with older messages left out",
    ),
    "bad key": (Error.bad_auth(), "OPENAI_API_KEY"),
    "timeout": (Hang(times=ATTEMPTS), "took too long"),
    "dropped connection": (CutStream(after_chunks=0, times=ATTEMPTS), "couldn't reach"),
    "empty answer": (EmptyReply(), "empty answer"),
    "null answer": (EmptyReply(content=None), "empty answer"),
    "no choices": (NoChoices(), "empty answer"),
    "reasoning used the allowance": (
        Reply("", finish_reason="length"),
        "MAX_REPLY_TOKENS",
    ),
    # The same in a server's upper case: every comparison of reasons ignores case.
    "reasoning used the allowance, shouted": (
        Reply("", finish_reason="LENGTH"),
        "MAX_REPLY_TOKENS",
    ),
    "garbage json": (Garbage(), "couldn't read"),
    # A gateway's 200 carrying an error object (streamed: as its one event's data).
    "error in a 200": (Garbage(body=json.dumps({"error": LIMITED})), "busy right now"),
    "garbage html": (Garbage(content_type="text/html"), "couldn't read"),
}


@pytest.mark.parametrize("stream", ["false", "true"])
@pytest.mark.parametrize("failure", FAILURES)
async def test_each_failure_gets_one_clear_message_and_the_next_turn_works(
    start_bot,
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    failure: str,
    stream: str,
    caplog,
) -> None:
    step, explanation = FAILURES[failure]
    # A short timeout only where the model hangs: elsewhere it would make a slow
    # machine look like a hanging model.
    timeout = "0.5" if isinstance(step, Hang) else "5"
    await start_bot(OPENAI_TIMEOUT=timeout, STREAM_REPLIES=stream)
    openai_api.script(step)
    await discord_api.user_says("general", "alice", "first question")
    [message] = await replies(discord_api, "general")
    assert explanation in message["content"]
    assert len(message["content"]) < 200  # short; nothing raw echoed
    assert "{" not in message["content"]
    assert message["message_reference"]["message_id"]
    # A stream cut after it started is not retried by the SDK; drop unused retries.
    openai_api.clear_script()

    await discord_api.user_says("general", "alice", "second question")
    _, answer = await final_messages(discord_api, "general", 2)
    assert answer == "echo: second question"
    # The failed turn's question stays in memory; no failed answer was stored.
    last = openai_api.completions[-1]
    assert [(m["role"], m["content"]) for m in last["messages"][1:]] == [
        ("user", "first question"),
        ("user", "second question"),
    ]
    # The model service's failures, unreadable replies included, are warnings.
    assert "unexpected failure" not in caplog.text
    assert "no answer from the model" in caplog.text
    assert len(discord_api.bot_messages("general")) == 2


async def test_a_model_server_that_is_down(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(OPENAI_BASE_URL=f"{closed_port_url()}/v1")
    await discord_api.user_says("general", "alice", "anyone there?")
    [message] = await replies(discord_api, "general")
    assert "couldn't reach" in message["content"]


def test_every_step_kind_is_covered() -> None:
    kinds = {type(step) for step, _ in FAILURES.values()}
    assert kinds >= {Error, Hang, CutStream, EmptyReply, NoChoices, Garbage, Reply}
    assert all(isinstance(step, Step) for step, _ in FAILURES.values())
