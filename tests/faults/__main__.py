"""`python -m tests.faults crash ...`: the long fault scenarios; prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.faults.fleet import drop_pg, scratch_pg

PG = "postgresql://postgres@127.0.0.1:5432/test"


def _database(args: argparse.Namespace, folder: Path) -> tuple[str, bool]:
    if args.sqlite:
        from tasks.schema import upgrade

        url = f"sqlite:///{folder / 'cowork.db'}"
        upgrade(url)
        return url, False
    return scratch_pg(args.postgres), True


def cmd_crash(args: argparse.Namespace) -> dict[str, Any]:
    from tests.faults.crash import CrashPlan, run_crash

    plan = CrashPlan(tasks=args.tasks, workers=args.workers, kills=args.kills, fault=args.fault,
                     within=args.within, seed=args.seed)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        url, scratch = _database(args, Path(d))
        try:
            return asyncio.run(run_crash(url, Path(d), plan))
        finally:
            if scratch:
                drop_pg(args.postgres, url)


def cmd_scaleout(args: argparse.Namespace) -> dict[str, Any]:
    from tests.faults.scaleout import LoadPlan, run_load

    plan = LoadPlan(tasks=args.tasks, webs=args.webs, workers=args.workers,
                    concurrency=args.concurrency, within=args.within)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        url, scratch = _database(args, Path(d))
        try:
            return asyncio.run(run_load(url, Path(d), plan))
        finally:
            if scratch:
                drop_pg(args.postgres, url)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.faults")
    p.add_argument("--postgres", default=PG, help="admin URL; scratch databases are made beside it")
    p.add_argument("--sqlite", action="store_true", help="use a SQLite file instead")
    sub = p.add_subparsers(required=True)
    c = sub.add_parser("crash", help="workers SIGKILLed, and self-killed after effects")
    c.add_argument("--tasks", type=int, default=200)
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--kills", type=int, default=100)
    c.add_argument("--fault", type=float, default=0.02)
    c.add_argument("--within", type=float, default=900.0)
    c.add_argument("--seed", type=int)
    c.set_defaults(func=cmd_crash)
    s = sub.add_parser("scaleout", help="signed Slack events at web processes, tasks run by workers")
    s.add_argument("--tasks", type=int, default=500)
    s.add_argument("--webs", type=int, default=2)
    s.add_argument("--workers", type=int, default=3)
    s.add_argument("--concurrency", type=int, default=16)
    s.add_argument("--within", type=float, default=300.0)
    s.set_defaults(func=cmd_scaleout)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.func(args)
    print(json.dumps(out, indent=2))
    return 1 if out.get("problems") else 0


if __name__ == "__main__":
    sys.exit(main())
