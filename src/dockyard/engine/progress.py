"""dockerd's JSON progress messages (pull, push), queued for the API to stream.

A message is what `docker pull` renders: {"status": ..., "id": ...,
"progressDetail": {"current": n, "total": t}, "progress": "[==>  ] 1MB/2MB"}.
Producers may run in worker threads; `emit` is safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

_BAR_WIDTH = 50
_THROTTLE = 0.1  # seconds between two progress updates of one layer


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, 4 significant digits ("1.23MB")."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


def progress_text(current: int, total: int) -> str:
    """dockerd's JSONProgress.String at the width it uses for the API (a bar of 50)."""
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(_BAR_WIDTH, int(current / total * 100) // 2)
    bar = "[" + "=" * percentage + ">" + " " * (_BAR_WIDTH - percentage) + "] "
    numbers = f"{human_size(current):>8}/{human_size(total)}" if current <= total else ""
    return bar + numbers


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


class ProgressStream:
    """Messages from a pull or push, in order, until the job ends."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._last: dict[str, float] = {}

    def emit(self, message: dict[str, Any]) -> None:
        if threading.get_ident() == self._loop_thread:
            self._queue.put_nowait(message)
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, message)

    def status(self, status: str, ident: str | None = None, detail: bool = True) -> None:
        """A status line; with `detail` (a layer's state) clients redraw it in place."""
        message: dict[str, Any] = {"status": status}
        if ident is not None:
            if detail:
                message["progressDetail"] = {}
            message["id"] = ident
        self.emit(message)

    def progress(
        self, status: str, ident: str, current: int, total: int, force: bool = False
    ) -> None:
        """A progress update, at most one per layer every 100 ms (unless forced)."""
        now = time.monotonic()
        if not force and now - self._last.get(ident, 0.0) < _THROTTLE:
            return
        self._last[ident] = now
        detail = {"current": current, "total": total} if total > 0 else {"current": current}
        self.emit(
            {
                "status": status,
                "progressDetail": detail,
                "progress": progress_text(current, total),
                "id": ident,
            }
        )

    async def messages(self, job: asyncio.Future[Any]) -> AsyncIterator[dict[str, Any]]:
        """Yield messages until `job` is done and every message it queued is out."""
        job.add_done_callback(lambda _f: self._queue.put_nowait(None))
        while True:
            message = await self._queue.get()
            if message is None:
                if job.done() and self._queue.empty():
                    return
                continue
            yield message
