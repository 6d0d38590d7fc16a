"""The packages import each other in one direction, and the text, model and store packages
(with memory.py) import nothing from discord.py: they are the parts of the bot that know no
Discord, and stay usable (and testable) without it.

Checked twice: on the import statements themselves (anywhere in a module, inside functions
too), and by importing the modules and seeing whether discord.py got loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISCORD_FREE = ("text", "model", "store")
# What the Discord-free modules never import, at run time or for type checking.
DISCORD_SIDE = ("discord", "discord_side", "conversation")

# Imports the modules in order and prints the first one after which discord.py is loaded.
PROBE = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
    if "discord" in sys.modules:
        print(name)
        break
"""


def modules(package: str) -> list[str]:
    """Every module of `package` (its folder walked, subpackages included), as dotted names."""
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def files(*places: str) -> list[Path]:
    """The Python files of the packages and top-level modules `places` ("text", "memory.py")."""
    found: list[Path] = []
    for place in places:
        path = ROOT / place
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> list[tuple[str, bool]]:
    """Every module `path` imports, anywhere in it, each with whether it is imported at run
    time (False: under `if TYPE_CHECKING:`). `from a import b` names both a and a.b (b may
    be a module)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, runtime) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: a relative import"
            module = node.module or ""
            found.append((module, runtime))
            found.extend((f"{module}.{alias.name}", runtime) for alias in node.names)
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runtime)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, runtime)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True)
    return found


def within(module: str, packages: tuple[str, ...]) -> bool:
    """Whether `module` is one of `packages` or inside one."""
    return any(module == package or module.startswith(package + ".") for package in packages)


def offences(paths: list[Path], forbidden: tuple[str, ...], *, runtime_only: bool) -> list[str]:
    """Each import of a `forbidden` module (or one inside it) in `paths`, as "file: module"."""
    return [
        f"{path.relative_to(ROOT)}: {module}"
        for path in paths
        for module, runtime in imports(path)
        if within(module, forbidden) and (runtime or not runtime_only)
    ]


def test_the_walk_finds_the_modules() -> None:
    assert "text.attachments.kinds" in modules("text") and "text" in modules("text")
    assert "model.client" in modules("model") and modules("store")


def test_the_import_check_sees_imports_anywhere(tmp_path: Path) -> None:
    source = (
        "import discord.ui\n"
        "from conversation import channel\n"
        "if TYPE_CHECKING:\n    from discord_side.replies import Reply\n"
        "def f():\n    import conversation.access\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    seen = imports(path)
    assert ("discord.ui", True) in seen and ("conversation.channel", True) in seen
    assert ("discord_side.replies", False) in seen and ("conversation.access", True) in seen


def test_text_model_store_and_memory_import_no_discord_nor_the_bot_s_sides() -> None:
    paths = files(*DISCORD_FREE, "memory.py")
    assert offences(paths, DISCORD_SIDE, runtime_only=False) == []


def test_config_imports_neither_side() -> None:
    assert offences(files("config.py"), ("discord_side", "conversation"), runtime_only=False) == []


def test_the_conversation_does_not_import_the_commands() -> None:
    paths = files("conversation")
    assert offences(paths, ("discord_side.commands",), runtime_only=False) == []


def test_the_discord_side_imports_the_conversation_only_from_the_commands() -> None:
    paths = [path for path in files("discord_side") if path.name != "commands.py"]
    assert offences(paths, ("conversation",), runtime_only=True) == []


def test_text_model_and_store_load_no_discord() -> None:
    names = [name for package in DISCORD_FREE for name in modules(package)]
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(names)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.strip() == "", f"importing {ran.stdout.strip()} loads discord"


def test_the_shards_and_their_leases_import_no_discord_nor_the_bot_s_sides() -> None:
    assert offences(files("operations/shards.py"), DISCORD_SIDE, runtime_only=False) == []


def test_the_readers_rule_and_the_search_tools_import_no_discord() -> None:
    """Who may read what (knowledge/readers.py) and the tools over the index
    (knowledge/tools.py) are pure; their discord.py side is readers_discord.py and offer.py."""
    paths = files("knowledge/readers.py", "knowledge/tools.py")
    assert offences(paths, DISCORD_SIDE, runtime_only=False) == []


BOT_PARTS = ("bot.py", "config.py", "memory.py", "conversation", "discord_side", "knowledge",
             "model", "operations", "store", "text", "tools")  # fmt: skip


def test_timeouts_use_asyncio_timeout_never_wait_for() -> None:
    """On Python 3.11, `asyncio.wait_for` returns normally when the task running it is
    cancelled in the same loop turn as the awaited thing completes: a background loop
    then never ends and shutdown waits for it forever (fixed in 3.12, whose wait_for is
    `asyncio.timeout`). The bot's code uses `asyncio.timeout` everywhere."""
    calls = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in files(*BOT_PARTS)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "wait_for"
        and isinstance(node.value, ast.Name) and node.value.id == "asyncio"
    ]  # fmt: skip
    assert calls == []
