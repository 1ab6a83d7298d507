"""`python -m tests.soak slack|teams|both --minutes 10 --tasks 50`: the
rate-limit soak; prints JSON, exits 1 if a 429 was received or p95 card
staleness is over the bound.

`python -m tests.soak approvals --tasks 1000 --channels 100 --minutes 5`: the
approval soak (tests/soak/approvals.py): approval-needing tasks visible per
minute in one Slack workspace; exits 1 if a 429 was received."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.soak.approvals import run_approvals
from tests.soak.run import run_soak
from tests.soak.workload import Workload


def verdict(out: dict[str, Any], bound: float) -> list[str]:
    problems = []
    for platform, traffic in out["traffic"].items():
        if traffic["429s_sent"]:
            problems.append(f"{platform}: 429s received: {traffic['429s_sent']}")
    for platform, figures in out["staleness_seconds"].items():
        p95 = figures["all"].get("p95", 0.0)
        if p95 > bound:
            problems.append(f"{platform}: p95 card staleness {p95}s > {bound:g}s")
        if figures["never_shown"]:
            problems.append(f"{platform}: {figures['never_shown']} state changes never shown")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.soak")
    p.add_argument("platform", choices=["slack", "teams", "both", "approvals"])
    p.add_argument("--channels", type=int, default=100, help="approvals: channels the tasks are spread over")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--ramp", type=float, default=60.0, help="seconds over which the tasks are started")
    p.add_argument("--gap", type=float, nargs=2, default=(30.0, 60.0), help="seconds between a task's changes")
    p.add_argument("--bound", type=float, default=15.0, help="p95 staleness target, seconds")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", help="folder to keep the database and logs in")
    args = p.parse_args(argv)
    if args.platform == "approvals":
        return approvals(args)
    platforms = {"slack", "teams"} if args.platform == "both" else {args.platform}
    w = Workload(tasks=args.tasks, seconds=args.minutes * 60, ramp=args.ramp, gap=tuple(args.gap), seed=args.seed)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(args.keep or d)
        folder.mkdir(parents=True, exist_ok=True)
        out = asyncio.run(run_soak(folder, platforms, w))
    out["problems"] = verdict(out, args.bound)
    print(json.dumps(out, indent=2))
    return 1 if out["problems"] else 0


def approvals(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(args.keep or d)
        folder.mkdir(parents=True, exist_ok=True)
        out = asyncio.run(run_approvals(folder, tasks=args.tasks, channels=args.channels, seconds=args.minutes * 60))
    out["problems"] = [f"429s received: {out['429s_sent']}"] if out["429s_sent"] else []
    print(json.dumps(out, indent=2))
    return 1 if out["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
