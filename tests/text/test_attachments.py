"""The attachments package as a whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_file_readers_are_imported_only_when_a_file_needs_them():
    # ~12 MB of a bot process that may never see an attachment (issue 16).
    readers = "{'PIL', 'pypdf', 'charset_normalizer'}"
    code = f"import sys, bot; print(sorted({readers} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[2]
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert ran.stdout.strip() == "[]"
