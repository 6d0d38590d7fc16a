"""`DATABASE_URL` values: which backend, what its driver is given, and where the data is."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Literal

from store.errors import StoreError


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A checked `DATABASE_URL`: which backend, what its driver is given, and where."""

    backend: Literal["sqlite", "postgresql"]
    # SQLite: the database file's path. PostgreSQL: a postgresql:// URL as asyncpg reads
    # it (kept out of repr: it may hold a password).
    target: str = field(repr=False)
    # Where the data lives, for messages: the file path, or "PostgreSQL at host:port".
    where: str


def database_url(url: str) -> DatabaseURL:
    """Check a `DATABASE_URL` value and say how the store reaches it.

    Accepts 'sqlite:///relative.db', 'sqlite:////absolute.db', a bare file path
    (relative to the working directory when relative; ~ is expanded), and
    'postgresql://...' or 'postgres://...' with any '+driver' suffix (dropped: the
    store uses asyncpg, which also reads the URL's ?options, e.g. sslmode=require;
    ssl=... is taken as sslmode=...).
    Raises StoreError with a one-line reason for anything else, including in-memory
    SQLite, ?options on sqlite:// and a PostgreSQL URL whose host or port cannot be read.
    """
    text = url.strip()
    if not text:
        raise StoreError("empty: give a file path, sqlite:///path or postgresql://...")
    if "://" not in text:
        path = os.path.expanduser(text)
        return DatabaseURL("sqlite", path, path)
    scheme, rest = text.split("://", 1)
    family = scheme.split("+", 1)[0].lower()
    if family == "sqlite":
        return _sqlite_url(rest)
    if family not in ("postgres", "postgresql"):
        raise StoreError(
            f"unsupported scheme {scheme!r}: use a file path, sqlite:///path or postgresql://..."
        )
    return _postgresql_url(scheme, rest)


def _sqlite_url(rest: str) -> DatabaseURL:
    """The file of 'sqlite://' + `rest`."""
    # 'sqlite:///x' is the path 'x': anything before that third slash would be a host.
    path, _, options = rest.removeprefix("/").partition("?")
    path = urllib.parse.unquote(path)
    if not rest.startswith("/") or path in ("", ":memory:"):
        raise StoreError("sqlite:// needs a file path, e.g. sqlite:///data/bot.db")
    if options:
        # Without SQLite's URI mode they would silently become part of the file name.
        raise StoreError("sqlite:// URLs take no ?options: give the file path only")
    return DatabaseURL("sqlite", path, path)


def _postgresql_url(scheme: str, rest: str) -> DatabaseURL:
    """The server of `scheme` + '://' + `rest`, as a postgresql:// URL asyncpg reads."""
    try:
        parts = urllib.parse.urlsplit(f"postgresql://{rest}")
        host, port = parts.hostname, parts.port
    except ValueError as error:
        raise StoreError(f"cannot parse {scheme}:// URL: {error}") from None
    # asyncpg reads libpq's option names (sslmode=...), while asyncpg.connect() takes the
    # same modes as ssl=...: a URL that says ssl= means sslmode=.
    options = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "ssl" for name, _ in options):
        renamed = [("sslmode" if name == "ssl" else name, value) for name, value in options]
        parts = parts._replace(query=urllib.parse.urlencode(renamed))
    target = urllib.parse.urlunsplit(parts)
    return DatabaseURL("postgresql", target, f"PostgreSQL at {host or 'localhost'}:{port or 5432}")
