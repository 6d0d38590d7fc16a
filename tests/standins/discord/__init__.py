"""A local stand-in for Discord: REST API v10 and the gateway websocket, on 127.0.0.1.

The bot under test runs unmodified (discord.py included) and talks real HTTP and a
real websocket to this server, which holds a small fixed world: one guild with a
category, two text channels ("general", "random"), a thread in general, an
announcement channel, a voice and a stage channel (with their text chat), a
private thread the bot was added to and a forum channel ("forum"); users alice, bob
(display name "Zoë 🌟"), carol (Moderators role), other_bot and owner (owns the guild
and the app) besides the bot "ChatBot" (with its managed role), plus "user_0",
"user_1", ... made on first use; DMs made on demand. Tests drive it like people on
Discord would and inspect what the bot did::

    async with DiscordStandIn() as discord_:
        # point the bot at discord_.url (REST under /api/v10) and discord_.gateway_url
        await discord_.wait_until_ready()                # READY + GUILD_CREATE sent
        await discord_.user_says("general", "alice", "hi", mention_bot=True)
        await discord_.wait_for(lambda: discord_.bot_messages("general"))

Behaviour copied from Discord (and relied on by discord.py):

* Gateway: HELLO on connect; IDENTIFY checks the token (close 4004) and privileged
  intents (close 4014 when the portal switch is off); READY then GUILD_CREATE;
  HEARTBEAT is ACKed; RESUME is answered INVALID_SESSION (no resuming here).
  Frames are uncompressed JSON text; discord.py accepts them although it asks for
  zlib-stream. Sharding as on Discord: IDENTIFY's ``shard: [id, count]`` (none: shard
  0 of 1) picks the guilds of READY / GUILD_CREATE and the events a session is sent:
  a guild's go to shard ``(guild_id >> 22) % count``, DMs to shard 0, and every live
  session of that shard gets each one (a restarted bot's old session too, until it
  closes); an impossible shard is closed with 4010, and a session that would hold more
  than ``max_guilds_per_session`` guilds (Discord: 2,500) with 4011.
  ``add_guild("far", shard=(1, 2))`` adds a guild on a chosen shard with channels
  "far/general" and "far/random"; the fixed guild is on shard 0 of any count up to 16.
  GET /gateway/bot answers ``recommended_shards`` and ``max_concurrency`` (both
  settable). ``live_sessions`` and ``sessions_of_shard(n)`` show who is connected.
* Without the Message Content intent in IDENTIFY, guild messages arrive with empty
  content, embeds, attachments and components unless they mention the bot or are
  the bot's own; DMs keep their content. MESSAGE_CREATE also needs the
  GUILD_MESSAGES / DIRECT_MESSAGES intents.
* REST: every call needs ``Authorization: Bot <token>`` (else 401) except the
  interaction callback and webhook routes, where the token in the path is the
  credential; errors use Discord's JSON error bodies and codes; the bot's own posts
  and edits are echoed over the gateway as MESSAGE_CREATE / MESSAGE_UPDATE.
* Slash commands: ``CommandTree.sync()`` bulk-overwrites validated commands (ids kept
  by name); ``user_runs_command`` dispatches INTERACTION_CREATE for a registered one.
  The bot answers once, within 3 s (``interaction_response_deadline``; else 10062; a
  second answer 40060): type 4 posts a message (type 20; ephemeral ones, flag 64, stay
  out of the history and the gateway), type 5 posts a "thinking" message (flag 128)
  that the first followup or a PATCH of @original fills in. ``interaction_responses``
  and ``wait_for_interaction_response`` show what it answered::

      sent = await discord_.user_runs_command("general", "carol", "reset")
      answer = await discord_.wait_for_interaction_response(sent)  # content, ephemeral...

  Option autocomplete: ``user_types_option`` sends the APPLICATION_COMMAND_AUTOCOMPLETE
  interaction (type 4) for what is typed so far; the bot answers with type 8 and its
  ``choices`` (at most 25, names and string values 1-100 characters, else 50035), read
  with ``wait_for_autocomplete``.

  Buttons: a message's ``components`` are stored as sent (action rows of buttons,
  checked as Discord does) and ``press(message, custom_id or label, user)`` sends the
  MESSAGE_COMPONENT interaction (type 3: ``data.custom_id``, ``component_type`` 2, the
  presser's member or user, the message). The bot answers once: type 7 edits the
  message, 6 acknowledges it (then PATCH @original edits it), 4 posts (flag 64: only
  the presser sees it); read them with ``interaction_responses``.

Situations and faults tests can inject (each method's docstring has the details):
``fail_requests`` / ``fail_with_cloudflare_502`` / ``rate_limit`` (REST answers),
``deny`` / ``restore`` (the bot's permissions per channel), ``forbid_read`` / ``allow``
(403 / 50001 on reading a channel the bot still posts in), ``user_says(mention_roles=...)``,
``user_edits`` / ``user_deletes`` / ``bulk_delete`` (``deliver=False``: while the bot
is away), ``burst`` / ``crowd_says`` (many members at once), ``FakeAttachment`` with
``fail_downloads`` and ``downloaded`` (the CDN). Threads: the bot starts them from a
message (``POST .../messages/{id}/threads``; ``threads_in`` lists them; the thread has
the message's id), ``user_posts_in_forum`` (a post: a thread whose starter message has
its id), ``archive_thread`` / ``lock_thread`` / ``delete_thread`` (THREAD_UPDATE,
THREAD_DELETE; a person's message unarchives, a locked thread refuses the bot).

Adding a REST route: add a row to ``ROUTES`` (method, path under /api/v10, name of
a handler method), then write ``async def api_<name>(self, call: ApiCall)`` on
``RestApi`` (rest.py; ``Interactions`` and ``Commands`` hold theirs). The handler
returns the JSON body (status 200), or None for 204, or raises ``DiscordError`` (see
the ``unknown_*`` helpers). Recording and the token check happen for you. Gateway
opcodes are dispatched the same way through ``GATEWAY_OPS`` to ``Gateway._op_<name>``.

Layout: ``world`` (the state), ``messages``, ``people`` (what people do, what the bot
did), ``threads``, ``interactions``, ``commands``, ``rest``, ``gateway``, ``faults``;
``standin`` puts them together as ``DiscordStandIn``.
"""

from tests.standins.discord.errors import DiscordError
from tests.standins.discord.objects import (
    ApiCall,
    FakeAttachment,
    FakeChannel,
    FakeUser,
    InjectedFault,
)
from tests.standins.discord.protocol import ROUTES
from tests.standins.discord.standin import DiscordStandIn

__all__ = [
    "ROUTES",
    "ApiCall",
    "DiscordError",
    "DiscordStandIn",
    "FakeAttachment",
    "FakeChannel",
    "FakeUser",
    "InjectedFault",
]
