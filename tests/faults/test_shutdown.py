"""SIGTERM to a real `cowork serve` while it works through paced posts: the
process exits without sending its backlog at the platform's pace, hands the
rows it claimed back to the outbox, and the next process sends each of them
exactly once. Nothing here is timed (benchmarks/shutdown.py times the exit)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.faults.fleet import wait_http
from tests.faults.shutdown import scenario, stop_mid_backlog, until


async def test_sigterm_hands_unsent_posts_back_and_the_next_process_sends_each_once(tmp_path: Path) -> None:
    out = await stop_mid_backlog(tmp_path, rows=20, sent_first=3)
    assert out.exit_code == 0
    assert "sending" not in out.after_exit, out  # nothing left claimed by a process that is gone
    assert out.after_exit.get("pending", 0) > 0, out  # handed back, not sent at 1 a second before exiting
    assert sum(out.posts.values()) == 20 and set(out.posts.values()) == {1}, out.posts  # never lost, never twice
    assert out.final == {"sent": 20}


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z")  # exited, not yet reaped


async def test_serve_can_run_its_engine_in_a_child_that_never_outlives_it(tmp_path: Path) -> None:
    async with scenario(tmp_path, COWORK_ENGINE_PROCESS="1") as (_, fleet, _url):
        for name, stop in (("terminated", signal.SIGTERM), ("killed", signal.SIGKILL)):
            web = fleet.web(name, worker=True)
            await wait_http(f"{web}/healthz?ready=1", 60)
            parent = fleet.procs[name]
            await until(lambda p=parent: bool(_children(p.pid)), 60)
            (child,) = _children(parent.pid)
            assert "--wake-stdin" in _command(child)
            parent.send_signal(stop)
            await until(lambda c=child: _gone(c), 60)
            await until(lambda p=parent: p.poll() is not None, 60)
            assert parent.returncode == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
