"""Figure 11a: searching the knowledge index (issue 23) on SQLite, with permission filtering.

The corpus: `messages` synthetic chat messages (1,000,000; `--quick`: 100,000) in a
server of 200 channels and 800 threads (a fifth of the messages are in threads), the
busier channels busier (Zipf), each message 4-30 words drawn Zipf-wise from a
vocabulary of common English chat words (stop words among them) then 30,000 made-up
words, one message a minute apart in id and time order as Discord's snowflakes are.
It is built once through the store's own schema (Store.open: migration 4's tables,
indexes and FTS5 triggers) in one transaction, and cached outside the repository in
~/.cache/chatbot-bench/ under a name keyed by the schema's and this generator's
version, so a second run only searches.

The searcher may read 50 of the 200 channels and their threads (about 250 ids, the
`channel_ids` a person's permission filter gives). The queries, `queries` of them
(`--quick`: 200), cycle through a mix: a rare made-up word (found a few dozen times),
a mid-frequency word (hundreds to thousands), a very common word (found in 3-15 % of
all messages), a common and a rare word together, two mid words, a quoted phrase, and
a common word in one channel by one author. Each is `Store.search` as the tools call
it (limit 10), timed with time.perf_counter around the await, on this process's event
loop, and with time.process_time (CPU time of this process, the driver's thread
included: the work the search does, apart from waiting for a core on a shared
machine). Reported: wall-clock p50 and p99 per query (the target: p99 <= 50 ms) and CPU
p50 and p99; per kind and the load average before and after in the JSON.

The search (store/knowledge.py) ranks with bm25 only the SEARCH_CANDIDATES (500)
newest matches that pass the filters, so a common word costs a bounded scan; with
more than TAGGED_CHANNELS channels it examines first a word's SEARCH_SCAN newest
matches; a search by author or in a few channels intersects FTS5 tags instead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import os
import random
import sqlite3
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store import MIGRATIONS, Store, knowledge_query

CACHE = Path.home() / ".cache" / "chatbot-bench"
GENERATOR_VERSION = 1  # bump when the corpus below changes
CHANNELS = 200
THREADS = 800
READABLE_CHANNELS = 50
TARGET_P99_MS = 50.0
SEED = 23

# Common chat words, most frequent first (the first dozen are stop words, which the
# search leaves out, as PostgreSQL's 'english' configuration does).
COMMON = """the to i and a it is you that of in for on this we but just like so think
know deploy good build yeah test fix need release review error issue server work
thanks time today merge branch update docs config bug meeting check please change
people team data problem log client feature user version api tomorrow""".split()
MADE_UP = 30_000


@dataclass(frozen=True)
class SearchPlan:
    """Figure 11a's sizes."""

    messages: int = 1_000_000
    queries: int = 1_000


FULL = SearchPlan()
QUICK = SearchPlan(messages=100_000, queries=200)


def vocabulary() -> list[str]:
    """COMMON, then made-up words (two or three syllables), most frequent first."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    rng = random.Random(SEED)
    words: list[str] = []
    seen = set(COMMON)
    while len(words) < MADE_UP:
        word = "".join(rng.choices(syllables, k=rng.choice((2, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return [*COMMON, *words]


def corpus(count: int) -> Iterator[tuple[Any, ...]]:
    """knowledge_messages rows, oldest first."""
    rng = random.Random(SEED)
    words = vocabulary()
    word_weights = list(itertools.accumulate(1 / rank for rank in range(1, len(words) + 1)))
    places = [(c, None) for c in range(1, CHANNELS + 1)]
    threads = [(CHANNELS + t, rng.randint(1, CHANNELS)) for t in range(1, THREADS + 1)]
    place_weights = list(itertools.accumulate(1 / rank for rank in range(1, CHANNELS + 1)))
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    for n in range(count):
        if rng.random() < 0.2:
            channel, parent = rng.choice(threads)
        else:
            channel, parent = rng.choices(places, cum_weights=place_weights)[0]
        text = " ".join(rng.choices(words, cum_weights=word_weights, k=rng.randint(4, 30)))
        author = rng.randint(1, 500)
        created = (start + dt.timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S.%f")
        yield (10**12 + n, 1, channel, parent, author, f"user{author}", created, text)


def cache_path(plan: SearchPlan) -> Path:
    """The corpus file for this schema, generator and size."""
    schema = repr([m for m in MIGRATIONS if m.version == 4]).encode()
    tag = hashlib.sha256(schema + f"{GENERATOR_VERSION}:{plan.messages}".encode()).hexdigest()
    return CACHE / f"knowledge-{plan.messages}-{tag[:12]}.db"


async def build(path: Path, plan: SearchPlan) -> float:
    """Create the corpus at `path` (schema by Store.open, rows in one transaction);
    messages indexed per second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    store = await Store.open(f"sqlite:///{partial}")
    await store.close()

    def insert() -> float:
        started = time.perf_counter()
        with sqlite3.connect(partial) as conn:
            # A file nobody else has open yet: no log, no fsync, a big cache (Store.open
            # turns WAL back on when the searches start).
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA cache_size = -262144")
            conn.executemany(
                "INSERT INTO knowledge_messages (message_id, guild_id, channel_id, parent_id,"
                " author_id, author_name, created_at, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                corpus(plan.messages),
            )
        return plan.messages / (time.perf_counter() - started)

    rate = await asyncio.to_thread(insert)
    partial.rename(path)
    return rate


