"""A real llama.cpp server (``llama-cpp-python[server]``) with a tiny generated model.

Tests use it to see what the bot meets when a user points it at a local model::

    def test_x(llama_server: LlamaServer) -> None:
        client = openai.OpenAI(base_url=llama_server.base_url, api_key="none")
        client.chat.completions.create(model=llama_server.model, messages=[...])

No model is downloaded: ``write_tiny_model`` writes a llama-architecture GGUF with
random weights, a byte-level BPE tokenizer and a ChatML template. Its answers are
ASCII gibberish; their length is steered by a bias on the end-of-turn token.

The session fixture ``llama_server`` is registered by listing this module in
``pytest_plugins`` (tests/conftest.py); the plugin also gives tests that use the
fixture time for the server's start-up and shows the server's log when one fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib.util
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.helpers import free_port

# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------

# llama-cpp-python recognises exactly this template text and then uses its own ChatML
# formatter (the server logs "Guessed chat format: chatml"); FACTS.md describes that
# formatter's behaviour, which is what users of ChatML models meet.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONTROL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
BOS_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"  # ends the assistant's turn, so it ends every answer

# A few merges in GPT-2 spelling ("Ġ" is a space), so some tokens span two or three
# characters as in a real vocabulary. Each merged token must already exist when used.
MERGES = (
    "Ġ t", "h e", "i n", "e r", "a n", "o n", "r e", "Ġ a", "Ġ s", "Ġ w",
    "e n", "o r", "Ġt he", "i t", "a t", "e s", "in g", "Ġ o", "Ġ b", "n d",
)  # fmt: skip

# Measured with the server's sampling defaults (temperature 0.8, top_k 40, top_p 0.95,
# min_p 0.05, repeat_penalty 1.1), 40 seeds each: bias 1.0 gives a median of about
# 10 tokens (1 to 75), 1.5 about 5 (1 to 27), 2.0 about 4. From about 3 up (ln 1/min_p)
# eos wins at once and answers are one token long; a very negative bias (say -30)
# makes answers run until max_tokens or the context is full.
DEFAULT_EOS_BIAS = 1.0

N_EMBD, N_HEAD, N_LAYER, N_FF = 64, 4, 2, 128
# Two residual channels carry no learned signal: the layers neither read nor write
# them, so they reach the output exactly as embedded. BIAS_DIM is set in every
# token, giving each token a fixed logit offset; START_DIM is set only in "\n",
# the last token of the prompt ("<|im_start|>assistant\n"), so the first token of
# an answer is never eos or white space and an answer is never blank.
BIAS_DIM, START_DIM = 0, 1
EXCLUDED = -30.0  # a logit offset that keeps a token out of the top 40
START_PENALTY = -40.0
CHANNEL = 10.0  # large, so the two channels dominate the RMS norm and their effect is steady


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable spelling of each byte, as byte-level BPE vocabularies use it."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    spelling = {b: chr(b) for b in printable}
    # The other bytes (controls, space, ...) take code points from 256 up, in order.
    extra = 0
    for b in range(256):
        if b not in spelling:
            spelling[b] = chr(256 + extra)
            extra += 1
    return spelling


def vocabulary() -> tuple[list[str], list[int], dict[str, int]]:
    """The model's tokens, their GGUF token types, and the id of each spelling."""
    from gguf import TokenType

    spelling = bytes_to_unicode()
    tokens = [spelling[b] for b in range(256)]  # token id == byte value
    tokens += ["".join(m.split(" ")) for m in MERGES]
    types = [int(TokenType.NORMAL)] * len(tokens)
    tokens += CONTROL_TOKENS
    types += [int(TokenType.CONTROL)] * len(CONTROL_TOKENS)
    ids = {t: i for i, t in enumerate(tokens)}
    assert len(ids) == len(tokens), "duplicate token spelling"
    return tokens, types, ids


