"""The bot's Prometheus series: one `Metrics` per bot, in a registry of its own.

Built in setup_hook only with HEALTH_PORT (health.py serves it at /metrics): a bot
without the port imports no prometheus_client (~4 MB) and counts nothing. Each thing is
counted where it is decided, by the object that holds this `Metrics` (`None` there
without HEALTH_PORT):

    chatbot_messages_total{outcome}          people's messages by what became of them:
        answered, remembered (only), ignored (by the access rules, or nothing to read),
        refused (a rate limit, the daily allowance, a blocked DM), failed (no answer
        shown), claimed_elsewhere (another process on the shared database claimed it
        first: operations/claims.py). Judged in bot.py's on_message; answered and
        failed where the answer ends (conversations.py), each message of a backlog
        answered at once counted.
    chatbot_answer_duration_seconds{model,outcome}   a histogram: from asking the model
        to the answer shown or failed (its retries and tool rounds included), by the
        channel's model and outcome (answered, cut_off: a stream that broke or stalled
        after some text, failed); its `_count` is the answers (answers.py).
    chatbot_tokens_total{kind}               prompt, completion and cached (of the
        prompt) tokens as charged to usage: the server's counts when it sends them.
    chatbot_model_failures_total{cause}      answers that failed, by model/failures.py's
        `Cause` (snake_case), and empty_answer for an `EmptyAnswer` it leaves unknown.
    chatbot_discord_retries_total            posts and edits tried again after a
        transient failure (discord_side/failures.py `retrying`, the one retry path).
    chatbot_store_errors_total               StoreErrors the store raised (read from
        the store at scrape time).
    chatbot_gateway_latency_seconds{shard}   heartbeat round trip per shard (read at
        scrape time; absent until the first heartbeat is acknowledged).
    chatbot_channels_in_memory               channels whose conversation is held now.
    chatbot_shard_lease_takeovers_total      shard leases this process took after
        waiting for them as a spare (operations/shards.py; read at scrape time).
    chatbot_shard_leases_lost_total          shard leases lost while held (the process
        then stops; read at scrape time). Both stay 0 without PostgreSQL.

Names follow prometheus.io's naming practices: the `chatbot_` prefix, base units
(seconds), `_total` on counters. Label values are a fixed few or model names: never a
user, channel or server id. Every fixed label value is declared at 0 from the start, so
a rate over it needs no first event.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from model.errors import EmptyAnswer
from model.failures import Cause

PREFIX = "chatbot_"
OUTCOMES = ("answered", "remembered", "ignored", "refused", "failed", "claimed_elsewhere")
TOKEN_KINDS = ("prompt", "completion", "cached")
EMPTY_ANSWER = "empty_answer"
CAUSES = (*(cause.name.lower() for cause in Cause), EMPTY_ANSWER)
# Seconds: answers take from under a second (a short reply) to the model's whole
# deadline (OPENAI_TIMEOUT, 60 s by default) and past it with tool rounds.
ANSWER_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)


def failure_cause(cause: Cause, error: BaseException) -> str:
    """The `cause` label of a failed answer: the Cause's name in snake_case, or
    empty_answer for an empty answer the classification leaves UNKNOWN."""
    if cause is Cause.UNKNOWN and isinstance(error, EmptyAnswer):
        return EMPTY_ANSWER
    return cause.name.lower()


@dataclass(frozen=True, slots=True)
class Live:
    """What is read at scrape time: the shards' latencies as (shard id, seconds), the
    channels held in memory, the store's StoreErrors so far, and the shard leases taken
    over and lost so far (none without leases)."""

    latencies: Callable[[], Iterable[tuple[int, float]]]
    channels: Callable[[], int]
    store_errors: Callable[[], int]
    lease_takeovers: Callable[[], int] = lambda: 0
    leases_lost: Callable[[], int] = lambda: 0


class LiveCollector(Collector):
    """The series read from the bot when Prometheus scrapes (`Live`)."""

    def __init__(self, live: Live) -> None:
        self.live = live

    def collect(self) -> Iterator[Metric]:
        latency = GaugeMetricFamily(
            PREFIX + "gateway_latency_seconds",
            "Gateway heartbeat round trip per shard (seconds).",
            labels=["shard"],
        )
        for shard, seconds in self.live.latencies():
            if math.isfinite(seconds):  # inf before the first ACK, nan with no socket
                latency.add_metric([str(shard)], seconds)
        yield latency
        yield GaugeMetricFamily(
            PREFIX + "channels_in_memory",
            "Channels whose conversation is held in memory now.",
            value=self.live.channels(),
        )
        for name, documentation, read in (
            (
                "store_errors",
                "Errors the store raised (a database that failed a read or write).",
                self.live.store_errors,
            ),
            (
                "shard_lease_takeovers",
                "Shard leases taken over after waiting as a spare.",
                self.live.lease_takeovers,
            ),
            (
                "shard_leases_lost",
                "Shard leases lost while held (the process then stops).",
                self.live.leases_lost,
            ),
        ):
            yield CounterMetricFamily(PREFIX + name, documentation, value=read())

    def describe(self) -> Iterator[Metric]:
        """The families without reading the bot (the registry checks names with it)."""
        nothing = Live(lambda: (), lambda: 0, lambda: 0)
        return LiveCollector(nothing).collect()


class Metrics:
    """The bot's series in `registry` (no global registry: two bots in one process,
    as in the tests, count apart). `watch` adds what is read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = self._counter(
            "messages", "People's messages by what became of them.", "outcome", OUTCOMES
        )
        self.answer_seconds = Histogram(
            PREFIX + "answer_duration_seconds",
            "Time from asking the model to the answer shown or failed, by model and outcome.",
            ["model", "outcome"],
            buckets=ANSWER_BUCKETS,
            registry=self.registry,
        )
        self.tokens = self._counter(
            "tokens", "Tokens charged to usage, by kind.", "kind", TOKEN_KINDS
        )
        self.model_failures = self._counter(
            "model_failures", "Answers that failed, by cause.", "cause", CAUSES
        )
        self.discord_retries = self._counter(
            "discord_retries", "Discord posts and edits tried again after a transient failure."
        )

    def _counter(
        self, name: str, documentation: str, label: str | None = None, values: Iterable[str] = ()
    ) -> Counter:
        """A counter `PREFIX + name` (`_total` is added), by `label` if given, with each
        of its `values` declared at 0."""
        counter = Counter(
            PREFIX + name, documentation, [label] if label else [], registry=self.registry
        )
        for value in values:
            counter.labels(value)
        return counter

    def watch(self, live: Live) -> None:
        """Read `live` at every scrape from now on."""
        self.registry.register(LiveCollector(live))

    def message(self, outcome: str, count: int = 1) -> None:
        """`count` messages had `outcome` (one of OUTCOMES)."""
        assert outcome in OUTCOMES, outcome
        self.messages.labels(outcome).inc(count)

    def judged(self, *, remember: bool, refused: bool, elsewhere: bool = False) -> None:
        """A message that is not to be answered: claimed by another process
        (`elsewhere`), else refused (the author was told why), else remembered only,
        else ignored."""
        if elsewhere:
            self.message("claimed_elsewhere")
            return
        self.message("refused" if refused else "remembered" if remember else "ignored")

    def answered(self, model: str, seconds: float, *, cut_off: bool = False) -> None:
        """An answer of `model` was shown after `seconds` (`cut_off`: only part of it)."""
        outcome = "cut_off" if cut_off else "answered"
        self.answer_seconds.labels(model, outcome).observe(seconds)

    def failed(self, model: str, seconds: float, cause: Cause, error: BaseException) -> None:
        """An answer of `model` failed after `seconds` with `error`, classified `cause`."""
        self.answer_seconds.labels(model, "failed").observe(seconds)
        self.model_failures.labels(failure_cause(cause, error)).inc()

    def charged(self, prompt: int, completion: int, cached: int) -> None:
        """Tokens charged to usage for one request of an answer."""
        for kind, tokens in zip(TOKEN_KINDS, (prompt, completion, cached), strict=True):
            self.tokens.labels(kind).inc(max(tokens, 0))

    def discord_retry(self) -> None:
        """A Discord post or edit is tried again after a transient failure."""
        self.discord_retries.inc()
