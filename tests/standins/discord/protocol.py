"""Discord's numbers and names the stand-in speaks: routes, opcodes, intents,
channel and message types, flags and permissions."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

# --------------------------------------------------------------------------------------
# Route table: (HTTP method, path under /api/v10, handler method "api_<name>").
# aiohttp tries routes in this order, so fixed paths (/users/@me) come before
# patterns that would also match them (/users/{user_id}).
# --------------------------------------------------------------------------------------
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/users/@me", "get_current_user"),
    ("POST", "/users/@me/channels", "create_dm"),
    ("GET", "/users/{user_id}", "get_user"),
    ("GET", "/gateway", "get_gateway"),
    ("GET", "/gateway/bot", "get_gateway_bot"),
    ("GET", "/oauth2/applications/@me", "get_application"),  # what discord.py calls
    ("GET", "/applications/@me", "get_application"),
    ("GET", "/guilds/{guild_id}/members/{user_id}", "get_member"),
    ("GET", "/channels/{channel_id}", "get_channel"),
    ("GET", "/channels/{channel_id}/messages", "list_messages"),
    ("GET", "/channels/{channel_id}/threads/archived/public", "list_archived_threads"),
    ("POST", "/channels/{channel_id}/messages", "create_message"),
    ("GET", "/channels/{channel_id}/messages/{message_id}", "get_message"),
    ("GET", "/channels/{channel_id}/thread-members/{user_id}", "get_thread_member"),
    (
        "GET",
        "/channels/{channel_id}/users/@me/threads/archived/private",
        "list_joined_private_archived_threads",
    ),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}", "edit_message"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}", "delete_message"),
    ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", "add_reaction"),
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads", "start_thread"),
    ("POST", "/channels/{channel_id}/typing", "trigger_typing"),
    # Application commands: bulk overwrite (what CommandTree.sync calls) and listing.
    ("GET", "/applications/{application_id}/commands", "get_global_commands"),
    ("PUT", "/applications/{application_id}/commands", "overwrite_global_commands"),
    ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", "get_guild_commands"),
    (
        "PUT",
        "/applications/{application_id}/guilds/{guild_id}/commands",
        "overwrite_guild_commands",
    ),
    # Interactions: the initial response, then the interaction webhook (no bot token).
    ("POST", "/interactions/{interaction_id}/{token}/callback", "interaction_callback"),
    ("POST", "/webhooks/{application_id}/{token}", "create_followup"),
    ("GET", "/webhooks/{application_id}/{token}/messages/{message_id}", "get_webhook_message"),
    ("PATCH", "/webhooks/{application_id}/{token}/messages/{message_id}", "edit_webhook_message"),
    (
        "DELETE",
        "/webhooks/{application_id}/{token}/messages/{message_id}",
        "delete_webhook_message",
    ),
)

ROUTE_NAMES = frozenset(name for _, _, name in ROUTES)

# Paths (under /api/v10) Discord serves without ``Authorization``: the interaction
# token in the path is the credential, and discord.py sends no bot token there.
UNAUTHENTICATED_PATHS = re.compile(r"/interactions/\d+/[^/]+/callback|/webhooks/\d+/[^/]+(/.*)?")

# Gateway opcodes the client may send -> handler method "_op_<name>".
GATEWAY_OPS: dict[int, str] = {
    1: "heartbeat",
    2: "identify",
    3: "presence_update",
    4: "voice_state_update",
    6: "resume",
    8: "request_guild_members",
}

API_PREFIX = "/api/v10"
# Attachment downloads: ``url`` is /attachments/... (cdn.discordapp.com on Discord) and
# ``proxy_url`` /media/attachments/... (media.discordapp.net).
CDN_MEDIA_PREFIX = "media"
CDN_PATHS = ("/attachments/{channel_id}/{attachment_id}/{filename}",
             "/media/attachments/{channel_id}/{attachment_id}/{filename}")  # fmt: skip
CDN_GONE = "This content is no longer available."
GATEWAY_PATH = "/gateway"
DISCORD_EPOCH_MS = 1_420_070_400_000
MAX_CONTENT_LENGTH = 2000
MAX_EMBEDS = 10

# Gateway opcodes the server sends.
OP_DISPATCH, OP_HEARTBEAT, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 0, 1, 9, 10, 11

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Application flags: the portal switches for privileged intents (unverified app).
APP_FLAG_PRESENCE_LIMITED = 1 << 13
APP_FLAG_GUILD_MEMBERS_LIMITED = 1 << 15
APP_FLAG_MESSAGE_CONTENT_LIMITED = 1 << 19

# Channel and message types.
CHANNEL_TEXT, CHANNEL_DM, CHANNEL_CATEGORY, CHANNEL_PUBLIC_THREAD = 0, 1, 4, 11
CHANNEL_VOICE, CHANNEL_ANNOUNCEMENT, CHANNEL_PRIVATE_THREAD, CHANNEL_STAGE = 2, 5, 12, 13
CHANNEL_FORUM = 15  # its posts are public threads (resources/channel#channel-object-channel-types)
VOICE_TYPES = frozenset({CHANNEL_VOICE, CHANNEL_STAGE})  # their text chat needs Connect too
THREAD_TYPES = frozenset({CHANNEL_PUBLIC_THREAD, CHANNEL_PRIVATE_THREAD})
MESSAGE_DEFAULT, MESSAGE_USER_JOIN, MESSAGE_REPLY = 0, 7, 19
MESSAGE_CHAT_INPUT_COMMAND = 20  # the message an interaction response creates

# Message flags.
FLAG_SUPPRESS_EMBEDS, FLAG_EPHEMERAL, FLAG_LOADING = 1 << 2, 1 << 6, 1 << 7
FLAG_HAS_THREAD = 1 << 5  # a thread was started from this message
MAX_THREAD_NAME = (
    100  # a thread's name: 1-100 characters (resources/channel#start-thread-from-message)
)

# Application commands and interactions.
COMMAND_CHAT_INPUT, COMMAND_USER, COMMAND_MESSAGE, COMMAND_PRIMARY_ENTRY_POINT = 1, 2, 3, 4
INTERACTION_APPLICATION_COMMAND, INTERACTION_AUTOCOMPLETE = 2, 4
INTERACTION_MESSAGE_COMPONENT = 3  # a button pressed (or a select used) on a message
CONTEXT_GUILD, CONTEXT_BOT_DM, CONTEXT_PRIVATE_CHANNEL = 0, 1, 2
CALLBACK_CHANNEL_MESSAGE, CALLBACK_DEFERRED_CHANNEL_MESSAGE = 4, 5
CALLBACK_AUTOCOMPLETE_RESULT = 8  # the only answer to an autocomplete interaction
# Only to a component interaction: acknowledge, maybe edit later (6); edit the message (7).
CALLBACK_DEFERRED_UPDATE_MESSAGE, CALLBACK_UPDATE_MESSAGE = 6, 7
# Message components (components/reference): an action row holds up to 5 buttons.
COMPONENT_ACTION_ROW, COMPONENT_BUTTON = 1, 2
BUTTON_LINK, BUTTON_PREMIUM = 5, 6  # styles without a custom_id
MAX_ROWS, MAX_ROW_BUTTONS, MAX_CUSTOM_ID, MAX_BUTTON_LABEL = 5, 5, 100, 80
MAX_CHOICE_NAME = 100  # a choice's name, and a string choice's value: 1-100 characters
OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP, OPTION_STRING, OPTION_INTEGER = 1, 2, 3, 4
OPTION_BOOLEAN, OPTION_USER, OPTION_CHANNEL, OPTION_NUMBER = 5, 6, 7, 10
SUBCOMMAND_TYPES = (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP)
COMMAND_NAME = re.compile(r"[-_'\w]{1,32}")  # Discord: [-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]
MAX_COMMANDS, MAX_OPTIONS, MAX_CHOICES = 100, 25, 25
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # interactions carry it; discord.py requires it

# Permission bits used by the fixed roles.
P_CREATE_INVITE, P_KICK, P_ADD_REACTIONS = 1 << 0, 1 << 1, 1 << 6
P_VIEW_CHANNEL, P_SEND_MESSAGES, P_MANAGE_MESSAGES = 1 << 10, 1 << 11, 1 << 13
P_EMBED_LINKS, P_ATTACH_FILES, P_READ_HISTORY = 1 << 14, 1 << 15, 1 << 16
P_MENTION_EVERYONE, P_EXTERNAL_EMOJIS, P_CONNECT, P_SPEAK = 1 << 17, 1 << 18, 1 << 20, 1 << 21
P_CHANGE_NICKNAME, P_MANAGE_THREADS, P_CREATE_PUBLIC_THREADS = 1 << 26, 1 << 34, 1 << 35
P_SEND_IN_THREADS, P_MODERATE_MEMBERS = 1 << 38, 1 << 40
P_ADMINISTRATOR, P_USE_APPLICATION_COMMANDS = 1 << 3, 1 << 31
P_SEND_TTS, P_CREATE_PRIVATE_THREADS = 1 << 12, 1 << 36
ALL_PERMISSIONS = (1 << 53) - 1
# Discord's names for the permission bits a test may deny the bot in a channel
# (https://discord.com/developers/docs/topics/permissions#permissions-bitwise-permission-flags).
PERMISSIONS: dict[str, int] = {
    "CREATE_INSTANT_INVITE": P_CREATE_INVITE,
    "ADD_REACTIONS": P_ADD_REACTIONS,
    "VIEW_CHANNEL": P_VIEW_CHANNEL,
    "SEND_MESSAGES": P_SEND_MESSAGES,
    "SEND_TTS_MESSAGES": P_SEND_TTS,
    "MANAGE_MESSAGES": P_MANAGE_MESSAGES,
    "EMBED_LINKS": P_EMBED_LINKS,
    "ATTACH_FILES": P_ATTACH_FILES,
    "READ_MESSAGE_HISTORY": P_READ_HISTORY,
    "MENTION_EVERYONE": P_MENTION_EVERYONE,
    "USE_EXTERNAL_EMOJIS": P_EXTERNAL_EMOJIS,
    "CONNECT": P_CONNECT,
    "SPEAK": P_SPEAK,
    "USE_APPLICATION_COMMANDS": P_USE_APPLICATION_COMMANDS,
    "MANAGE_THREADS": P_MANAGE_THREADS,
    "CREATE_PUBLIC_THREADS": P_CREATE_PUBLIC_THREADS,
    "CREATE_PRIVATE_THREADS": P_CREATE_PRIVATE_THREADS,
    "SEND_MESSAGES_IN_THREADS": P_SEND_IN_THREADS,
}
# Denying SEND_MESSAGES implicitly denies these too (topics/permissions#implicit-permissions).
IMPLIED_BY_SEND = P_MENTION_EVERYONE | P_SEND_TTS | P_ATTACH_FILES | P_EMBED_LINKS
OVERWRITE_ROLE, OVERWRITE_MEMBER = 0, 1
EVERYONE_PERMISSIONS = (
    P_CREATE_INVITE | P_ADD_REACTIONS | P_VIEW_CHANNEL | P_SEND_MESSAGES | P_EMBED_LINKS
    | P_ATTACH_FILES | P_READ_HISTORY | P_EXTERNAL_EMOJIS | P_CONNECT | P_SPEAK
    | P_CHANGE_NICKNAME | P_CREATE_PUBLIC_THREADS | P_SEND_IN_THREADS | P_USE_APPLICATION_COMMANDS
)  # fmt: skip
MODERATOR_PERMISSIONS = (
    P_KICK | P_MANAGE_MESSAGES | P_MENTION_EVERYONE | P_MANAGE_THREADS | P_MODERATE_MEMBERS
)
BOT_ROLE_PERMISSIONS = EVERYONE_PERMISSIONS | P_MANAGE_MESSAGES | P_MENTION_EVERYONE
# What an app may do in a DM with its bot user (app_permissions of a DM interaction).
DM_APP_PERMISSIONS = (
    P_ADD_REACTIONS | P_VIEW_CHANNEL | P_SEND_MESSAGES | P_EMBED_LINKS | P_ATTACH_FILES
    | P_READ_HISTORY | P_MENTION_EVERYONE | P_EXTERNAL_EMOJIS | P_USE_APPLICATION_COMMANDS
)  # fmt: skip

_OPEN_THREAD = {"archived": False, "locked": False}
ALL_MENTIONS: dict[str, Any] = {"parse": ["users", "roles", "everyone"]}
# What the middleware hands the route wrapper (parsed once, recorded and passed on).
BODY_KEY = web.RequestKey("discord_standin_body", object)
FILES_KEY = web.RequestKey("discord_standin_files", list)
USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
# Users made on first mention ("user_0", "user_1", ...): a crowd for load and burst tests.
CROWD_USER = re.compile(r"user_(\d+)")
