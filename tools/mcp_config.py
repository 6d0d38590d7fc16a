"""The MCP_CONFIG file: which MCP servers to start, read and checked at start-up.

The format is the one Claude Desktop and Cursor write (`{"mcpServers": {name: server}}`),
and VS Code's (`{"servers": {name: server}}` with `"type": "stdio" | "http"`). A server is
local (`command`, `args`, `env`, optional `cwd`: run as a child process speaking MCP's stdio
transport) or remote (`url`, `headers`: MCP's streamable HTTP transport). Our own
per-server keys: `allowedTools` (only these tools are offered; default all) and
`requireApproval` ("unless-read-only" (default) | "always" | "never" | [tool names]).
Other keys (VS Code's `envFile`, Claude's `disabled`, ...) are ignored, except
`"disabled": true`, which leaves the server out. Pure: nothing here starts anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from text.setting_values import quoted, url_problem

ApprovalRule = Literal["unless-read-only", "always", "never"]
APPROVAL_RULES: tuple[ApprovalRule, ...] = ("unless-read-only", "always", "never")
# The largest file anyone writes by hand is a few kilobytes; this one is surely a mistake.
MAX_FILE_BYTES = 1024 * 1024
# OpenAI's pattern for a function name (chat completions `tools[].function.name`).
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
UNSAFE_NAME_CHARACTERS = re.compile(r"[^a-zA-Z0-9_-]+")
SEPARATOR = "__"
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # RFC 9110's token


class McpConfigError(Exception):
    """The file cannot be used; the message is one line saying what is wrong and where."""


@dataclass(frozen=True, slots=True)
class McpServer:
    """One server of the file. Exactly one of `command` (stdio) and `url` (HTTP) is set.

    `allowed_tools` None means every tool; `require_approval` is a rule or the names of
    the tools that always ask (the others follow MCP's readOnlyHint).
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    allowed_tools: frozenset[str] | None = None
    require_approval: ApprovalRule | frozenset[str] = "unless-read-only"

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    def allows(self, tool: str) -> bool:
        """Whether `tool` (the server's own tool name) may be offered to the model."""
        return self.allowed_tools is None or tool in self.allowed_tools

    def needs_approval(self, tool: str, *, read_only: bool) -> bool:
        """Whether calling `tool` waits for a person. `read_only`: the tool's MCP
        annotation readOnlyHint (absent counts as false, as the MCP spec says)."""
        rule = self.require_approval
        if rule == "always":
            return True
        if rule == "never":
            return False
        if isinstance(rule, frozenset) and tool in rule:
            return True
        return not read_only

    def __repr__(self) -> str:
        # env and headers often hold secrets: keep them out of logs.
        where = self.command if self.command is not None else self.url
        return f"McpServer({self.name!r}, {self.transport}, {where!r})"


def read_mcp_config(path: Path) -> tuple[McpServer, ...]:
    """The servers of the file at `path`, or McpConfigError saying what is wrong."""
    shown = _shown(str(path))
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise McpConfigError(f"{shown} is larger than {MAX_FILE_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise McpConfigError(f"{shown} does not exist") from None
    except UnicodeDecodeError:
        raise McpConfigError(f"{shown} is not UTF-8 text") from None
    except OSError as error:
        raise McpConfigError(f"{shown} cannot be read ({error.strerror})") from None
    except ValueError:  # a NUL character in the path
        raise McpConfigError(f"{shown} is not a usable file path") from None
    return parse_mcp_config(text, source=shown)


def parse_mcp_config(text: str, *, source: str = "the file") -> tuple[McpServer, ...]:
    """The servers of the JSON `text`; McpConfigError names `source` and the fault."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deeply
        where = getattr(error, "lineno", None)
        at = f" at line {where}" if where is not None else ""
        raise McpConfigError(f"{source} is not valid JSON{at}: {_first_line(error)}") from None
    if not isinstance(document, dict):
        raise McpConfigError(f'{source} must hold a JSON object such as {{"mcpServers": {{}}}}')
    key = "mcpServers" if "mcpServers" in document else "servers"
    entries = document.get(key)
    if not isinstance(entries, dict):
        raise McpConfigError(
            f'{source} must have an "mcpServers" object of servers by name (or VS Code\'s '
            '"servers")'
        )
    servers = []
    for name, entry in entries.items():
        server = _server(name, entry, f'{source}: server "{_shown(name)}"')
        if server is not None:
            servers.append(server)
    return tuple(servers)


def _server(name: str, entry: Any, where: str) -> McpServer | None:
    """One entry of the servers object, or None when it says `"disabled": true`."""
    if not isinstance(entry, dict):
        raise McpConfigError(f"{where} must be an object with a command or a url")
    if not name.strip() or not name.isprintable():
        raise McpConfigError(f"{where} needs a printable, non-empty name")
    if entry.get("disabled") is True:
        return None
    kind = entry.get("type")
    command, url = entry.get("command"), entry.get("url")
    if kind not in (None, "stdio", "http", "streamable-http", "streamableHttp"):
        raise McpConfigError(
            f'{where} has "type" {kind!r}: only "stdio" and "http" (streamable HTTP) are supported'
        )
    if command is not None and url is not None:
        raise McpConfigError(f"{where} has both a command and a url: give one")
    if command is None and url is None:
        raise McpConfigError(
            f'{where} needs a "command" (a local server) or a "url" (a remote one)'
        )
    rules = {
        "allowed_tools": _allowed_tools(entry.get("allowedTools"), where),
        "require_approval": _approval(entry.get("requireApproval"), where),
    }
    if command is not None:
        return McpServer(
            name=name,
            command=_text(command, "command", where),
            args=_strings(entry.get("args", []), "args", where),
            env=_text_map(entry.get("env", {}), "env", where),
            cwd=None if entry.get("cwd") is None else _text(entry["cwd"], "cwd", where),
            **rules,
        )
    url = _text(url, "url", where)
    problem = url_problem(url)
    if problem is not None:
        raise McpConfigError(f"{where} has a url that cannot be used: {problem}")
    headers = _text_map(entry.get("headers", {}), "headers", where)
    for header, value in headers.items():
        # What HTTP can carry (httpx refuses the rest on every request).
        if not (HEADER_NAME.fullmatch(header) and value.isascii() and value.isprintable()):
            raise McpConfigError(
                f'{where} has a header "{header}" that HTTP cannot send: names are letters, '
                "digits and '-'; values printable ASCII on one line"
            )
    return McpServer(name=name, url=url, headers=headers, **rules)


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise McpConfigError(f'{where} has a "{key}" that is not a non-empty string')
    return value


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise McpConfigError(f'{where} has "{key}" that is not a list of strings')
    return tuple(value)


def _text_map(value: Any, key: str, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise McpConfigError(f'{where} has "{key}" that is not an object of strings')
    return dict(value)


def _allowed_tools(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(_strings(value, "allowedTools", where))


def _approval(value: Any, where: str) -> ApprovalRule | frozenset[str]:
    if value is None:
        return "unless-read-only"
    if isinstance(value, list):
        return frozenset(_strings(value, "requireApproval", where))
    for rule in APPROVAL_RULES:
        if value == rule:
            return rule
    raise McpConfigError(
        f'{where} has "requireApproval" {value!r}: use "unless-read-only", "always", '
        '"never" or a list of tool names'
    )


def _shown(text: str) -> str:
    """`text` as a one-line message shows it: as it is when printable, else quoted."""
    return text if text.isprintable() else quoted(text)


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def tool_name(server: str, tool: str, taken: set[str]) -> str:
    """The function name the model sees for `tool` of `server`: `<server>__<tool>` with
    every run of characters outside OpenAI's ^[a-zA-Z0-9_-]{1,64}$ replaced by "_", cut
    to 64 characters, and made unique against `taken` (to which it is added)."""
    base = UNSAFE_NAME_CHARACTERS.sub("_", f"{server}{SEPARATOR}{tool}")[:64] or "tool"
    name, number = base, 1
    while name in taken:
        number += 1
        suffix = f"_{number}"
        name = base[: 64 - len(suffix)] + suffix
    taken.add(name)
    return name
