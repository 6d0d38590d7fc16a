"""What the tool loop and the tool providers share (MCP servers, built-in tools)."""
from __future__ import annotations
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

@dataclass(frozen=True, slots=True)
class Tool:
    """A tool offered to the model. `name` is the function name sent in `tools`
    (OpenAI: ^[a-zA-Z0-9_-]{1,64}$, unique in the toolbox); `label` what people read
    (e.g. "time: get_current_time"); `parameters` a JSON Schema object."""
    name: str
    label: str
    description: str
    parameters: dict[str, Any]
    needs_approval: bool

    def definition(self) -> dict[str, Any]:
        """The chat-completions `tools` entry."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}

@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call of the model's: `arguments` is the JSON text as the model wrote it
    (it may be invalid)."""
    id: str
    name: str
    arguments: str

@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returned, as untrusted text; `is_error` when it failed, timed out,
    was denied or does not exist (the model is told, and the answer goes on)."""
    text: str
    is_error: bool = False

class Toolbox(Protocol):
    def tools(self) -> Sequence[Tool]: ...
    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run a tool by its `name`; never raises for a tool's own failure or its
        timeout (TOOL_TIMEOUT): returns ToolResult(is_error=True) saying what happened."""
        ...
