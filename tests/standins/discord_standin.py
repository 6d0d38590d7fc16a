"""The Discord stand-in under its first import path; it lives in tests/standins/discord/.

New code imports from ``tests.standins.discord``.
"""

from tests.standins.discord import (  # noqa: F401 - re-exported
    DiscordStandIn,
    FakeAttachment,
    FakeChannel,
    FakeUser,
)
