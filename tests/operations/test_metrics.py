"""operations/metrics.py: the series' names and labels, counting apart per bot, and what
is read at scrape time; the store's error count and health-check query it reads."""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from model.errors import DeadlinePassed, EmptyAnswer, UnreadableReply
from model.failures import Cause, classify
from operations.metrics import (
    CAUSES,
    OUTCOMES,
    TOKEN_KINDS,
    Live,
    Metrics,
    failure_cause,
)
from store import Store, StoreError

ROOT = Path(__file__).resolve().parents[2]
# The only label names: each takes a fixed few values, or a model's name.
LABELS = {"outcome", "model", "kind", "cause", "shard", "le"}


def scraped(metrics: Metrics) -> dict[str, list]:
    """The families of one scrape by name, parsed by prometheus_client's own parser
    (without the `_created` timestamps it adds to each counter and histogram)."""
    text = generate_latest(metrics.registry).decode()
    families = text_string_to_metric_families(text)
    return {family.name: family for family in families if not family.name.endswith("_created")}


def watched(
    latencies: list[tuple[int, float]] | None = None,
    channels: int = 0,
    errors: int = 0,
    leases: tuple[int, int] = (0, 0),
) -> Metrics:
    metrics = Metrics()
    metrics.watch(
        Live(
            lambda: latencies or [],
            lambda: channels,
            lambda: errors,
            lease_takeovers=lambda: leases[0],
            leases_lost=lambda: leases[1],
        )
    )
    return metrics


def test_names_follow_prometheus_conventions() -> None:
    families = scraped(watched([(0, 0.05)], channels=2, errors=1))
    assert set(families) == {
        "chatbot_messages",
        "chatbot_answer_duration_seconds",
        "chatbot_tokens",
        "chatbot_model_failures",
        "chatbot_discord_retries",
        "chatbot_store_errors",
        "chatbot_gateway_latency_seconds",
        "chatbot_channels_in_memory",
        "chatbot_shard_lease_takeovers",
        "chatbot_shard_leases_lost",
    }
    for name, family in families.items():
        assert family.documentation, name
        for sample in family.samples:
            assert set(sample.labels) <= LABELS, sample
            if family.type == "counter":
                assert sample.name in (f"{name}_total", f"{name}_created"), sample.name
    assert families["chatbot_answer_duration_seconds"].type == "histogram"
    assert families["chatbot_gateway_latency_seconds"].type == "gauge"


def test_fixed_label_values_are_there_at_zero_from_the_start() -> None:
    families = scraped(Metrics())
    by_label = {
        name: {s.labels[label]: s.value for s in families[name].samples if "_total" in s.name}
        for name, label in (
            ("chatbot_messages", "outcome"),
            ("chatbot_tokens", "kind"),
            ("chatbot_model_failures", "cause"),
        )
    }
    assert by_label["chatbot_messages"] == dict.fromkeys(OUTCOMES, 0)
    assert by_label["chatbot_tokens"] == dict.fromkeys(TOKEN_KINDS, 0)
    assert by_label["chatbot_model_failures"] == dict.fromkeys(CAUSES, 0)
    assert len(CAUSES) == len(Cause) + 1  # bounded: the classification's causes, and one


def test_each_bot_counts_in_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.message("answered", 3)
    first.judged(remember=True, refused=True)
    second.judged(remember=True, refused=False)
    second.judged(remember=False, refused=False)
    second.judged(remember=False, refused=False, elsewhere=True)
    assert first.registry.get_sample_value("chatbot_messages_total", {"outcome": "answered"}) == 3
    assert first.registry.get_sample_value("chatbot_messages_total", {"outcome": "refused"}) == 1
    assert second.registry.get_sample_value("chatbot_messages_total", {"outcome": "answered"}) == 0
    for outcome in ("remembered", "ignored"):
        labels = {"outcome": outcome}
        assert second.registry.get_sample_value("chatbot_messages_total", labels) == 1
    labels = {"outcome": "claimed_elsewhere"}  # another process's: neither ignored nor ours
    assert second.registry.get_sample_value("chatbot_messages_total", labels) == 1
    assert first.registry.get_sample_value("chatbot_messages_total", labels) == 0
    assert REGISTRY.get_sample_value("chatbot_messages_total", {"outcome": "answered"}) is None
    with pytest.raises(AssertionError):
        first.message("answered, with the user's id 1234")  # never a free-form label


