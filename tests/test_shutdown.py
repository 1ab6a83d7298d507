"""SIGTERM to a real `cowork serve` while it works through paced posts: the
process exits without sending its backlog at the platform's pace, hands the
rows it claimed back to the outbox, and the next process sends each of them
exactly once. Nothing here is timed (benchmarks/shutdown.py times the exit)."""

from __future__ import annotations

from pathlib import Path

from tests.faults.shutdown import stop_mid_backlog


async def test_sigterm_hands_unsent_posts_back_and_the_next_process_sends_each_once(tmp_path: Path) -> None:
    out = await stop_mid_backlog(tmp_path, rows=20, sent_first=3)
    assert out.exit_code == 0
    assert "sending" not in out.after_exit, out  # nothing left claimed by a process that is gone
    assert out.after_exit.get("pending", 0) > 0, out  # handed back, not sent at 1 a second before exiting
    assert sum(out.posts.values()) == 20 and set(out.posts.values()) == {1}, out.posts  # never lost, never twice
    assert out.final == {"sent": 20}
