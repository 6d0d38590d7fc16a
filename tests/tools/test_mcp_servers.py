"""McpToolbox against real third-party MCP servers: the reference servers from PyPI
(mcp-server-time, mcp-server-fetch) and npm (server-filesystem over stdio,
server-everything over streamable HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psutil
import pytest
from aiohttp import web

from tests.tools.conftest import MakeToolbox, npm_package

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

Script = Callable[[str], str]


def children(before: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This process's living descendants (MCP servers started over stdio and theirs),
    leaving out those in `before` (other tests' session-wide servers)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # gone while we looked
            if process.pid not in before and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def running() -> frozenset[int]:
    """The descendants running before a test starts its servers."""
    return frozenset(p.pid for p in children())


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """`app` served on a free loopback port; yields its origin (http://127.0.0.1:port)."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_time_server_tools_run_at_once_and_answer(
    make_toolbox: MakeToolbox, console_script: Script
) -> None:
    toolbox = await make_toolbox({"time": {"command": console_script("mcp-server-time")}})
    tools = {tool.name: tool for tool in toolbox.tools()}
    assert set(tools) == {"time__get_current_time", "time__convert_time"}
    now = tools["time__get_current_time"]
    assert now.label == "time: get_current_time"
    assert not now.needs_approval  # the server marks it readOnlyHint
    assert now.parameters["type"] == "object" and "timezone" in now.parameters["properties"]
    assert now.definition()["function"]["name"] == "time__get_current_time"
    result = await toolbox.call("time__get_current_time", {"timezone": "Asia/Tokyo"})
    assert not result.is_error
    assert json.loads(result.text)["timezone"] == "Asia/Tokyo"
    # The tool's own failure is an error result, and the server keeps working.
    failed = await toolbox.call("time__get_current_time", {"timezone": "Nowhere/Atlantis"})
    assert failed.is_error and "Nowhere/Atlantis" in failed.text
    missing = await toolbox.call("time__no_such_tool", {})
    assert missing.is_error and "no tool named" in missing.text


async def test_allowed_tools_and_require_approval_apply(
    make_toolbox: MakeToolbox, console_script: Script
) -> None:
    toolbox = await make_toolbox(
        {
            "time": {
                "command": console_script("mcp-server-time"),
                "allowedTools": ["convert_time"],
                "requireApproval": "always",
            }
        }
    )
    [tool] = toolbox.tools()
    assert (tool.name, tool.needs_approval) == ("time__convert_time", True)
    refused = await toolbox.call("time__get_current_time", {"timezone": "UTC"})
    assert refused.is_error


@pytest.fixture
async def web_page() -> AsyncIterator[str]:
    """The URL of a page served over loopback HTTP."""

    async def page(request: web.Request) -> web.Response:
        html = "<html><body><h1>Opening hours</h1><p>Open 9 to 5, closed on Sundays.</p>"
        return web.Response(text=html + "</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/hours", page)
    async with serve(app) as origin:
        yield f"{origin}/hours"


async def test_fetch_server_reads_a_page(
    make_toolbox: MakeToolbox, console_script: Script, web_page: str
) -> None:
    fetch = console_script("mcp-server-fetch")
    toolbox = await make_toolbox(
        {
            # Loopback addresses are refused unless allowed; robots.txt is not served.
            "fetch": {"command": fetch, "args": ["--allow-private-ips", "--ignore-robots-txt"]},
            "guarded": {"command": fetch},
        },
        TOOL_TIMEOUT="20",
    )
    assert {t.name for t in toolbox.tools()} == {"fetch__fetch", "guarded__fetch"}
    result = await toolbox.call("fetch__fetch", {"url": web_page})
    assert not result.is_error, result.text
    assert "Open 9 to 5, closed on Sundays." in result.text
    assert "Opening hours" in result.text
    # Without --allow-private-ips the server itself refuses loopback: an error result.
    refused = await toolbox.call("guarded__fetch", {"url": web_page})
    assert refused.is_error and "9 to 5" not in refused.text


