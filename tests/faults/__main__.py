"""`python -m tests.faults crash|scaleout|pg|slack|teams|llm ...`: the long
fault scenarios; each prints its figures as JSON and exits 1 on problems."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tests.faults.fleet import drop_pg, scratch_pg

PG = "postgresql://postgres@127.0.0.1:5432/test"


def _database(args: argparse.Namespace, folder: Path) -> tuple[str, bool]:
    if args.sqlite:
        from tasks.store.schema import upgrade

        url = f"sqlite:///{folder / 'cowork.db'}"
        upgrade(url)
        return url, False
    return scratch_pg(args.postgres), True


Scenario = Callable[[str, Path], Coroutine[Any, Any, dict[str, Any]]]  # (database URL, folder) -> figures


def _on_database(args: argparse.Namespace, run: Scenario) -> dict[str, Any]:
    """Run a scenario on a scratch database (dropped afterwards) in a scratch folder."""
    with tempfile.TemporaryDirectory() as d:
        url, scratch = _database(args, Path(d))
        try:
            return asyncio.run(run(url, Path(d)))
        finally:
            if scratch:
                drop_pg(args.postgres, url)


def cmd_crash(args: argparse.Namespace) -> dict[str, Any]:
    from tests.faults.crash import CrashPlan, run_crash

    plan = CrashPlan(tasks=args.tasks, workers=args.workers, kills=args.kills, fault=args.fault,
                     within=args.within, seed=args.seed)  # fmt: skip
    return _on_database(args, lambda url, folder: run_crash(url, folder, plan))


def cmd_scaleout(args: argparse.Namespace) -> dict[str, Any]:
    from tests.faults.scaleout import LoadPlan, run_load

    plan = LoadPlan(tasks=args.tasks, webs=args.webs, workers=args.workers,
                    concurrency=args.concurrency, within=args.within)  # fmt: skip
    return _on_database(args, lambda url, folder: run_load(url, folder, plan))


def _pace(args: argparse.Namespace) -> dict[str, Any]:
    return {"rate": args.rate, "workers": args.workers, "within": args.within}


def cmd_platform(args: argparse.Namespace) -> dict[str, Any]:
    from tests.faults.platform_outage import OutagePlan, run_outage

    plan = OutagePlan(outage=args.outage, errors=args.errors, **_pace(args))
    return _on_database(args, lambda url, folder: run_outage(args.platform, url, folder, plan))


def cmd_pg(args: argparse.Namespace) -> dict[str, Any]:
    from tests.faults.db_outage import DbFaultPlan, run_db_faults

    plan = DbFaultPlan(kills=args.kills, down=args.down, lease=args.lease, **_pace(args))
    with tempfile.TemporaryDirectory() as d:
        return asyncio.run(run_db_faults(Path(d), plan))


def cmd_llm(args: argparse.Namespace) -> dict[str, Any]:
    from tests.faults.llm_outage import LlmFaultPlan, run_llm_faults

    plan = LlmFaultPlan(outage=args.outage, timeout=args.timeout, **_pace(args))
    return _on_database(args, lambda url, folder: run_llm_faults(url, folder, plan))


def _pace_options(p: argparse.ArgumentParser, rate: float) -> None:
    p.add_argument("--rate", type=float, default=rate, help="new requests per second, through the faults")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--within", type=float, default=120.0, help="seconds to settle after the last fault")


def _outage_options(p: argparse.ArgumentParser, platform: str) -> None:
    p.add_argument("--outage", type=float, default=60.0, help="seconds the platform is gone")
    p.add_argument("--errors", type=float, default=8.0, help="seconds of each kind of error answer")
    _pace_options(p, 2.0)
    p.set_defaults(func=cmd_platform, platform=platform)


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
    g = sub.add_parser("pg", help="PostgreSQL backends killed, then the server restarted (a private cluster)")
    g.add_argument("--kills", type=int, default=5, help="rounds of pg_terminate_backend")
    g.add_argument("--down", type=float, default=10.0, help="seconds PostgreSQL is stopped")
    g.add_argument("--lease", type=float, default=2.0, help="COWORK_LEASE_SECONDS for the bot")
    _pace_options(g, 2.0)
    g.set_defaults(func=cmd_pg)
    m = sub.add_parser("llm", help="the LLM server hanging during planning, then during llm.* skills")
    m.add_argument("--outage", type=float, default=30.0, help="seconds of each hang")
    m.add_argument("--timeout", type=float, default=2.0, help="COWORK_LLM_TIMEOUT for the bot")
    _pace_options(m, 1.0)
    m.set_defaults(func=cmd_llm)
    _outage_options(sub.add_parser("slack", help="fake Slack answering 429 and 500, then gone"), "slack")
    _outage_options(sub.add_parser("teams", help="fake Bot Connector answering 412, 502, 504, then gone"), "teams")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.func(args)
    print(json.dumps(out, indent=2))
    return 1 if out.get("problems") else 0


if __name__ == "__main__":
    sys.exit(main())
