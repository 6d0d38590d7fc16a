"""Fixtures of the OpenAI stand-in's self-tests."""

from __future__ import annotations

import openai
import pytest

from tests.standins.openai_standin import OpenAIStandIn


@pytest.fixture
async def standin():
    async with OpenAIStandIn() as server:
        yield server


@pytest.fixture
async def client(standin):
    """The real SDK pointed at the stand-in; no retries unless a test asks."""
    async with openai.AsyncOpenAI(
        base_url=standin.base_url, api_key="test", max_retries=0
    ) as sdk_client:
        yield sdk_client
