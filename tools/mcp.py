"""MCP servers as a Toolbox: started with the bot, restarted when they die, closed cleanly.

Uses the official MCP Python SDK (`mcp` on PyPI, 2.x: `mcp.Client` over
`StdioServerParameters` for a local server, a streamable HTTP transport for a remote one).
Import this module only when MCP_CONFIG is set: the SDK and its dependencies take
tens of megabytes a bot without tools should not carry.

Each server's `mcp.Client` is entered and left inside one task of its own (`_Connection`),
because the SDK's anyio task groups and cancel scopes must be entered and exited by the
same task; calls from any answer's task then go through the open session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from tools.base import Tool, ToolResult
from tools.mcp_config import McpServer, tool_name

if TYPE_CHECKING:
    import mcp_types

    from config import Settings

log = logging.getLogger(__name__)

# How long a server may take to start and list its tools (npx may fetch a package first).
START_TIMEOUT = 60.0
# Tools listed page by page; a server whose pages never end still lets the bot start.
MAX_TOOL_PAGES = 100
# Reasons in results and logs are cut to this many characters.
MAX_REASON = 300
# Failures that mean the connection itself is gone (a dead process, a dropped HTTP
# session), as opposed to the tool failing: these restart the server once.
BROKEN = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    ConnectionError,
    httpx2.TransportError,
    OSError,
)
# The errors the SDK's streamable HTTP transport makes up itself when the server answers
# a request with an HTTP error rather than JSON-RPC: "Session terminated" for a 404 (MCP
# spec, transports: the session expired, start a new one) and the message for any other
# status (servers that forgot the session say 400). The stdio transport's closed pipe:
# CONNECTION_CLOSED.
SESSION_LOST = frozenset({"Session terminated", "Server returned an error response"})
# What the model is told when a server stopped during a call that is not sent again.
STOPPED_DURING_CALL = (
    "The tool's server stopped during the call ({reason}). The call may have run before it "
    "stopped, so it was not repeated; the server has been started again. Check whether it "
    "took effect before calling it again."
)


class StoppedDuringCall(Exception):
    """The connection broke after a call that is not safe to repeat was sent."""


def cause(error: BaseException) -> BaseException:
    """The first real failure inside the exception groups anyio's task groups raise."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def short(error: BaseException) -> str:
    """An exception as one short line for a result or a log."""
    error = cause(error)
    text = error.message if isinstance(error, MCPError) else str(error) or type(error).__name__
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


class _Connection:
    """One server's open MCP session, kept by a task of its own until `close`."""

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._restarting = asyncio.Lock()

    async def open(self) -> Client:
        """Start the server and finish MCP's handshake, or raise (OSError, MCPError, ...)
        with the server stopped again; also when cancelled (the caller bounds the time)."""
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready), name=f"mcp:{self.server.name}")
        try:
            self.client = await asyncio.shield(ready)
        except BaseException:  # cancelled too: no half-started server may outlive this
            ready.cancel()  # nobody waits for it any more
            await self.close()
            raise
        return self.client

    async def _run(self, ready: asyncio.Future[Client]) -> None:
        try:
            async with self._client() as client:
                if not ready.done():
                    ready.set_result(client)
                await self._stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as error:  # a failure to start goes to open(); later, it just ends
            if not ready.done():
                ready.set_exception(error)
            else:
                log.debug("MCP server %s: session ended: %s", self.server.name, short(error))
        finally:
            self.client = None

    async def restart(self, broken: Client | None, reason: str) -> Client:
        """A working session in place of `broken`: started again, once for all the calls
        that found it broken at the same time."""
        async with self._restarting:
            if self.client is not None and self.client is not broken:
                return self.client  # another call has just started it again
            log.warning("MCP server %r stopped (%s); starting it again", self.server.name, reason)
            await self.close()
            return await self.open()

    def _client(self) -> Client:
        server = self.server
        if server.command is not None:
            parameters = StdioServerParameters(
                command=server.command, args=list(server.args), env=dict(server.env), cwd=server.cwd
            )
            return Client(parameters, cache=None)
        assert server.url is not None
        http = create_mcp_http_client(headers=dict(server.headers))
        return Client(_HttpTransport(server.url, http), cache=None)

    async def close(self) -> None:
        """Leave the session (the SDK closes stdin, then terminates the process tree)."""
        task, self._task = self._task, None
        if task is None:
            return
        if self.client is None:
            # Still starting (the handshake has no end of its own): stop it now.
            task.cancel()
        self._stop.set()
        try:
            # The SDK bounds its own shutdown (a few seconds to kill a stuck server).
            async with asyncio.timeout(15):
                await asyncio.shield(task)
        except (TimeoutError, Exception):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self.client = None


