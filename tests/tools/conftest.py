"""Fixtures for the tools' tests: real MCP servers from PyPI and npm, and a toolbox of them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from config import load_settings

TESTS = Path(__file__).resolve().parents[1]
# The npm packages of the tests, as its package.json lists them: `make test` installs
# them, or the `node` fixture on first use.
NPM_FOLDER = TESTS / "tools" / "npm"
NPM_PACKAGES = tuple(json.loads((NPM_FOLDER / "package.json").read_text())["dependencies"])
NPM_INSTALL = ("install", "--no-audit", "--no-fund", "--no-package-lock", "--prefix")
BIN = Path(sys.executable).parent  # the venv's console scripts: mcp-server-time, -fetch

MakeToolbox = Callable[..., Awaitable[Any]]


def npm_package(name: str) -> Path:
    """The installed package folder of npm package `name` (its package.json inside)."""
    return NPM_FOLDER / "node_modules" / name


@pytest.fixture(scope="session")
def node() -> str:
    """The path of `node`, with the tests' npm packages installed; skips without them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the npm MCP servers and are not installed")
    if not all((npm_package(p) / "package.json").exists() for p in NPM_PACKAGES):
        done = subprocess.run(
            [npm, *NPM_INSTALL, str(NPM_FOLDER)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.skip(f"npm could not install {', '.join(NPM_PACKAGES)}: {done.stderr[-300:]}")
    return node


@pytest.fixture
def console_script() -> Callable[[str], str]:
    """The path of a Python MCP server's command; skips when it is not installed."""

    def find(name: str) -> str:
        path = BIN / name
        if not path.exists():
            pytest.skip(f"{name} is not installed (pip install -r requirements-dev.txt)")
        return str(path)

    return find


@pytest.fixture
async def make_toolbox(tmp_path: Path) -> AsyncIterator[MakeToolbox]:
    """`await make_toolbox({name: server entry}, TOOL_TIMEOUT="5", ...)`: an McpToolbox
    started from an MCP_CONFIG file of those servers (closed after the test)."""
    from tools.mcp import McpToolbox

    started: list[McpToolbox] = []

    async def make(servers: dict[str, Any], *, start_timeout: float = 60, **env: str) -> McpToolbox:
        path = tmp_path / f"mcp{len(started)}.json"
        path.write_text(json.dumps({"mcpServers": servers}))
        settings = load_settings(
            {"DISCORD_BOT_TOKEN": "t", "OPENAI_API_KEY": "k", "MCP_CONFIG": str(path), **env}
        )
        toolbox = await McpToolbox.start(settings, start_timeout=start_timeout)
        started.append(toolbox)
        return toolbox

    yield make
    for toolbox in started:
        await toolbox.close()
