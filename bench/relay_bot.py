"""The floor the benchmark compares the bot with: a minimal Discord -> OpenAI relay.

A `discord.Client` with the Message Content intent whose `on_message` ignores bots,
sends the message's text alone to the model and posts the first 2000 characters of
the answer as a reply. No memory, no token counting, no trimming, no splitting, no
typing indicator, no streaming: whatever the real bot spends beyond this is the price
of its features.

It runs in-process (the benchmark makes a `RelayBot`) or as a process
(`python bench/relay_bot.py`), configured by the same variables as the bot:
DISCORD_BOT_TOKEN, OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL and the test seam
DISCORD_API_URL. It deliberately imports nothing from the bot, so its memory and
start-up figures are those of discord.py and the OpenAI SDK alone.
"""

from __future__ import annotations

import logging
import os

import discord
import openai
import yarl

log = logging.getLogger("relay")

DEFAULT_MODEL = "gpt-5.4-mini"
DISCORD_MESSAGE_LIMIT = 2000
# The bot waits 0.5 s for servers before on_ready instead of discord.py's 2 s; the relay
# does the same so that launch -> on_ready compares code, not this one setting.
GUILD_READY_TIMEOUT = 0.5


class RelayBot(discord.Client):
    """Answers every human message with the model's answer to that message alone."""

    def __init__(self, model: str, openai_client: openai.AsyncOpenAI) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=GUILD_READY_TIMEOUT)
        self.model = model
        self.openai = openai_client

    async def on_ready(self) -> None:
        log.info("Connected as %s", self.user)

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        completion = await self.openai.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": message.content}]
        )
        content = completion.choices[0].message.content or ""
        await message.reply(content[:DISCORD_MESSAGE_LIMIT], mention_author=False)

    async def close(self) -> None:
        await self.openai.close()
        await super().close()


def point_discord_at(url: str) -> None:
    """Send discord.py's REST and gateway traffic to `url` (the same seam as bot.py's).

    Copied rather than imported: importing bot.py would load the bot's modules and
    tokenizer into the relay, which is the floor for memory and start-up figures.
    """
    base = yarl.URL(url)
    discord.http.Route.BASE = str(base / "api" / "v10")
    scheme = "wss" if base.scheme == "https" else "ws"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base.with_scheme(scheme) / "gateway"


def main() -> None:
    """Run the relay from environment variables until it is killed."""
    if url := os.environ.get("DISCORD_API_URL"):
        point_discord_at(url)
    client = openai.AsyncOpenAI(
        api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
    )
    relay = RelayBot(os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL, client)
    # Logging as the bot sets it up: INFO to stderr, but no line per HTTP request.
    discord.utils.setup_logging(level=logging.INFO)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    relay.run(os.environ["DISCORD_BOT_TOKEN"], log_handler=None)


if __name__ == "__main__":
    main()
