"""The Discord bot: `python bot.py` starts it.

The thin adapter between discord.py and the bot: `ChatBot` wires the client (intents,
commands, start-up, shutdown) and hands each person's message to conversations.py,
which remembers it, asks the model and posts the answer through replies.py.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable

import aiohttp
import discord
import yarl

from audience import Audience, is_conversation
from chat_model import ChatModel
from commands import COMMANDS, ChatTree
from config import ConfigError, Settings, load_settings, read_environment
from conversations import Conversations
from guards import UserLimits
from memory import PromptBuilder
from tokenizer import TokenCounter, encoding_name_for_model, load_encoding

log = logging.getLogger("chatbot")

# What the bot needs in a channel: see it, read it back (replies need this), post in
# channels and threads.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    read_message_history=True,
)


class ChatBot(discord.Client):
    """A Discord client that chats with an OpenAI model in every channel it can read."""

    def __init__(self, settings: Settings, tokenizer: Awaitable[TokenCounter]) -> None:
        """`tokenizer` may still be loading (it takes ~0.5 s): the bot connects meanwhile,
        and the conversations are opened once it is ready (`conversations()`)."""
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: must be enabled in the Developer Portal
        super().__init__(
            intents=intents,
            # Nothing the bot posts may ping anyone, whatever the model writes.
            allowed_mentions=discord.AllowedMentions.none(),
            # discord.py waits this long after the last server arrives before on_ready
            # (default 2 s). The bot needs no complete cache to answer, so don't wait long.
            guild_ready_timeout=0.5,
        )
        self.settings = settings
        self.audience = Audience(
            settings,
            UserLimits(
                settings.user_rate_limit,
                settings.user_daily_tokens,
                settings.access.admins,
                settings.max_cached_channels,
            ),
        )
        self.tokenizer = asyncio.ensure_future(tokenizer)
        self._conversations: asyncio.Task[Conversations] | None = None
        self._closing: asyncio.Task[None] | None = None
        self.tree = ChatTree(self)
        for command in COMMANDS:
            self.tree.add_command(command)

    async def setup_hook(self) -> None:
        self._conversations = asyncio.create_task(self._open_conversations())
        self._conversations.add_done_callback(self._close_if_failed)
        await self.tree.register(self.settings.dev_guild_id)

    async def conversations(self) -> Conversations:
        """The conversation layer; the first call waits for the tokenizer to load."""
        assert self._conversations is not None, "called before setup_hook"
        return await self._conversations

    async def _open_conversations(self) -> Conversations:
        counter = await self.tokenizer
        settings = self.settings
        try:
            prompts = PromptBuilder(counter, settings.system_prompt, settings.prompt_budget)
        except ValueError as error:  # the system prompt leaves no room for a conversation
            raise ConfigError(str(error)) from None
        # The model's HTTP client belongs to the running event loop, so it is made here.
        return Conversations(settings, prompts, ChatModel(settings), self.audience, self)

    def _close_if_failed(self, task: asyncio.Task[Conversations]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._closing = asyncio.create_task(self.close())

    def raise_startup_error(self) -> None:
        """Raise the `ConfigError` that stopped the bot at start-up, if one did."""
        task = self._conversations
        if task is not None and task.done() and not task.cancelled():
            if isinstance(task.exception(), ConfigError):
                raise task.exception()  # type: ignore[misc]

    async def close(self) -> None:
        if self._conversations is not None:
            if self._conversations.done() and self._conversations.exception() is None:
                await self._conversations.result().close()
            else:
                self._conversations.cancel()
        await super().close()

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info(
            "Connected as %s (id %s) to %d server(s), model %s. Invite link: %s",
            self.user,
            self.user.id,
            len(self.guilds),
            self.settings.openai_model,
            discord.utils.oauth_url(
                self.user.id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
            ),
        )

    async def on_message(self, message: discord.Message) -> None:
        if not is_conversation(message):
            return
        text = message.clean_content.strip()
        if not text:
            return  # an image or sticker alone, or content hidden without the intent
        assert self.user is not None
        verdict = self.audience.judge(message, self.user)
        if verdict.remember or verdict.notices:
            conversations = await self.conversations()
            await conversations.receive(message, text, verdict)


def point_discord_at(url: str) -> None:
    """Send discord.py's REST and gateway traffic to `url` (the test stand-in)."""
    base = yarl.URL(url)
    discord.http.Route.BASE = str(base / "api" / "v10")
    scheme = "wss" if base.scheme == "https" else "ws"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base.with_scheme(scheme) / "gateway"


async def run(settings: Settings) -> None:
    """Run the bot until it is closed by SIGINT or SIGTERM."""
    if settings.discord_api_url:
        point_discord_at(settings.discord_api_url)
    # Building the encoding takes ~0.5 s of CPU: do it in a thread while the bot connects.
    encoding_name = encoding_name_for_model(settings.openai_model)
    tokenizer = asyncio.to_thread(lambda: TokenCounter(load_encoding(encoding_name)))
    bot = ChatBot(settings, tokenizer)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.close()))
    async with bot:
        await bot.start(settings.discord_bot_token)
    bot.raise_startup_error()


def configure_logging(settings: Settings) -> None:
    discord.utils.setup_logging(level=getattr(logging, settings.log_level))
    # A text bot needs no voice: skip discord.py's start-up warnings about voice libraries.
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    if settings.log_level != "DEBUG":
        # The OpenAI SDK's HTTP library logs every request at INFO; one line per answer
        # (ours) is enough.
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)


# The one line printed for an error that stops the bot from starting.
START_UP_FAILURES = {
    discord.LoginFailure: "Discord rejected DISCORD_BOT_TOKEN: copy a fresh token from the "
    "Developer Portal (your application -> Bot -> Reset Token) into .env.",
    discord.PrivilegedIntentsRequired: "Discord refused the Message Content intent: enable "
    "MESSAGE CONTENT INTENT in the Developer Portal (your application -> Bot -> Privileged "
    "Gateway Intents).",
}


def main() -> int:
    """Start the bot; the exit status is 0 after a clean shutdown, 1 if it cannot start."""
    try:
        settings = load_settings(read_environment())
        configure_logging(settings)
        asyncio.run(run(settings))
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
    except (discord.LoginFailure, discord.PrivilegedIntentsRequired) as error:
        print(START_UP_FAILURES[type(error)], file=sys.stderr)
    except (aiohttp.ClientError, OSError) as error:
        print(f"Could not reach Discord ({error}): check the network connection.", file=sys.stderr)
    else:
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
