"""A burst: messages in many channels at once are answered a few channels at a time
(conversation/in_flight.py's TURNS_AT_ONCE), each answered, each in its own channel."""

from __future__ import annotations

import asyncio

import pytest

from conversation import in_flight
from tests.helpers import replies
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply

CHANNELS = 6


@pytest.mark.discord_world(extra_text_channels=CHANNELS)
async def test_a_burst_takes_a_few_turns_at_once_and_answers_every_channel(
    start_bot,
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(in_flight, "TURNS_AT_ONCE", 2)
    await start_bot()
    for c in range(CHANNELS):
        openai_api.script(Reply(f"answer {c}", delay=0.3))
    await asyncio.gather(
        *(discord_api.user_says(f"channel-{c}", "alice", f"hello {c}") for c in range(CHANNELS))
    )
    answers = [await replies(discord_api, f"channel-{c}") for c in range(CHANNELS)]
    assert all(len(answer) == 1 for answer in answers)

    # At most two model requests were open at any time, and the bound was reached.
    spans = [(r.at, r.finished_at) for r in openai_api.requests if r.finished_at is not None]
    assert len(spans) == CHANNELS
    open_at = [sum(1 for s, f in spans if s <= at < f) for at, _ in spans]
    assert max(open_at) == 2