def test_answers_tokens_failures_and_retries_are_counted() -> None:
    metrics = Metrics()
    metrics.answered("gpt-x", 0.3)
    metrics.answered("gpt-x", 12.0, cut_off=True)
    metrics.failed("gpt-x", 5.0, Cause.BAD_KEY, openai.OpenAIError("401"))
    metrics.charged(100, 20, 64)
    metrics.charged(-1, 5, 0)  # a server's nonsense is not subtracted
    metrics.discord_retry()
    get = metrics.registry.get_sample_value
    histogram = "chatbot_answer_duration_seconds"
    assert get(f"{histogram}_count", {"model": "gpt-x", "outcome": "answered"}) == 1
    assert get(f"{histogram}_bucket", {"model": "gpt-x", "outcome": "answered", "le": "0.5"}) == 1
    assert get(f"{histogram}_count", {"model": "gpt-x", "outcome": "cut_off"}) == 1
    assert get(f"{histogram}_sum", {"model": "gpt-x", "outcome": "failed"}) == 5.0
    assert get("chatbot_model_failures_total", {"cause": "bad_key"}) == 1
    tokens = {kind: get("chatbot_tokens_total", {"kind": kind}) for kind in TOKEN_KINDS}
    assert tokens == {"prompt": 100, "completion": 25, "cached": 64}
    assert get("chatbot_discord_retries_total") == 1


@pytest.mark.parametrize(
    ("error", "label"),
    [
        (EmptyAnswer("stop"), "empty_answer"),
        (DeadlinePassed(5, started=False), "timed_out"),
        (UnreadableReply("broken JSON"), "unreadable_reply"),
        (ConnectionResetError(), "unreachable"),
        (RuntimeError("a bug"), "unknown"),
    ],
)
def test_a_failure_s_cause_label(error: Exception, label: str) -> None:
    assert failure_cause(classify(error).cause, error) == label
    assert label in CAUSES


def test_an_empty_answer_taken_for_an_overflow_keeps_that_cause() -> None:
    assert failure_cause(Cause.CONTEXT_TOO_LONG, EmptyAnswer("stop")) == "context_too_long"


def test_what_is_read_at_scrape_time() -> None:
    latencies = [(0, 0.042), (1, math.inf), (2, math.nan)]  # shard 1: no ACK yet
    metrics = watched(latencies, channels=7, errors=2, leases=(3, 1))
    get = metrics.registry.get_sample_value
    assert get("chatbot_gateway_latency_seconds", {"shard": "0"}) == 0.042
    assert get("chatbot_gateway_latency_seconds", {"shard": "1"}) is None
    assert get("chatbot_gateway_latency_seconds", {"shard": "2"}) is None
    assert get("chatbot_channels_in_memory") == 7
    assert get("chatbot_store_errors_total") == 2
    assert get("chatbot_shard_lease_takeovers_total") == 3
    assert get("chatbot_shard_leases_lost_total") == 1
    # Without leases (SQLite: one process), both read 0.
    alone = Metrics()
    alone.watch(Live(lambda: [], lambda: 0, lambda: 0))
    assert alone.registry.get_sample_value("chatbot_shard_leases_lost_total") == 0


async def test_the_store_counts_its_errors_and_answers_a_health_check(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = await Store.open(str(path))
    try:
        await store.ping()
        assert store.failures == 0
        with sqlite3.connect(path) as other:  # the table gone under the bot's feet
            other.execute("DROP TABLE usage")
        with pytest.raises(StoreError):
            await store.tokens_on_day(1, dt.date(2026, 12, 7))
        assert store.failures == 1
        await store.ping()  # a trivial query still answers
        assert store.failures == 1
    finally:
        await store.close()


def test_a_bot_without_health_port_loads_no_prometheus_client() -> None:
    """Its memory is measured (bench figure 4): the ~4 MB come only with HEALTH_PORT."""
    probe = "import sys, bot; print(sorted(m for m in sys.modules if m.startswith('prometheus')))"
    ran = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


def test_the_metrics_know_no_discord() -> None:
    probe = "import sys, operations.metrics; print('discord' in sys.modules)"
    ran = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert ran.stdout.strip() == "False", ran.stderr
