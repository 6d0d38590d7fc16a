"""Dates and times as both backends store them: naive UTC.

In SQLite a DATE is 'YYYY-MM-DD' text and a timestamp 'YYYY-MM-DD HH:MM:SS.ffffff' text;
in PostgreSQL they are DATE and TIMESTAMP WITHOUT TIME ZONE. Existing databases hold
exactly these encodings, so they must not change.
"""

from __future__ import annotations

import datetime as dt


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """An aware datetime as the naive UTC both backends store (SQLite has no zones)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def read_day(value: str | dt.date) -> dt.date:
    """A DATE column's value: SQLite gives back the 'YYYY-MM-DD' text it holds."""
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def read_moment(value: str | dt.datetime) -> dt.datetime:
    """A timestamp column's naive UTC value as an aware datetime (SQLite gives text)."""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=dt.UTC)