class _HttpTransport:
    """Streamable HTTP with our headers: the SDK's transport plus the httpx client it uses,
    closed together."""

    def __init__(self, url: str, http: httpx2.AsyncClient) -> None:
        self._url = url
        self._http = http
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Any:
        await self._stack.enter_async_context(self._http)
        return await self._stack.enter_async_context(
            streamable_http_client(self._url, http_client=self._http)
        )

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.__aexit__(*exc_info)


class McpToolbox:
    """Every tool of every MCP server in MCP_CONFIG that started (see tools/base.py's
    Toolbox). Build with `start`; `close` when the bot shuts down."""

    def __init__(self, tool_timeout: float) -> None:
        self._tool_timeout = tool_timeout
        self._tools: list[Tool] = []
        # Tool.name -> (connection, the server's own tool name)
        self._routes: dict[str, tuple[_Connection, str]] = {}
        self._offered: dict[str, Tool] = {}
        self._connections: list[_Connection] = []
        self._start_timeout = START_TIMEOUT

    @classmethod
    async def start(cls, settings: Settings, *, start_timeout: float = START_TIMEOUT) -> McpToolbox:
        """Start every server of `settings.mcp_servers` at once, each within
        `start_timeout` seconds. One that cannot start is logged once (a warning naming
        it and the reason) and left out: the bot runs without its tools. Never raises
        for a server's failure."""
        toolbox = cls(settings.tool_timeout)
        toolbox._start_timeout = start_timeout
        servers = settings.mcp_servers
        listings = await asyncio.gather(*(toolbox._start_one(s) for s in servers))
        taken: set[str] = set()
        for server, listing in zip(servers, listings, strict=True):
            if listing is None:
                continue
            connection, tools = listing
            toolbox._connections.append(connection)
            for tool in tools:
                offered = offered_tool(server, tool, taken)
                toolbox._tools.append(offered)
                toolbox._routes[offered.name] = (connection, tool.name)
                toolbox._offered[offered.name] = offered
        if servers:
            log.info(
                "MCP: %d of %d servers started, %d tools",
                len(toolbox._connections),
                len(servers),
                len(toolbox._tools),
            )
        return toolbox

    async def _start_one(
        self, server: McpServer
    ) -> tuple[_Connection, list[mcp_types.Tool]] | None:
        connection = _Connection(server)
        try:
            async with asyncio.timeout(self._start_timeout):
                client = await connection.open()
                tools = await _list_tools(client)
        except TimeoutError:
            reason = f"it did not start within {self._start_timeout:g} seconds"
        except Exception as error:  # any failure of one server leaves the others running
            reason = short(error)
            failure = cause(error)
            if isinstance(failure, MCPError) and failure.code == CONNECTION_CLOSED:
                reason = "it exited or closed its output during start-up (its stderr says why)"
        else:
            return connection, [t for t in tools if server.allows(t.name)]
        await connection.close()
        log.warning("MCP server %r could not start and is left out: %s", server.name, reason)
        return None

    def tools(self) -> Sequence[Tool]:
        return tuple(self._tools)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run tool `name` within TOOL_TIMEOUT (the restart of a dead server included);
        every failure becomes an is_error result, logged."""
        route = self._routes.get(name)
        if route is None:
            return ToolResult(f"There is no tool named {name!r}.", is_error=True)
        connection, tool = route
        label = f"{connection.server.name}: {tool}"
        repeatable = not self._offered[name].needs_approval
        try:
            async with asyncio.timeout(self._tool_timeout):
                result = await self._call(connection, tool, arguments, repeatable=repeatable)
        except StoppedDuringCall as error:
            log.warning("MCP tool %s: the server stopped during the call (%s)", label, error)
            return ToolResult(STOPPED_DURING_CALL.format(reason=error), is_error=True)
        except TimeoutError:
            log.warning("MCP tool %s timed out after %gs", label, self._tool_timeout)
            return ToolResult(
                f"The tool did not finish within {self._tool_timeout:g} seconds.", is_error=True
            )
        except Exception as error:  # the contract: a tool's failure is a result, not a raise
            log.warning("MCP tool %s failed: %s", label, short(error))
            return ToolResult(f"The tool failed: {short(error)}", is_error=True)
        text = result_text(result)
        if result.is_error:
            log.info("MCP tool %s returned an error: %s", label, short(Exception(text)))
        return ToolResult(text, is_error=result.is_error)

    async def _call(
        self, connection: _Connection, tool: str, arguments: dict[str, Any], *, repeatable: bool
    ) -> mcp_types.CallToolResult:
        """Call `tool`, restarting the server first if its session is gone. A call that
        found the server broken is sent again to the restarted server only when it cannot
        have run (the server refused the session before running it) or is `repeatable`
        (read-only); otherwise StoppedDuringCall, with the server started again for the
        next call: one approval must never run a tool twice."""
        client = connection.client
        if client is None:
            reason = "its session had ended"  # found dead before sending: nothing ran
        else:
            try:
                return await client.call_tool(tool, arguments)
            except MCPError as error:
                if error.message in SESSION_LOST:
                    reason = short(error)  # the server refused the request: nothing ran
                elif error.code != CONNECTION_CLOSED:
                    raise  # the server answered: the tool (or its arguments) failed
                elif not repeatable:
                    raise await self._stopped(connection, client, short(error)) from error
                else:
                    reason = short(error)
            except BROKEN as error:
                if not repeatable:
                    raise await self._stopped(connection, client, short(error)) from error
                reason = short(error)
        return await (await connection.restart(client, reason)).call_tool(tool, arguments)

    async def _stopped(
        self, connection: _Connection, client: Client, reason: str
    ) -> StoppedDuringCall:
        """Start the server again for later calls (a failure to do so is for the next
        call to report) and give the error for this one."""
        with contextlib.suppress(Exception):
            await connection.restart(client, reason)
        return StoppedDuringCall(reason)

    async def close(self) -> None:
        """Stop every server (stdio servers' whole process trees); safe to call twice."""
        connections, self._connections = self._connections, []
        self._routes.clear()
        self._offered.clear()
        self._tools.clear()
        await asyncio.gather(*(c.close() for c in connections))


async def _list_tools(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def offered_tool(server: McpServer, tool: mcp_types.Tool, taken: set[str]) -> Tool:
    """The Tool the model is offered for `tool` of `server`.

    Title precedence (MCP spec, Tool): `title`, then `annotations.title`, then `name`.
    """
    annotations = tool.annotations
    title = tool.title or (annotations.title if annotations else None) or tool.name
    read_only = bool(annotations and annotations.read_only_hint)
    parameters = dict(tool.input_schema) if tool.input_schema else {}
    # OpenAI wants an object schema; MCP requires one too, but not every server obeys.
    parameters.setdefault("type", "object")
    if parameters.get("type") == "object":
        parameters.setdefault("properties", {})
    return Tool(
        name=tool_name(server.name, tool.name, taken),
        label=f"{server.name}: {title}",
        description=tool.description or title,
        parameters=parameters,
        needs_approval=server.needs_approval(tool.name, read_only=read_only),
    )


def result_text(result: mcp_types.CallToolResult) -> str:
    """A tool result as text for the model: text content joined by blank lines, other
    content described in a bracketed line, the structured result when there is nothing
    else."""
    parts = [_content_text(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n\n".join(parts) if parts else "(the tool returned nothing)"


def _content_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return block.text
    if kind in ("image", "audio"):
        size = len(block.data) * 3 // 4  # base64
        return f"[{kind} ({block.mime_type}, about {size:,} bytes) not shown]"
    if kind == "resource_link":
        return f"[resource link: {block.uri}{f' ({block.name})' if block.name else ''}]"
    if kind == "resource":
        contents = block.resource
        text = getattr(contents, "text", None)
        if text is not None:
            return text
        return f"[resource {contents.uri} ({contents.mime_type or 'binary'}) not shown]"
    return f"[{kind or 'unknown'} content not shown]"
