"""What the stand-ins share: a log of requests that tests can wait on.

Tests never sleep for a fixed time; they wait until the log satisfies a
condition (``await recorder.wait_for(lambda: ...)``), which is re-checked each
time a stand-in records something.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class RecordedRequest:
    """One HTTP request as a stand-in received it."""

    method: str
    path: str
    json: Any
    headers: dict[str, str]
    status: int = 0  # filled in when the stand-in answers
    at: float = field(default_factory=time.monotonic)
    query: dict[str, str] = field(default_factory=dict)  # URL query parameters
    files: list[dict[str, Any]] = field(default_factory=list)  # uploads in a multipart body
    # Set when the stand-in answered with an injected fault instead of (or after) handling
    # the request: a short description such as "503 json" or "429 rate limit".
    fault: str | None = None


class Recorder:
    """An append-only log of requests plus a way to wait for a condition on it."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._changed = asyncio.Condition()

    async def record(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        await self.notify()

    async def notify(self) -> None:
        """Wake waiters; call after any change a test might wait for."""
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Return ``predicate()`` once it is truthy; fail the test after ``timeout`` s."""

        async def _wait() -> T:
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"condition not met within {timeout}s") from None
