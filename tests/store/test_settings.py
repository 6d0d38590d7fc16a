"""The settings table, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from store import (
    Scope,
    Store,
)
from tests.store.helpers import (
    resolved,
)


async def test_settings_round_trip(store: Store) -> None:
    guild = Scope("guild", 10)
    before = dt.datetime.now(dt.UTC)
    await store.set_setting(guild, "model", "gpt-4o", updated_by=501)
    await store.set_setting(guild, "temperature", "0.3", updated_by=501)

    found = (await store.get_settings([guild]))[guild]
    assert {key: s.value for key, s in found.items()} == {"model": "gpt-4o", "temperature": "0.3"}
    assert found["model"].updated_by == 501
    assert found["model"].scope == guild
    assert before - dt.timedelta(seconds=1) <= found["model"].updated_at
    assert found["model"].updated_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)

    await store.set_setting(guild, "model", "o3", updated_by=None)
    changed = (await store.get_settings([guild]))[guild]["model"]
    assert (changed.value, changed.updated_by) == ("o3", None)
    assert changed.updated_at >= found["model"].updated_at

    assert await store.delete_setting(guild, "model") is True
    assert await store.delete_setting(guild, "model") is False
    assert await resolved(store, [guild]) == {"temperature": "0.3"}

    await store.set_setting(guild, "persona", "pirate")
    await store.set_setting(Scope("channel", 10), "persona", "judge")
    assert await store.clear_scope(guild) == 2
    assert await store.clear_scope(guild) == 0
    # Same id, other kind: untouched.
    assert await resolved(store, [Scope("channel", 10)]) == {"persona": "judge"}


async def test_settings_values_keep_text_exactly(store: Store) -> None:
    text = "Line one\n«quotes» 'single' \"double\" — emoji 🦜 and a % and a _"
    await store.set_setting(Scope("dm", 77), "system_prompt", text)
    assert await resolved(store, [Scope("dm", 77)]) == {"system_prompt": text}


async def test_scope_chain_most_specific_wins(store: Store) -> None:
    guild, parent, thread = Scope("guild", 1), Scope("channel", 2), Scope("channel", 3)
    await store.set_setting(guild, "model", "guild-model")
    await store.set_setting(guild, "temperature", "0.2")
    await store.set_setting(guild, "persona", "guild-persona")
    await store.set_setting(parent, "model", "parent-model")
    await store.set_setting(parent, "persona", "parent-persona")
    await store.set_setting(thread, "persona", "thread-persona")
    await store.set_setting(Scope("guild", 99), "model", "other-guild")

    assert await resolved(store, [guild, parent, thread]) == {
        "model": "parent-model",
        "temperature": "0.2",
        "persona": "thread-persona",
    }
    assert await resolved(store, [guild]) == {
        "model": "guild-model",
        "temperature": "0.2",
        "persona": "guild-persona",
    }
    everything = await store.get_settings([guild, parent, thread, Scope("dm", 5)])
    assert list(everything) == [guild, parent, thread, Scope("dm", 5)]
    assert sorted(everything[parent]) == ["model", "persona"]
    assert everything[Scope("dm", 5)] == {}
    assert await store.get_settings([]) == {}


async def test_scopes_where_a_key_has_a_value(store: Store) -> None:
    """What knowledge/offer.py reads at start-up: where knowledge is on, anywhere."""
    assert await store.scopes_where("knowledge", "on") == []
    await store.set_setting(Scope("guild", 1), "knowledge", "on")
    await store.set_setting(Scope("channel", 2), "knowledge", "on")
    await store.set_setting(Scope("channel", 3), "knowledge", "off")
    await store.set_setting(Scope("channel", 4), "persona", "on")
    found = await store.scopes_where("knowledge", "on")
    assert sorted(found) == [Scope("channel", 2), Scope("guild", 1)]