@dataclass(frozen=True)
class Case:
    """One query of the mix."""

    kind: str
    text: str
    author_id: int | None = None
    channel: int | None = None


def queries(plan: SearchPlan, readable: list[int]) -> list[Case]:
    """The mix, in a fixed shuffled order."""
    rng = random.Random(SEED + 1)
    words = vocabulary()
    common = [w for w in COMMON if w not in knowledge_query.STOP_WORDS]
    mid = words[len(COMMON) + 200 : len(COMMON) + 2_000]
    rare = words[len(COMMON) + 8_000 :]
    makers = [
        lambda: Case("rare word", rng.choice(rare)),
        lambda: Case("mid word", rng.choice(mid)),
        lambda: Case("common word", rng.choice(common)),
        lambda: Case("common + rare", f"{rng.choice(common)} {rng.choice(rare)}"),
        lambda: Case("two mid words", f"{rng.choice(mid)} {rng.choice(mid)}"),
        lambda: Case("phrase", f'"{rng.choice(common)} {rng.choice(common)}"'),
        lambda: Case(
            "common, one channel + author",
            rng.choice(common),
            author_id=rng.randint(1, 500),
            channel=rng.choice(readable[:READABLE_CHANNELS]),
        ),
    ]
    cases = [makers[n % len(makers)]() for n in range(plan.queries)]
    rng.shuffle(cases)
    return cases


def readable_ids(path: Path) -> list[int]:
    """50 channels of the 200 (a fixed choice) and every thread in them."""
    channels = sorted(random.Random(SEED + 2).sample(range(1, CHANNELS + 1), READABLE_CHANNELS))
    with sqlite3.connect(path) as conn:
        threads = conn.execute(
            "SELECT DISTINCT channel_id FROM knowledge_messages WHERE parent_id IN "
            f"({','.join(map(str, channels))})"
        ).fetchall()
    return [*channels, *(t for (t,) in threads)]


def percentile(samples: list[float], share: float) -> float:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[round(share * 100) - 1]


async def measure(quick: bool) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Run figure 11a: rows as (label, unit, ours, relay, target, met), and details."""
    plan = QUICK if quick else FULL
    path = cache_path(plan)
    details: dict[str, Any] = {"messages": plan.messages, "corpus": str(path)}
    if not path.exists():
        started = time.perf_counter()
        details["build_messages_per_s"] = await build(path, plan)
        details["build_s"] = time.perf_counter() - started
    readable = readable_ids(path)
    details["readable_ids"] = len(readable)
    store = await Store.open(f"sqlite:///{path}")
    details["load_average_before"] = os.getloadavg()
    try:
        times, cpu, hits = await timed_queries(store, plan, readable)
    finally:
        await store.close()
    every = [t for kind in times.values() for t in kind]
    every_cpu = [t for kind in cpu.values() for t in kind]
    p99 = percentile(every, 0.99)
    size = f"{plan.messages:,} msgs"
    rows: list[tuple[Any, ...]] = [
        (f"search {size}, 50 of 200 channels, p50", "ms", statistics.median(every)),
        (f"search {size}, 50 of 200 channels, p99", "ms", p99, None,
         f"<= {TARGET_P99_MS:.0f} ms", p99 <= TARGET_P99_MS),
        (f"search {size}, CPU per query, p50", "ms", statistics.median(every_cpu)),
        (f"search {size}, CPU per query, p99", "ms", percentile(every_cpu, 0.99)),
    ]  # fmt: skip
    details["load_average_after"] = os.getloadavg()
    details["per_kind"] = {
        kind: {
            "p50_ms": statistics.median(samples),
            "p99_ms": percentile(samples, 0.99),
            "max_ms": max(samples),
            "cpu_p50_ms": statistics.median(cpu[kind]),
            "cpu_max_ms": max(cpu[kind]),
            "queries": len(samples),
            "mean_hits": statistics.mean(hits[kind]),
        }
        for kind, samples in times.items()
    }
    return rows, details


async def timed_queries(
    store: Store, plan: SearchPlan, readable: list[int]
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[int]]]:
    """Each query's wall time and CPU time (this process's, the driver's thread
    included), in ms, and its number of hits, by kind."""
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    hits: dict[str, list[int]] = {}
    for case in queries(plan, readable)[:20]:  # warm the page cache
        await store.search(case.text, channel_ids=readable)
    for case in queries(plan, readable):
        allowed = [case.channel] if case.channel else readable
        started, cpu_started = time.perf_counter(), time.process_time()
        found = await store.search(case.text, channel_ids=allowed, author_id=case.author_id)
        cpu.setdefault(case.kind, []).append((time.process_time() - cpu_started) * 1000)
        times.setdefault(case.kind, []).append((time.perf_counter() - started) * 1000)
        hits.setdefault(case.kind, []).append(len(found))
        assert all(h.message.channel_id in allowed for h in found)
    return times, cpu, hits
