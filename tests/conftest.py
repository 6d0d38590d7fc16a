"""Shared fixtures: the real encodings, loaded once per test run from the bundled files."""

from __future__ import annotations

import pytest

from tokenizer import TokenCounter, load_encoding


@pytest.fixture(scope="session")
def o200k() -> TokenCounter:
    return TokenCounter(load_encoding("o200k_base"))


@pytest.fixture(scope="session")
def cl100k() -> TokenCounter:
    return TokenCounter(load_encoding("cl100k_base"))
