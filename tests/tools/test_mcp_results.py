"""How MCP's tool listings and results become Tools and ToolResult text (no server)."""

from __future__ import annotations

import mcp_types as types

from tools.mcp import offered_tool, result_text, short
from tools.mcp_config import McpServer


def listed(**fields: object) -> types.Tool:
    return types.Tool.model_validate({"name": "search", "inputSchema": {}, **fields})


def test_a_listed_tool_becomes_a_tool_the_model_can_call() -> None:
    server = McpServer("docs site", url="https://docs.example.com/mcp")
    taken: set[str] = set()
    tool = offered_tool(
        server,
        listed(
            description="Search the docs.",
            inputSchema={"type": "object", "properties": {"q": {"type": "string"}}},
            annotations={"title": "Search docs", "readOnlyHint": True},
        ),
        taken,
    )
    assert (tool.name, tool.label) == ("docs_site__search", "docs site: Search docs")
    assert tool.description == "Search the docs."
    assert tool.parameters == {"type": "object", "properties": {"q": {"type": "string"}}}
    assert not tool.needs_approval
    # A second tool of the same name gets a name of its own; no hint means it asks first.
    again = offered_tool(server, listed(title="Search", annotations={"title": "ignored"}), taken)
    assert (again.name, again.label) == ("docs_site__search_2", "docs site: Search")
    assert again.description == "Search"  # no description: its title
    assert again.parameters == {"type": "object", "properties": {}}
    assert again.needs_approval


def test_approval_rules_of_the_server_apply_to_its_tools() -> None:
    read_only = listed(annotations={"readOnlyHint": True})
    always = McpServer("a", command="x", require_approval="always")
    listed_tools = McpServer("b", command="x", require_approval=frozenset({"search"}))
    never = McpServer("c", command="x", require_approval="never")
    assert offered_tool(always, read_only, set()).needs_approval
    assert offered_tool(listed_tools, read_only, set()).needs_approval
    assert not offered_tool(never, listed(), set()).needs_approval


def test_results_are_text_with_other_content_described() -> None:
    result = types.CallToolResult.model_validate(
        {
            "content": [
                {"type": "text", "text": "Found 2 pages."},
                {"type": "image", "data": "AAAA" * 100, "mimeType": "image/png"},
                {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
                {"type": "resource_link", "uri": "file:///a.md", "name": "a.md"},
                {"type": "resource", "resource": {"uri": "file:///b.md", "text": "# B"}},
                {"type": "resource", "resource": {"uri": "file:///c.bin", "blob": "AAAA"}},
            ]
        }
    )
    assert result_text(result).split("\n\n") == [
        "Found 2 pages.",
        "[image (image/png, about 300 bytes) not shown]",
        "[audio (audio/wav, about 3 bytes) not shown]",
        "[resource link: file:///a.md (a.md)]",
        "# B",
        "[resource file:///c.bin (binary) not shown]",
    ]


def test_structured_or_empty_results() -> None:
    structured = types.CallToolResult.model_validate(
        {"content": [], "structuredContent": {"temperature": 21.5}}
    )
    assert result_text(structured) == '{"temperature": 21.5}'
    empty = types.CallToolResult.model_validate({"content": []})
    assert result_text(empty) == "(the tool returned nothing)"


def test_failures_are_one_short_line() -> None:
    assert short(ValueError("bad\n  input")) == "bad input"
    assert short(ExceptionGroup("group", [OSError("pipe closed")])) == "pipe closed"
    assert short(TimeoutError()) == "TimeoutError"
    long = short(RuntimeError("x" * 1000))
    assert len(long) == 300 and long.endswith("…")
