"""Figure 12: what a real llama.cpp server evaluates per answer, trimmed in steps or not.

Our bot in-process (as figure 10), pointed at a real llama-cpp-python server
(tests/llama_server.py: a tiny random-weights model, n_ctx 2048, one thread, answers of
about four tokens with an end-of-turn bias of 2.0, so the time is the prompt's). Two
people take turns in one channel, each message (~120 characters, ~110 of the model's
tokens) answered before the next, not streamed (llama-cpp-python sends no usage when
streaming, and the bot aims its budget at the server's own count, learnt from usage).
The same conversation twice in one run, against one server: trimmed in steps
(memory.LOW_MARK as shipped) and one turn at a time, as before (memory.LOW_MARK = 1.0).

MAX_CONTEXT_TOKENS is 1,536 with MAX_REPLY_TOKENS 64: once calibrated, prompts reach
about 0.9 x 1,472 = ~1,300 of the server's tokens, within its 2,048 with room for the
answer, and 40 turns of ~115 tokens (message and answer) fill that after about 12
turns and then, trimmed in steps, take a step every four turns or so: several steps
in one run. A larger window would leave too few steps in 40 turns; a much smaller one
would step every turn or two.

From the server's own log (verbose: "N prefix-match hit, remaining M prompt tokens to
eval" and llama.cpp's "prompt eval time = X ms / M tokens"), counted from the first
request whose prompt is shorter than the one before (the budget was full): prompt
tokens evaluated per answer, and between steps their share of the new tokens (what the
prompt gained beyond the previous prompt and the answer the server holds after it);
the server's prompt evaluation time per answer (its time to first token, less one
sampling step); and, from the bot's side, dispatch -> answer posted (the answers are a
few tokens, so this is the time to first token plus the bot's own few milliseconds).
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import Tail, bot_in_process, chat_text, is_message_post, next_matching, standins

import memory
from tests.llama_server import Evaluation, LlamaServer, missing_server_packages, write_tiny_model
from text.tokens import TokenCounter

TURNS, QUICK_TURNS = 40, 20
MAX_CONTEXT = "1536"
MAX_REPLY = "64"
TURN_CHARS = 120
EOS_BIAS = 2.0  # answers of about four tokens (tests/llama_server.py)
WITHIN = 0.10  # between steps, the tokens evaluated are the new ones, within 10 %


@dataclass(frozen=True)
class Answered:
    """One turn: dispatch -> the answer's post arrived (seconds), and the server's report."""

    to_post: float
    evaluation: Evaluation


async def logged(server: LlamaServer, since: int, count: int) -> list[Evaluation]:
    """Wait (up to 30 s) until the server has logged `count` completions after `since`."""
    deadline = time.monotonic() + 30
    while len(found := server.evaluations(since)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the llama.cpp server logged {len(found)} of {count} answers")
        await asyncio.sleep(0.01)
    return found


async def conversation(
    server: LlamaServer, turns: int, low_mark: float | None, counter: TokenCounter
) -> list[Answered]:
    """`turns` messages (alice and bob in turn) through a fresh bot and stand-ins;
    `low_mark` None: memory as shipped, else memory.LOW_MARK for this run."""
    shipped = memory.LOW_MARK
    if low_mark is not None:
        memory.LOW_MARK = low_mark  # read when a channel's memory is made
    settings = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_MODEL": server.model,
        "MAX_CONTEXT_TOKENS": MAX_CONTEXT,
        "MAX_REPLY_TOKENS": MAX_REPLY,
    }
    answered: list[Answered] = []
    try:
        async with standins() as apis, bot_in_process("ours", apis, counter, **settings):
            since = server.log_size()
            for n in range(turns):
                tail = Tail(apis.discord)
                text = chat_text(20_000 + n, TURN_CHARS)
                dispatched = time.monotonic()
                await apis.discord.user_says("general", ("alice", "bob")[n % 2], text)
                post, _ = await next_matching(apis.discord, tail, is_message_post)
                [*_, evaluation] = await logged(server, since, n + 1)
                answered.append(Answered(post.at - dispatched, evaluation))
                await asyncio.sleep(0.05)  # the bot remembers the answer before the next
    finally:
        memory.LOW_MARK = shipped
    return answered


def summary(run: list[Answered]) -> dict[str, Any]:
    """Figure 12's numbers for one conversation (see the module's docstring)."""
    found = [a.evaluation for a in run]
    steps = [n for n in range(1, len(found)) if found[n].prompt_tokens < found[n - 1].prompt_tokens]
    counted = run[steps[0] :] if steps else []
    appended = [n for n in range(steps[0], len(found)) if n not in steps] if steps else []
    new = sum(
        found[n].prompt_tokens - found[n - 1].prompt_tokens - found[n - 1].answer_held
        for n in appended
    )
    between = sum(found[n].evaluated for n in appended)

    def mean(values: list[float]) -> float:
        return statistics.mean(values) if values else 0.0

    return {
        "turns": len(run),
        "steps_at": steps,
        "counted_from_turn": steps[0] + 1 if steps else -1,
        "largest_prompt_tokens": max(e.prompt_tokens for e in found),
        "evaluated_per_answer": mean([a.evaluation.evaluated for a in counted]),
        "prompt_tokens_per_answer": mean([a.evaluation.prompt_tokens for a in counted]),
        "between_steps_evaluated_per_new_token": between / new if new else None,
        "between_steps_evaluated_per_answer": between / len(appended) if appended else 0.0,
        "server_prompt_eval_ms": mean([1000 * a.evaluation.seconds for a in counted]),
        "to_post_ms_median": statistics.median(1000 * a.to_post for a in counted)
        if counted
        else 0.0,
    }


async def figure_12(
    quick: bool, counter: TokenCounter, row: Callable[..., Any], results: Any
) -> None:
    """Run figure 12 and add its rows (`row`: bench/run.py's Row) and details to
    `results`; skipped, with a line saying why, where llama-cpp-python is missing."""
    missing = missing_server_packages() + [
        name for name in ("gguf", "numpy") if importlib.util.find_spec(name) is None
    ]
    if missing:
        print(f" skipped: {', '.join(missing)} not installed (requirements-dev.txt)", end="")
        return
    turns = QUICK_TURNS if quick else TURNS
    with tempfile.TemporaryDirectory() as folder:
        model = write_tiny_model(Path(folder) / "terse.gguf", eos_bias=EOS_BIAS)
        server = LlamaServer(model, Path(folder) / "server.log")
        await asyncio.to_thread(server.start)
        try:
            steps = summary(await conversation(server, turns, None, counter))
            old = summary(await conversation(server, turns, 1.0, counter))
        finally:
            await asyncio.to_thread(server.stop)
    results.details["llama_prefix"] = {
        "max_context_tokens": int(MAX_CONTEXT),
        "low_mark": memory.LOW_MARK,
        "steps": steps,
        "one_turn_at_a_time": old,
    }

    def ratio(key: str) -> float | None:
        return steps[key] / old[key] if old[key] else None

    share = steps["between_steps_evaluated_per_new_token"]
    name = f"llama.cpp, {turns} turns"
    results.rows += [
        row("12", f"{name}: prompt tokens evaluated/answer, in steps", "tokens",
            steps["evaluated_per_answer"]),
        row("12", f"{name}: prompt tokens evaluated/answer, one at a time", "tokens",
            old["evaluated_per_answer"]),
        row("12", f"{name}: between steps, evaluated/answer, in steps", "tokens",
            steps["between_steps_evaluated_per_answer"]),
        row("12", f"{name}: between steps, evaluated / new tokens", "x", share, None,
            f"1 +- {WITHIN:.0%}", share is not None and abs(share - 1) <= WITHIN),
        row("12", f"{name}: evaluated, in steps / one at a time", "x",
            ratio("evaluated_per_answer")),
        row("12", f"{name}: server prompt eval/answer, in steps", "ms",
            steps["server_prompt_eval_ms"]),
        row("12", f"{name}: server prompt eval/answer, one at a time", "ms",
            old["server_prompt_eval_ms"]),
        row("12", f"{name}: dispatch -> answer, median, in steps", "ms",
            steps["to_post_ms_median"]),
        row("12", f"{name}: dispatch -> answer, median, one at a time", "ms",
            old["to_post_ms_median"]),
        row("12", f"{name}: dispatch -> answer, in steps / one at a time", "x",
            ratio("to_post_ms_median")),
    ]  # fmt: skip
