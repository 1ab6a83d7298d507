"""`cowork serve`'s engine in a child process (`cowork worker --wake-stdin`), so
that acknowledging Slack and Teams never waits for the engine: not for its CPU
(the turns run on another interpreter), nor for its database work (the child has
its own connection and group commit). The web process keeps intake, delivery
and the pages.

The parent wakes the child's claim loop at once when it wrote a task or a step
may go on (a byte on the child's stdin: no polling delay); the child stops when
its stdin closes, so it never outlives its parent, even one killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)
STOP_WITHIN = 8.0  # seconds the child gets to stop after SIGTERM before it is killed


class EngineProcess:
    """The child running the engine, and the pipe that wakes it."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *, console: bool | None = None) -> None:
        """`console`: `serve --console` (the child's skills then see the console too)."""
        env = {**os.environ, **({"COWORK_CONSOLE": "1"} if console else {})}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.ops.cli", "worker", "--wake-stdin", stdin=asyncio.subprocess.PIPE, env=env
        )
        log.info("engine runs in process %s", self.proc.pid)

    def wake(self) -> None:
        """Ask the child to look for work now (never blocks; a lost wake costs a poll)."""
        stdin = self.proc.stdin if self.proc is not None else None
        if stdin is not None and not stdin.is_closing():
            with contextlib.suppress(Exception):
                stdin.write(b"\n")

    async def stop(self, within: float = STOP_WITHIN) -> int | None:
        """SIGTERM, then SIGKILL after `within` seconds; the child's exit code."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc is not None else None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), within)
        except TimeoutError:
            log.warning("the engine process did not stop within %gs; killing it", within)
            proc.kill()
            return await proc.wait()


async def wakes_from_stdin(wake: Callable[[], None], gone: asyncio.Event) -> None:
    """In the child: `wake()` at every line on stdin; `gone` set when stdin closes (the parent is gone)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        wake()
    gone.set()
