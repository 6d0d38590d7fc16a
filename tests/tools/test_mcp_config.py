"""The MCP_CONFIG file format and the tool names the model sees."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.mcp_config import McpConfigError, McpServer, parse_mcp_config, read_mcp_config, tool_name

ROOT = Path(__file__).resolve().parents[2]
OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def parse(document: object) -> tuple[McpServer, ...]:
    return parse_mcp_config(json.dumps(document), source="mcp.json")


def refusal(document: object) -> str:
    with pytest.raises(McpConfigError) as raised:
        parse(document)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_claude_desktop_format() -> None:
    [time, web] = parse(
        {
            "mcpServers": {
                "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
                "web": {"url": "https://mcp.example.com/mcp", "headers": {"X-Key": "k 1"}},
            }
        }
    )
    assert (time.name, time.transport, time.command, time.args) == (
        "time",
        "stdio",
        "uvx",
        ("mcp-server-time",),
    )
    assert time.env == {"TZ": "UTC"} and time.url is None
    assert (web.transport, web.url, web.headers) == (
        "http",
        "https://mcp.example.com/mcp",
        {"X-Key": "k 1"},
    )
    assert time.allowed_tools is None and time.require_approval == "unless-read-only"


def test_vs_code_format_and_disabled_servers() -> None:
    servers = parse(
        {
            "servers": {
                "local": {"type": "stdio", "command": "node", "args": ["server.js"]},
                "remote": {"type": "http", "url": "http://127.0.0.1:3001/mcp"},
                "off": {"command": "x", "disabled": True},
            },
            "inputs": [],
        }
    )
    assert [(s.name, s.transport) for s in servers] == [("local", "stdio"), ("remote", "http")]


def test_allowed_tools_and_approval_rules() -> None:
    [every, listed, always, never] = parse(
        {
            "mcpServers": {
                "every": {"command": "a", "allowedTools": ["read", "write"]},
                "listed": {"command": "b", "requireApproval": ["read"]},
                "always": {"command": "c", "requireApproval": "always"},
                "never": {"command": "d", "requireApproval": "never"},
            }
        }
    )
    assert every.allows("read") and not every.allows("delete")
    assert listed.allows("anything")
    # Default: MCP's readOnlyHint decides, and no hint counts as "may change things".
    assert not every.needs_approval("read", read_only=True)
    assert every.needs_approval("write", read_only=False)
    assert listed.needs_approval("read", read_only=True)  # listed: always asks
    assert not listed.needs_approval("other", read_only=True)
    assert listed.needs_approval("other", read_only=False)
    assert always.needs_approval("x", read_only=True)
    assert not never.needs_approval("x", read_only=False)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], 'mcp.json must hold a JSON object such as {"mcpServers": {}}'),
        ({"other": {}}, 'mcp.json must have an "mcpServers" object of servers by name'),
        ({"mcpServers": []}, 'mcp.json must have an "mcpServers" object'),
        ({"mcpServers": {"t": "uvx"}}, 'server "t" must be an object with a command or a url'),
        ({"mcpServers": {"t": {"args": ["x"]}}}, 'server "t" needs a "command"'),
        ({"mcpServers": {"t": {"command": "a", "url": "http://h/"}}}, "both a command and a url"),
        ({"mcpServers": {"t": {"command": ""}}}, '"command" that is not a non-empty string'),
        ({"mcpServers": {"t": {"command": "a", "args": "b"}}}, '"args" that is not a list'),
        ({"mcpServers": {"t": {"command": "a", "env": {"A": 1}}}}, '"env" that is not an object'),
        ({"mcpServers": {"t": {"url": "ftp://h/"}}}, "must start with http:// or https://"),
        ({"mcpServers": {"t": {"url": "http://h/", "headers": {"A": "b\n"}}}}, 'header "A"'),
        ({"mcpServers": {"t": {"type": "sse", "url": "http://h/"}}}, "\"type\" 'sse'"),
        ({"mcpServers": {"t": {"command": "a", "allowedTools": "x"}}}, '"allowedTools"'),
        ({"mcpServers": {"t": {"command": "a", "requireApproval": "ask"}}}, "'ask'"),
        ({"mcpServers": {"\n": {"command": "a"}}}, "printable, non-empty name"),
    ],
)
def test_a_bad_file_is_refused_in_one_line_saying_where(document: object, message: str) -> None:
    assert message in refusal(document)


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{\n  "mcpServers": {\n    "time": {"command": "x",}\n  }\n}\n')
    with pytest.raises(McpConfigError, match=r"is not valid JSON at line 3: "):
        read_mcp_config(path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(McpConfigError, match=r"does not exist$"):
        read_mcp_config(tmp_path / "missing.json")
    with pytest.raises(McpConfigError, match=r"cannot be read \(Is a directory\)$"):
        read_mcp_config(tmp_path)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"mcpServers": {"café": {"command": "x"}}}'.encode("latin-1"))
    with pytest.raises(McpConfigError, match=r"is not UTF-8 text$"):
        read_mcp_config(latin)
    with pytest.raises(McpConfigError, match=r"is not a usable file path$"):
        read_mcp_config(Path("a\x00b"))


def test_the_readme_example_file_parses() -> None:
    servers = read_mcp_config(ROOT / "mcp.example.json")
    assert [s.transport for s in servers] == ["stdio", "stdio", "http"]
    assert "list_directory" in (servers[1].allowed_tools or ())
    assert "YOUR-TOKEN" not in repr(servers[2])  # headers stay out of logs


def test_tool_names_are_prefixed_sanitised_and_unique() -> None:
    taken: set[str] = set()
    assert tool_name("time", "get_current_time", taken) == "time__get_current_time"
    assert tool_name("my files", "read.file", taken) == "my_files__read_file"
    assert tool_name("my.files", "read file", taken) == "my_files__read_file_2"
    long = tool_name("s" * 40, "t" * 40, taken)
    assert len(long) == 64 and long.startswith("s" * 40 + "__")
    assert tool_name("s" * 40, "t" * 40, taken) == long[:62] + "_2"
    assert tool_name("", "", taken) == "__"


@given(st.lists(st.tuples(st.text(), st.text()), max_size=30))
def test_every_tool_name_fits_openais_pattern_and_is_unique(pairs: list[tuple[str, str]]) -> None:
    taken: set[str] = set()
    names = [tool_name(server, tool, taken) for server, tool in pairs]
    assert all(OPENAI_NAME.match(name) for name in names)
    assert len(set(names)) == len(names)


def test_the_bot_does_not_load_the_mcp_sdk() -> None:
    # Tens of megabytes a bot without MCP_CONFIG never needs.
    code = "import sys, bot; print(sorted({'mcp', 'mcp_types'} & set(sys.modules)))"
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert ran.stdout.strip() == "[]"


def test_the_readme_shows_the_example_file() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Tools (MCP)") :]
    start = section.index("```json\n") + len("```json\n")
    shown = section[start : section.index("\n```", start)]
    assert json.loads(shown) == json.loads((ROOT / "mcp.example.json").read_text())
