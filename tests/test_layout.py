"""The text, model and store packages import nothing from discord.py: they are the parts of
the bot that know no Discord, and stay usable (and testable) without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISCORD_FREE = ("text", "model", "store")

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


def test_the_walk_finds_the_modules() -> None:
    assert "text.attachments.kinds" in modules("text") and "text" in modules("text")
    assert "model.client" in modules("model") and modules("store")


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
