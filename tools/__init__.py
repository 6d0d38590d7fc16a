"""Tools the model can call: MCP servers and (later) built-in tools."""
