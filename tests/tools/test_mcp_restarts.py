"""A server that stops in the middle of a call, built on the MCP SDK here: a call that
may have reached it is not sent again unless the tool is read-only (one Allow press must
never write twice)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.tools.conftest import MakeToolbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Both tools record the call in a file, then the server exits without answering the
# first call of each (the second, if one comes, is answered).
SERVER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from mcp.server.mcpserver import MCPServer
    from mcp_types import ToolAnnotations

    log = Path(sys.argv[1])
    server = MCPServer("crashy")

    def record(line: str) -> str:
        first = not log.exists()
        with log.open("a") as file:
            file.write(line + "\\n")
        if first:
            os._exit(0)  # dies mid-call: the call ran, no answer goes back
        return "done"

    @server.tool()
    def append(line: str) -> str:
        \"\"\"Append a line to the file.\"\"\"
        return record(line)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def peek(line: str) -> str:
        \"\"\"Read-only look-up.\"\"\"
        return record(line)

    server.run()
    """
)


def crashy_server(tmp_path: Path) -> tuple[dict[str, object], Path]:
    script = tmp_path / "crashy.py"
    script.write_text(SERVER)
    log = tmp_path / "calls.txt"
    return {"command": sys.executable, "args": [str(script), str(log)]}, log


async def test_a_write_call_is_not_sent_again_after_the_server_stopped_during_it(
    make_toolbox: MakeToolbox, tmp_path: Path
) -> None:
    entry, log = crashy_server(tmp_path)
    toolbox = await make_toolbox({"crashy": entry}, TOOL_TIMEOUT="20")
    tools = {tool.name: tool for tool in toolbox.tools()}
    assert tools["crashy__append"].needs_approval
    result = await toolbox.call("crashy__append", {"line": "written once"})
    assert log.read_text() == "written once\n"  # at most once for one approval
    assert result.is_error
    assert "stopped during the call" in result.text and "may have run" in result.text
    # The server was started again: the next call works.
    again = await toolbox.call("crashy__append", {"line": "second"})
    assert not again.is_error and again.text == "done"
    assert log.read_text() == "written once\nsecond\n"


async def test_a_read_only_call_is_sent_again_after_the_server_stopped_during_it(
    make_toolbox: MakeToolbox, tmp_path: Path
) -> None:
    entry, log = crashy_server(tmp_path)
    toolbox = await make_toolbox({"crashy": entry}, TOOL_TIMEOUT="20")
    assert not {tool.name: tool for tool in toolbox.tools()}["crashy__peek"].needs_approval
    result = await toolbox.call("crashy__peek", {"line": "look"})
    assert not result.is_error and result.text == "done"
    assert log.read_text() == "look\nlook\n"
