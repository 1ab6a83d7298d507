"""Live events for open console pages (server-sent events), in process.

Each open page subscribes as a person; a message event reaches every page
unless it is private (a notice, a direct message), when only its owner's pages
get it. A page that stops reading is dropped rather than growing memory: it
reconnects and reloads the channel from the transcript.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

QUEUE_SIZE = 1000


class Subscriber:
    def __init__(self, viewer: str):
        self.viewer = viewer
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)

    def offer(self, event: dict[str, Any] | None) -> bool:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        """Make the reader stop, even when its queue is full."""
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


class Hub:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()

    @property
    def count(self) -> int:
        return len(self._subscribers)

    @contextmanager
    def subscribe(self, viewer: str) -> Iterator[Subscriber]:
        sub = Subscriber(viewer)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def publish(self, event: dict[str, Any], private_to: str | None = None) -> int:
        """Send to every page that may see the event; the number reached."""
        reached = 0
        for sub in list(self._subscribers):
            if private_to is not None and sub.viewer != private_to:
                continue
            if sub.offer(event):
                reached += 1
            else:
                self._subscribers.discard(sub)
                sub.end()
        return reached

    def close(self) -> None:
        """End every stream (server shutdown)."""
        for sub in list(self._subscribers):
            sub.end()
        self._subscribers.clear()


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event frame."""
    data = json.dumps(event, separators=(",", ":"), default=str)
    return f"event: {event.get('type', 'message')}\ndata: {data}\n\n".encode()