def write_tiny_model(
    path: Path,
    *,
    eos_bias: float = DEFAULT_EOS_BIAS,
    seed: int = 0,
    chat_template: str = CHATML_TEMPLATE,
) -> Path:
    """Write a chat-capable llama GGUF with random F32 weights to `path`; return `path`.

    The same `seed` and `eos_bias` give the same file. `eos_bias` is added to the
    end-of-turn token's logit (on top of logits that are close to 0 for every
    allowed token): higher means shorter answers, see DEFAULT_EOS_BIAS. Answers
    contain printable ASCII, spaces and newlines only, and never start with white
    space. The file is about 0.5 MB; the model's trained context is 2048 tokens.
    `chat_template`: the GGUF's template; any other text than CHATML_TEMPLATE is
    rendered by llama-cpp-python's Jinja formatter, its `raise_exception` included.
    """
    import gguf
    import numpy as np

    tokens, types, ids = vocabulary()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def normal(*shape: int, std: float) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    newline = ids[bytes_to_unicode()[ord("\n")]]
    embed = normal(n_vocab, N_EMBD, std=0.02)
    embed[:, BIAS_DIM] = CHANNEL
    embed[:, START_DIM] = 0.0
    embed[newline, START_DIM] = CHANNEL

    # Layers see and change only the ordinary channels.
    layer_norm = np.ones(N_EMBD, dtype=np.float32)
    layer_norm[[BIAS_DIM, START_DIM]] = 0.0

    def writes_ordinary_channels_only(weight: np.ndarray) -> np.ndarray:
        weight[[BIAS_DIM, START_DIM], :] = 0.0
        return weight

    # After the final RMS norm BIAS_DIM is about sqrt(N_EMBD) (it dominates the norm),
    # so a weight of offset / sqrt(N_EMBD) adds about `offset` to a token's logit.
    # The ordinary channels add position-dependent noise of about 0.5.
    output = normal(n_vocab, N_EMBD, std=1.0)
    scale = 1.0 / np.sqrt(N_EMBD)
    offsets = np.zeros(n_vocab, dtype=np.float32)
    allowed_bytes = {*range(0x20, 0x7F), ord("\n")}
    for b in range(256):
        if b not in allowed_bytes:
            offsets[b] = EXCLUDED
    for name in CONTROL_TOKENS:
        offsets[ids[name]] = EXCLUDED
    offsets[ids[EOS_TOKEN]] = eos_bias
    output[:, BIAS_DIM] = offsets * scale
    output[:, START_DIM] = 0.0
    for b in (ord(" "), ord("\n")):
        output[b, START_DIM] = START_PENALTY * scale
    output[ids[EOS_TOKEN], START_DIM] = START_PENALTY * scale

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-chatml")
    writer.add_context_length(2048)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(list(MERGES))
    writer.add_bos_token_id(ids[BOS_TOKEN])
    writer.add_eos_token_id(ids[EOS_TOKEN])
    writer.add_add_bos_token(False)
    writer.add_chat_template(chat_template)

    writer.add_tensor("token_embd.weight", embed)
    for i in range(N_LAYER):
        block = f"blk.{i}"
        writer.add_tensor(f"{block}.attn_norm.weight", layer_norm.copy())
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"{block}.{name}.weight", normal(N_EMBD, N_EMBD, std=0.1))
        writer.add_tensor(
            f"{block}.attn_output.weight",
            writes_ordinary_channels_only(normal(N_EMBD, N_EMBD, std=0.1)),
        )
        writer.add_tensor(f"{block}.ffn_norm.weight", layer_norm.copy())
        writer.add_tensor(f"{block}.ffn_gate.weight", normal(N_FF, N_EMBD, std=0.1))
        writer.add_tensor(f"{block}.ffn_up.weight", normal(N_FF, N_EMBD, std=0.1))
        writer.add_tensor(
            f"{block}.ffn_down.weight",
            writes_ordinary_channels_only(normal(N_EMBD, N_FF, std=0.1)),
        )
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --------------------------------------------------------------------------
# The server's own report of each completion
# --------------------------------------------------------------------------

# llama-cpp-python 0.3.x, verbose (the server's default): before evaluating a prompt
# that starts like the tokens it holds (the previous prompt and its answer), it logs
# "Llama.generate: N prefix-match hit, remaining M prompt tokens to eval"; after every
# completion, llama.cpp's timings, "prompt eval time = X ms / M tokens" among them.
PREFIX_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit")
PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
ANSWER_HELD = re.compile(r"\beval time =\s*[\d.]+ ms /\s*(\d+) runs")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One completion as the server logged it: `reused`, the prompt tokens it kept from
    before (0 without a prefix hit); `evaluated`, the prompt tokens it evaluated;
    `seconds`, how long that took (the time to first token, less the sampling);
    `answer_held`, the tokens of its answer it evaluated after sampling them (all but
    the last), which it then holds after the prompt."""

    reused: int
    evaluated: int
    seconds: float
    answer_held: int = 0

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt, in the server's tokens."""
        return self.reused + self.evaluated


def evaluations(log: str) -> list[Evaluation]:
    """Every completion in `log` (a verbose server's output), in order."""
    found: list[Evaluation] = []
    reused = 0
    for line in log.splitlines():
        if hit := PREFIX_HIT.search(line):
            reused = int(hit.group(1))
        elif timing := PROMPT_EVAL.search(line):
            found.append(Evaluation(reused, int(timing.group(2)), float(timing.group(1)) / 1000))
            reused = 0
        elif (runs := ANSWER_HELD.search(line)) and found:
            found[-1] = dataclasses.replace(found[-1], answer_held=int(runs.group(1)))
    return found


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------

STARTUP_TIMEOUT = 90.0  # seconds; start-up takes about 2 s, but the machine may be loaded
LOG_TAIL_LINES = 40


def _die_with_parent() -> None:
    # Runs in the child before exec: if pytest itself is killed, the kernel kills the
    # server too, so no llama.cpp server outlives the test run.
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


OPTIONAL_PACKAGES = {"gguf": "gguf", "llama_cpp": "llama-cpp-python[server]"}


