"""Several toolboxes as one (tools/combined.py): calls reach the toolbox offering the tool."""

from __future__ import annotations

import logging
from typing import Any

from tools.base import Tool, ToolResult
from tools.combined import Combined


class Box:
    def __init__(self, owner: str, *names: str) -> None:
        self.owner = owner
        self.offered = [Tool(n, f"{owner}: {n}", "", {"type": "object"}, False) for n in names]
        self.calls: list[str] = []

    def tools(self) -> list[Tool]:
        return self.offered

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        self.calls.append(name)
        return ToolResult(f"{self.owner} ran {name}")


async def test_each_call_goes_to_the_toolbox_offering_it(caplog) -> None:
    knowledge, mcp = Box("knowledge", "search_messages"), Box("mcp", "time__now", "search_messages")
    combined = Combined(knowledge, mcp)
    with caplog.at_level(logging.WARNING, logger="chatbot"):
        names = [tool.name for tool in combined.tools()]
        combined.tools()
    assert names == ["search_messages", "time__now"]
    assert [r.message for r in caplog.records].count(
        "two tools are named search_messages: mcp: search_messages is left out"
    ) == 1
    assert (await combined.call("time__now", {})).text == "mcp ran time__now"
    assert (await combined.call("search_messages", {})).text == "knowledge ran search_messages"
    missing = await combined.call("other", {})
    assert (
        missing.is_error and knowledge.calls == ["search_messages"] and mcp.calls == ["time__now"]
    )