async def test_filesystem_server_writes_only_when_called(
    make_toolbox: MakeToolbox, node: str, tmp_path: Path
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "notes.txt").write_text("buy milk\n")
    server = npm_package("@modelcontextprotocol/server-filesystem") / "dist" / "index.js"
    toolbox = await make_toolbox({"files": {"command": node, "args": [str(server), str(folder)]}})
    tools = {tool.name: tool for tool in toolbox.tools()}
    assert tools["files__write_file"].needs_approval  # may change the world: asks first
    assert not tools["files__read_text_file"].needs_approval  # readOnlyHint
    assert tools["files__write_file"].label == "files: Write File"  # the tool's title
    read = await toolbox.call("files__read_text_file", {"path": str(folder / "notes.txt")})
    assert read.text == "buy milk\n" and not read.is_error
    assert not (folder / "plan.txt").exists()
    wrote = await toolbox.call(
        "files__write_file", {"path": str(folder / "plan.txt"), "content": "ship it"}
    )
    assert not wrote.is_error, wrote.text
    assert (folder / "plan.txt").read_text() == "ship it"
    # The server keeps writes inside its folder: outside is an error result.
    outside = await toolbox.call(
        "files__write_file", {"path": str(tmp_path / "escape.txt"), "content": "x"}
    )
    assert outside.is_error and not (tmp_path / "escape.txt").exists()


