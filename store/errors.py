"""The store's one exception, and the one-line reason it gives for a driver's error."""

from __future__ import annotations

import os


class StoreError(Exception):
    """The database cannot be opened, written or read; str() is a one-line human reason."""


def reason(error: BaseException) -> str:
    """The driver's own one-line message, or what an OS error's errno means."""
    # asyncio gives connection errors as OSError with an errno and a message naming the
    # address ("Connect call failed ..."); the errno says it better.
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno).lower()
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error).strip()
    line = text.splitlines()[0].strip() if text else ""
    return line or type(error).__name__
