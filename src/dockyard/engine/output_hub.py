"""A running container's output, fanned out to every attached client."""

from __future__ import annotations

import asyncio

# A frame for attached clients: (stream, data); None ends the stream (the container exited).
Frame = tuple[int, bytes] | None


class OutputHub:
    """Fans a container's output out to every attached client.

    It counts the bytes of each stream published in the current run, so that an
    attach that replays the log and then follows (logs=1&stream=1) can drop what
    the log already gave it."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Frame]] = set()
        self.run = 0  # bumped at each start
        self.published = {1: 0, 2: 0}

    def new_run(self) -> None:
        self.run += 1
        self.published = {1: 0, 2: 0}

    def subscribe(self) -> asyncio.Queue[Frame]:
        q: asyncio.Queue[Frame] = asyncio.Queue()
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Frame]) -> None:
        self._subscribers.discard(q)

    def publish(self, frame: tuple[int, bytes]) -> None:
        self.published[frame[0]] = self.published.get(frame[0], 0) + len(frame[1])
        for q in self._subscribers:
            q.put_nowait(frame)

    def end(self) -> None:
        """The container exited: every current stream ends."""
        subscribers, self._subscribers = self._subscribers, set()
        for q in subscribers:
            q.put_nowait(None)
