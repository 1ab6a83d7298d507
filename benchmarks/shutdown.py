"""`python -m benchmarks.shutdown [--rows 40] [--runs 3]`: how long `cowork serve`
takes from SIGTERM to exit while it works through a backlog of paced Slack posts
(the fake Slack enforcing about one post a second per channel), and what became
of the backlog: handed back, sent by the next process, each post exactly once.
Prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from tests.faults.shutdown import stop_mid_backlog


async def measure(rows: int, runs: int) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            got = await stop_mid_backlog(Path(d), rows=rows, sent_first=3)
        out.append({
            "exit_seconds": round(got.exit_seconds, 2), "exit_code": got.exit_code,
            "sent_before_sigterm": got.sent_before_stop, "outbox_after_exit": got.after_exit,
            "posts_lost": rows - len(got.posts), "posts_twice": sum(1 for n in got.posts.values() if n > 1),
        })  # fmt: skip
    exits = [r["exit_seconds"] for r in out]
    return {"rows": rows, "runs": out, "exit_seconds_median": statistics.median(exits),
            "exit_seconds_max": max(exits), "cpus": os.cpu_count()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.shutdown")
    p.add_argument("--rows", type=int, default=40)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    print(json.dumps(asyncio.run(measure(args.rows, args.runs)), indent=2))


if __name__ == "__main__":
    main()