def skip_without_llama() -> None:
    """Skip the calling test module or fixture where gguf or llama-cpp-python is missing."""
    for module, package in OPTIONAL_PACKAGES.items():
        pytest.importorskip(
            module,
            reason=f"the llama.cpp tests need {package} (requirements-dev.txt; "
            "`make test` installs it)",
        )


def missing_server_packages() -> list[str]:
    """The modules `python -m llama_cpp.server` needs that this interpreter lacks."""
    needed = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings")
    return [name for name in needed if importlib.util.find_spec(name) is None]


class LlamaServer:
    """One `python -m llama_cpp.server` process serving `model_path` on 127.0.0.1.

    The port stays the same across `restart()`, so clients made from `base_url`
    keep working. Everything the server prints goes to `log_path`.
    """

    def __init__(
        self,
        model_path: Path,
        log_path: Path,
        *,
        n_ctx: int = 2048,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        """`extra_args` are passed to the server as they are, e.g.
        ("--interrupt_requests", "false")."""
        self.model_path = model_path
        self.log_path = log_path
        self.n_ctx = n_ctx
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self.model = ""  # the model id the server reports, known once started
        self.startup_seconds = 0.0  # how long the last start took
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """What to give the openai SDK as base_url: http://127.0.0.1:<port>/v1"""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start the server and wait until GET /v1/models answers.

        Fails the test (pytest.fail, with the log's tail) if the server exits or does
        not answer within `timeout` seconds.
        """
        assert not self.running, "the llama.cpp server is already running"
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--n_ctx", str(self.n_ctx),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_threads", "1",
            "--verbose", "true",  # the default; `evaluations` reads what it logs
            *self.extra_args,
        ]  # fmt: skip
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = started + timeout
        while True:
            if self._process.poll() is not None:
                self._fail(f"the llama.cpp server exited with code {self._process.returncode}")
            models = self._get_models()
            if models is not None:
                self.model = models["data"][0]["id"]
                self.startup_seconds = time.monotonic() - started
                return
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"the llama.cpp server did not answer within {timeout:.0f} s")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would end it: open streams just break off."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._process = None

    def pause(self) -> None:
        """SIGSTOP the server, as a hung model looks: its connections stay open and
        nothing more is sent on them until `resume()`."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self, grace: float = 10.0) -> None:
        """Ask the server to exit (SIGTERM); kill it after `grace` seconds."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def restart(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Stop the server if it runs, and start it again on the same port."""
        self.stop()
        self.start(timeout)

    def log_size(self) -> int:
        """How many bytes the log holds now: `evaluations(since=...)` reads on from it."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def evaluations(self, since: int = 0) -> list[Evaluation]:
        """The completions the server logged after byte `since` of its log (`log_size`)."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return evaluations(log.read().decode(errors="replace"))

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last `lines` lines the server printed."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _get_models(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as answer:
                return json.load(answer)
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            return None

    def _fail(self, reason: str) -> NoReturn:
        pytest.fail(f"{reason}.\nIts log ({self.log_path}) ends:\n{self.log_tail()}", pytrace=False)


@contextlib.contextmanager
def tiny_server(directory: Path, name: str, **model: Any) -> Iterator[LlamaServer]:
    """A started server of a tiny model written to `directory`/`name` with `model`
    (`write_tiny_model`'s options), its log beside it; stopped on leaving (resumed
    first, in case a test left it paused)."""
    server = LlamaServer(write_tiny_model(directory / name, **model), directory / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.resume()
        server.stop()


# --------------------------------------------------------------------------
# pytest plugin: the fixture, time for start-up, the log on failure
# --------------------------------------------------------------------------

FIXTURE = "llama_server"


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A llama.cpp server with the tiny model (default eos bias), for the whole session.

    A test that kills or restarts it should leave it running (call `restart()`).
    """
    skip_without_llama()
    missing = missing_server_packages()
    if missing:
        pytest.fail(
            f"{sys.executable} lacks {', '.join(missing)}: the llama.cpp tests need "
            "llama-cpp-python[server] (see requirements-dev.txt); `make test` installs it.",
            pytrace=False,
        )
    with tiny_server(tmp_path_factory.mktemp("llama"), "tiny-random-chatml.gguf") as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give tests that use the server time to start it, unless they set their own timeout.

    pytest-timeout counts fixture set-up in a test's time, and the first test to use
    the server pays for its start-up.
    """
    for item in items:
        if FIXTURE in getattr(item, "fixturenames", ()) and not item.get_closest_marker("timeout"):
            default = float(item.config.getini("timeout") or 0)
            if default > 0:
                item.add_marker(pytest.mark.timeout(default + STARTUP_TIMEOUT))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the tail of the server's log to the report of a failed test that used it."""
    report = yield
    server = getattr(item, "funcargs", {}).get(FIXTURE)
    if report.failed and isinstance(server, LlamaServer):
        report.sections.append(
            (f"llama.cpp server log ({server.log_path}), last lines", server.log_tail())
        )
    return report
