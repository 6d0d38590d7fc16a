"""The operations tests' fixtures: stores of each backend (as the store's tests use)."""

from tests.postgres import own_postgres_server, postgres_server  # noqa: F401 - fixtures
from tests.store.conftest import store, store_url  # noqa: F401 - fixtures
