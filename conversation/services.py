"""The bot's long-lived services, built once before the gateway connects: `Services`."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import openai

from config import ConfigError, Settings
from conversation.channel_settings import ChannelSettings
from conversation.prompts import PromptBuilder, PromptBuilders
from conversation.usage import UsageLedger
from model.client import ChatModel
from store import Store, StoreError
from text.tokens import TokenCounter, TokenCounters, encoding_name_for_model
from tools.base import Toolbox

log = logging.getLogger("chatbot")

MODELS_SECONDS = 2.0  # how long a suggestion waits for the server's model list
# The most a read of the list may take: a model choice (deferred) waits this long for it.
MODELS_READ_SECONDS = 12.0
MODELS_CACHE_SECONDS = 300.0


class ModelList:
    """The model server's GET /models, cached; None when it offers none.

    Autocomplete asks at every keystroke: callers that arrive while a read is under way
    share it rather than each asking the server again. Only answers are cached (a list,
    or the server's error saying it has none): a read that timed out or could not
    connect is asked again next time."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self._read: tuple[float, list[str] | None] | None = None
        self._reading: asyncio.Task[list[str] | None] | None = None

    async def models(
        self, *, fresh: bool = False, wait: float = MODELS_SECONDS
    ) -> list[str] | None:
        """The listed model ids (cached for MODELS_CACHE_SECONDS); `fresh`: read again
        (a read already under way counts, being as fresh as any). Waits at most `wait`
        seconds (at most MODELS_READ_SECONDS count) for the server; None when it lists
        none or has not answered in time (the read goes on for the next caller)."""
        age = time.monotonic() - self._read[0] if self._read is not None else math.inf
        if self._read is not None and not fresh and age < MODELS_CACHE_SECONDS:
            return self._read[1]
        if self._reading is None:
            self._reading = asyncio.create_task(self._read_models())
            self._reading.add_done_callback(lambda _: setattr(self, "_reading", None))
        # Shielded: one caller giving up (autocomplete's deadline) ends no one's read.
        try:
            async with asyncio.timeout(wait):
                return await asyncio.shield(self._reading)
        except TimeoutError:
            return None

    async def _read_models(self) -> list[str] | None:
        try:
            async with asyncio.timeout(MODELS_READ_SECONDS):
                listed: list[str] | None = await self.model.list_models()
        except (openai.APIConnectionError, TimeoutError) as error:
            # No answer: any model name is accepted this time, and the next caller asks.
            log.info("the model list could not be read (%r): any model name is accepted", error)
            return None
        except openai.OpenAIError as error:
            log.info("the model server lists no models (%r): any model name is accepted", error)
            listed = None
        self._read = (time.monotonic(), listed or None)
        return self._read[1]


@dataclass(frozen=True, slots=True)
class Services:
    """The store (DATABASE_URL), each channel's settings, usage, the model client, its
    model list, the request builders (`prompts.default`: OPENAI_MODEL's encoding and
    SYSTEM_PROMPT) and the tools of MCP_CONFIG's servers (None without MCP_CONFIG)."""

    store: Store
    channel_settings: ChannelSettings
    usage: UsageLedger
    model: ChatModel
    model_list: ModelList
    counters: TokenCounters
    prompts: PromptBuilders
    toolbox: Toolbox | None = None

    @classmethod
    async def open(cls, settings: Settings, tokenizer: Awaitable[TokenCounter]) -> Services:
        """Open the store and, once `tokenizer` (OPENAI_MODEL's) has loaded, the rest.
        Raises ConfigError naming DATABASE_URL when the store cannot be opened or
        written, or SYSTEM_PROMPT when it leaves no room."""
        try:
            store = await Store.open(settings.database_url)
        except StoreError as error:  # not openable or not writable: stop with one line
            raise ConfigError(f"DATABASE_URL: {error}") from None
        log.info("storing settings and usage in %s", store.where)
        try:
            counter = await tokenizer
            default = PromptBuilder(counter, settings.system_prompt, settings.prompt_budget)
        except ValueError as error:  # the system prompt leaves no room for a conversation
            await store.close()
            raise ConfigError(str(error)) from None
        usage = UsageLedger(store)
        usage.start_pruning(settings.usage_retention_days)
        counters = TokenCounters({encoding_name_for_model(settings.openai_model): counter})
        # The model's HTTP client belongs to the running event loop, so it is made here.
        model = ChatModel(settings)
        try:
            toolbox = await start_toolbox(settings)
        except BaseException:
            await usage.close()
            await store.close()
            raise
        return cls(
            store=store,
            channel_settings=ChannelSettings(store, settings),
            usage=usage,
            model=model,
            model_list=ModelList(model),
            counters=counters,
            prompts=PromptBuilders(default, counters, settings),
            toolbox=toolbox,
        )

    async def close(self) -> None:
        """Stop the MCP servers (the answers that used them are over), close the model
        client, then write what usage is left, then close the store."""
        if self.toolbox is not None:
            close = getattr(self.toolbox, "close", None)  # a Toolbox need not hold servers
            if close is not None:
                await close()
        await self.model.close()
        await self.usage.close()
        await self.store.close()


async def start_toolbox(settings: Settings) -> Toolbox | None:
    """The tools of MCP_CONFIG's servers (tools.mcp.McpToolbox, each server started
    now; one that cannot start is logged and left out), or None without MCP_CONFIG.
    The MCP SDK is imported only then: a bot without tools does not pay its memory."""
    if settings.mcp_config is None:
        return None
    from tools.mcp import McpToolbox  # lazily, as said above

    return await McpToolbox.start(settings)
