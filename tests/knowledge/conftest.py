"""Fixtures of the knowledge tests: a store of each backend (tests/store/conftest.py) and
a plain discord.py client on the Discord stand-in (tests/discord_side/conftest.py)."""

from tests.discord_side.conftest import discord_client  # noqa: F401 - fixtures
from tests.postgres import own_postgres_server, postgres_server  # noqa: F401
from tests.store.conftest import store, store_url  # noqa: F401