class EverythingServer:
    """server-everything in its streamable HTTP mode on a free loopback port."""

    def __init__(self, node: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._node = node
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        script = npm_package("@modelcontextprotocol/server-everything") / "dist" / "index.js"
        self._process = subprocess.Popen(
            [self._node, str(script), "streamableHttp"],
            env={"PATH": os.environ["PATH"], "PORT": str(self.port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self._process.stderr is not None
        line = self._process.stderr.readline()  # "... listening on port N"
        assert b"listening" in line, line

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def restart(self) -> None:
        """A new server process on the same port, which knows none of the old sessions."""
        self.stop()
        self.start()


@pytest.fixture
def everything_http(node: str) -> Iterator[EverythingServer]:
    server = EverythingServer(node)
    server.start()
    yield server
    server.stop()


async def test_a_server_over_streamable_http(
    make_toolbox: MakeToolbox, everything_http: EverythingServer
) -> None:
    toolbox = await make_toolbox(
        {"everything": {"url": everything_http.url, "headers": {"X-Team": "docs"}}},
        TOOL_TIMEOUT="2",
    )
    tools = {tool.name: tool for tool in toolbox.tools()}
    assert "everything__echo" in tools and "everything__get-tiny-image" in tools
    echo = await toolbox.call("everything__echo", {"message": "over HTTP"})
    assert echo.text == "Echo: over HTTP" and not echo.is_error
    image = await toolbox.call("everything__get-tiny-image", {})
    assert "[image (image/png, about" in image.text and "not shown]" in image.text
    # A call longer than TOOL_TIMEOUT is an error result; the session stays usable.
    slow = await toolbox.call(
        "everything__trigger-long-running-operation", {"duration": 30, "steps": 3}
    )
    assert slow.is_error and slow.text == "The tool did not finish within 2 seconds."
    assert (await toolbox.call("everything__echo", {"message": "still here"})).text == (
        "Echo: still here"
    )


async def test_a_broken_http_session_is_started_again(
    make_toolbox: MakeToolbox, everything_http: EverythingServer, caplog: pytest.LogCaptureFixture
) -> None:
    toolbox = await make_toolbox({"everything": {"url": everything_http.url}})
    assert (await toolbox.call("everything__echo", {"message": "one"})).text == "Echo: one"
    # The server restarts and forgets every session: the next call starts a new one.
    await asyncio.to_thread(everything_http.restart)
    with caplog.at_level(logging.WARNING, logger="tools.mcp"):
        again = await toolbox.call("everything__echo", {"message": "two"})
    assert again.text == "Echo: two" and not again.is_error
    assert "MCP server 'everything' stopped" in caplog.text


async def test_a_killed_stdio_server_is_restarted_on_its_next_call(
    make_toolbox: MakeToolbox, console_script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    before = running()
    toolbox = await make_toolbox({"time": {"command": console_script("mcp-server-time")}})
    [server] = children(before)
    server.kill()
    server.wait(10)
    with caplog.at_level(logging.WARNING, logger="tools.mcp"):
        results = await asyncio.gather(
            toolbox.call("time__get_current_time", {"timezone": "UTC"}),
            toolbox.call("time__get_current_time", {"timezone": "Asia/Tokyo"}),
        )
    assert [json.loads(r.text)["timezone"] for r in results] == ["UTC", "Asia/Tokyo"]
    # Two calls found it dead at once; it was started again once, for both.
    assert caplog.text.count("MCP server 'time' stopped") == 1
    [restarted] = children(before)
    assert restarted.pid != server.pid


async def test_servers_that_cannot_start_are_logged_once_and_left_out(
    make_toolbox: MakeToolbox, console_script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    before = running()
    with caplog.at_level(logging.WARNING, logger="tools.mcp"):
        toolbox = await make_toolbox(
            {
                "missing": {"command": "/nonexistent/mcp-server"},
                "exits": {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]},
                "silent": {
                    "command": sys.executable,
                    "args": ["-c", "import time; time.sleep(60)"],
                },
                "nobody": {"url": f"http://127.0.0.1:{free_port()}/mcp"},
                "time": {"command": console_script("mcp-server-time")},
            },
            start_timeout=3,
        )
    assert {t.name for t in toolbox.tools()} == {"time__get_current_time", "time__convert_time"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for name in ("missing", "exits", "silent", "nobody"):
        [line] = [w for w in warnings if f"MCP server {name!r}" in w]
        assert "could not start" in line
    assert any("No such file or directory" in w for w in warnings if "'missing'" in w)
    assert any("did not start within 3 seconds" in w for w in warnings if "'silent'" in w)
    assert any("exited or closed its output" in w for w in warnings if "'exits'" in w)
    assert len(warnings) == 4
    # None of the failed servers' processes is left behind.
    assert [p.name() for p in children(before)] == ["mcp-server-time"]


async def test_close_stops_every_server_process(
    make_toolbox: MakeToolbox, console_script: Script, node: str, tmp_path: Path
) -> None:
    files = npm_package("@modelcontextprotocol/server-filesystem") / "dist" / "index.js"
    before = running()
    toolbox = await make_toolbox(
        {
            "time": {"command": console_script("mcp-server-time")},
            "files": {"command": node, "args": [str(files), str(tmp_path)]},
        }
    )
    assert len(children(before)) == 2
    await toolbox.close()
    assert children(before) == []
    assert toolbox.tools() == ()
    await toolbox.close()  # twice is fine


async def test_a_local_server_gets_its_env_and_not_the_bots_secrets(
    make_toolbox: MakeToolbox, node: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-bots-own-secret")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "the.bots.token")
    script = npm_package("@modelcontextprotocol/server-everything") / "dist" / "index.js"
    toolbox = await make_toolbox(
        {
            "everything": {
                "command": node,
                "args": [str(script), "stdio"],
                "env": {"TEAM_WIKI_TOKEN": "for-this-server"},
                "allowedTools": ["get-env"],
            }
        }
    )
    result = await toolbox.call("everything__get-env", {})
    environment = json.loads(result.text)
    assert environment["TEAM_WIKI_TOKEN"] == "for-this-server"
    assert "OPENAI_API_KEY" not in environment and "DISCORD_BOT_TOKEN" not in environment
    assert "sk-the-bots-own-secret" not in result.text


async def test_a_remote_server_is_sent_its_headers(make_toolbox: MakeToolbox) -> None:
    seen: list[str | None] = []

    async def refuse(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(status=401, text="who are you?")

    app = web.Application()
    app.router.add_route("*", "/mcp", refuse)
    async with serve(app) as origin:
        toolbox = await make_toolbox(
            {"wiki": {"url": f"{origin}/mcp", "headers": {"Authorization": "Bearer wiki-token"}}}
        )
    assert toolbox.tools() == ()  # refused: left out, the bot goes on
    assert seen and set(seen) == {"Bearer wiki-token"}
