"""Several toolboxes offered to one answer as one (MCP's servers and the built-in
knowledge tools): `Combined`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tools.base import Tool, Toolbox, ToolResult

log = logging.getLogger("chatbot")


class Combined:
    """The tools of `toolboxes` (a `Toolbox`): each call goes to the toolbox that offers
    the tool. Names are unique in a request, so where two offer the same name the first
    toolbox's tool is offered and the other's is left out (logged once)."""

    def __init__(self, *toolboxes: Toolbox) -> None:
        self.toolboxes = toolboxes
        self._clashes_logged: set[str] = set()

    def _owners(self) -> dict[str, tuple[Tool, Toolbox]]:
        owners: dict[str, tuple[Tool, Toolbox]] = {}
        for toolbox in self.toolboxes:
            for tool in toolbox.tools():
                if tool.name not in owners:
                    owners[tool.name] = (tool, toolbox)
                elif tool.name not in self._clashes_logged:
                    self._clashes_logged.add(tool.name)
                    log.warning("two tools are named %s: %s is left out", tool.name, tool.label)
        return owners

    def tools(self) -> Sequence[Tool]:
        return [tool for tool, _ in self._owners().values()]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run `name` in the toolbox offering it; an error result when none does."""
        owner = self._owners().get(name)
        if owner is None:
            return ToolResult(f"There is no tool named {name!r}.", is_error=True)
        return await owner[1].call(name, arguments)
