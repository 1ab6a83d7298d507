"""The `cowork` command: serve, worker, tasks, db, doctor, teams-package, bench."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from adapters.sanitize import db_id
from bot.assembly.config import Settings, describe
from bot.ops import logs
from tasks.rules.clock import utcnow

log = logging.getLogger("cowork")

EPILOG = "Configuration comes from the environment (or a .env file):\n" + "\n".join(
    f"  {env:<22} {meaning}" + (f" (default {default})" if default else "") for env, default, meaning in describe()
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        settings = Settings()
    except Exception as e:
        print(f"cowork: bad configuration: {e}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level, settings.log_json)
    try:
        return int(args.func(settings, args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        from tasks.planning.playbooks import PlaybookError
        from tasks.rules.policy import PolicyError

        if isinstance(e, PolicyError | PlaybookError):
            print(f"cowork: {e}", file=sys.stderr)
            return 2
        raise


def _task_id(raw: str) -> int:
    """A task number the database can hold (argparse's int would take any)."""
    value = db_id(raw)
    if value is None:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a task number")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cowork", description="Cowork: a self-hosted task-running bot for Slack and Microsoft Teams.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the HTTP server and a worker in one process",
                       description="Run the HTTP server (Slack, Teams, console, /healthz, /metrics) "
                       "and, unless --no-worker, a worker in the same process.")  # fmt: skip
    s.add_argument("--no-worker", action="store_true", help="web only: leave tasks to `cowork worker`")
    s.add_argument("--console", action="store_true", help="serve the console page beside Slack/Teams")
    s.add_argument("--host", help="address to listen on (default COWORK_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default PORT or 3978)")
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="run a worker: claims and runs tasks",
                       description="Claim runnable tasks under a lease and run them; any number of "
                       "workers may share one PostgreSQL database.")  # fmt: skip
    w.add_argument("--burst", action="store_true", help="run what is runnable now, then exit")
    w.set_defaults(func=cmd_worker)

    t = sub.add_parser(
        "tasks",
        help="list, show, cancel or export tasks",
        description="Inspect and control tasks in DATABASE_URL from the shell.",
    )
    tsub = t.add_subparsers(title="tasks commands", metavar="ACTION")
    tl = tsub.add_parser("list", help="recent tasks")
    tl.add_argument("--state", action="append", help="only tasks in this state (repeatable)")
    tl.add_argument("--limit", type=int, default=20)
    tl.set_defaults(func=cmd_tasks_list)
    ts = tsub.add_parser(
        "show",
        help="a task's plan, steps and event timeline",
        description="Print a task's plan, each step's state and attempts, and its event timeline.",
    )
    ts.add_argument("id", type=_task_id)
    ts.add_argument("--json", action="store_true", help="print JSON")
    ts.set_defaults(func=cmd_tasks_show)
    tc = tsub.add_parser("cancel", help="cancel a task")
    tc.add_argument("id", type=_task_id)
    tc.set_defaults(func=cmd_tasks_cancel)
    te = tsub.add_parser("export", help="write the audit trail as JSON lines")
    te.add_argument("--task", type=_task_id, help="only this task")
    te.add_argument("--output", "-o", help="file (default standard output)")
    te.set_defaults(func=cmd_tasks_export)

    d = sub.add_parser("db", help="database schema", description="Manage the database schema of DATABASE_URL.")
    dsub = d.add_subparsers(title="db commands", metavar="ACTION")
    du = dsub.add_parser("upgrade", help="migrate the database to the latest schema (Alembic)",
                         description="Migrate DATABASE_URL to the latest schema with Alembic. Run it before "
                         "starting new versions on PostgreSQL; `cowork serve` does it itself on SQLite.")  # fmt: skip
    du.add_argument("--revision", default="head")
    du.set_defaults(func=cmd_db_upgrade)
    dp = dsub.add_parser("prune", help="delete rows past their retention (COWORK_RETENTION_DAYS and others)",
                         description="Delete finished tasks' rows older than COWORK_RETENTION_DAYS, done outbox "
                         "rows older than COWORK_OUTBOX_RETENTION_DAYS and console messages older than "
                         "COWORK_TRANSCRIPT_RETENTION_DAYS, in bounded transactions. Unfinished tasks, pending "
                         "outbox rows and schedules are never touched. Prints JSON.")  # fmt: skip
    dp.add_argument("--dry-run", action="store_true", help="count what would go, per table; delete nothing")
    dp.add_argument("--export", metavar="FILE", help="first append the removed audit events to FILE (JSON lines)")
    dp.add_argument("--batch", type=int, default=1000, help="rows per transaction (default 1000)")
    dp.set_defaults(func=cmd_db_prune)

    doc = sub.add_parser("doctor", help="check configuration, database, Slack, Teams and the LLM",
                         description="Check the configuration and every service it names (database, policy "
                         "file, Slack token with auth.test, Teams credentials, the LLM endpoint) and say "
                         "what is wrong in plain words. Exit status 1 when something is wrong.")  # fmt: skip
    doc.set_defaults(func=cmd_doctor)
    tp = sub.add_parser("teams-package", help="write the Teams app package (zip) to upload",
                        description="Write the Teams app package (manifest.json with MicrosoftAppId filled "
                        "in, color.png, outline.png) as a zip to upload in Teams.")  # fmt: skip
    tp.add_argument("--output", "-o", default="cowork-teams.zip")
    tp.set_defaults(func=cmd_teams_package)
    b = sub.add_parser("bench", help="measure the engine; prints JSON",
                       description="Measure engine overhead per checkpointed step and throughput of no-op "
                       "3-step tasks on SQLite (one process) and, with --postgres, on PostgreSQL with 1 and 2 "
                       "worker processes. Prints JSON.")  # fmt: skip
    b.add_argument("--tasks", type=int, default=2000, help="no-op 3-step tasks per run")
    b.add_argument("--postgres", help="also measure on this PostgreSQL URL (a scratch database)")
    b.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="worker processes on PostgreSQL")
    b.set_defaults(func=cmd_bench)
    return p


# -- serve and worker -----------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    asyncio.run(_serve(settings, worker=not args.no_worker, console=True if args.console else None))
    return 0


async def _serve(settings: Settings, *, worker: bool, console: bool | None) -> None:
    from aiohttp import web

    # The database thread and the event loop hand the GIL back and forth; the
    # default 5 ms switch interval shows up directly in ack latency (measured:
    # p99 5.6 ms with 1 ms against tens of ms with the default, 200 Slack events/s).
    sys.setswitchinterval(0.001)

    from bot.assembly.runtime import Runtime, prepare_database
    from bot.web.server import make_app

    prepare_database(settings.database_url)
    runtime = Runtime(settings)
    app = make_app(runtime, console=console)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    await runtime.start(worker=worker, delivery=True)
    where = f"http://{settings.host}:{settings.port}"
    log.info("cowork serving on %s (%s; worker %s)", where, ", ".join(sorted(runtime.adapters)) or
             "no chat platform", "on" if worker else "off")  # fmt: skip
    print(f"Cowork is running on {where}  (Ctrl-C to stop)", flush=True)
    await _until_signal()
    await runtime.stop()
    await runner.cleanup()
    runtime.close()


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_worker(settings, burst=args.burst))
    return 0


async def _worker(settings: Settings, *, burst: bool) -> None:
    from bot.assembly.runtime import Runtime, prepare_database
    from bot.wiring.clients import attach_clients

    prepare_database(settings.database_url)
    runtime = Runtime(settings)
    attach_clients(runtime)  # skills read chat through them; delivery is the web processes' job
    if burst:
        n = await runtime.engine.drain()
        print(json.dumps({"turns": n}))
    else:
        await runtime.start(worker=True, delivery=False)
        log.info("cowork worker %s running", runtime.engine.name)
        await _until_signal()
        await runtime.stop()
    runtime.close()


# -- tasks ----------------------------------------------------------------------


def _store(settings: Settings) -> Any:
    from tasks.store.db import Database
    from tasks.store.store import Store

    return Store(Database(settings.database_url))


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def cmd_tasks_list(settings: Settings, args: argparse.Namespace) -> int:
    store = _store(settings)
    tasks = _run(store.list_tasks(limit=args.limit, states=args.state))
    if not tasks:
        print("no tasks")
    for t in tasks:
        what = f"run {t.playbook}" if t.playbook else " ".join(t.text.split())[:60]
        print(f"{t.id:>6}  {t.state:<17} {t.platform:<8} {t.requester:<14} {t.created_at:%Y-%m-%d %H:%M}  {what}")
    store.db.close()
    return 0


def cmd_tasks_show(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops.reports import show_task

    store = _store(settings)
    try:
        print(_run(show_task(store, args.id, as_json=args.json)))
    except LookupError as e:
        print(f"cowork: {e}", file=sys.stderr)
        return 1
    finally:
        store.db.close()
    return 0


def cmd_tasks_cancel(settings: Settings, args: argparse.Namespace) -> int:
    from tasks.engine.controls import Controls
    from tasks.rules.states import IllegalTransition

    store = _store(settings)
    try:
        _run(Controls(store).cancel(args.id, "cli", utcnow()))
        print(f"task {args.id} cancelled")
        return 0
    except (IllegalTransition, LookupError) as e:
        print(f"cowork: {e}", file=sys.stderr)
        return 1
    finally:
        store.db.close()


def cmd_tasks_export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops.reports import export_events

    store = _store(settings)
    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    try:
        n = _run(export_events(store, out, task_id=args.task))
    finally:
        if args.output:
            out.close()
        store.db.close()
    print(f"exported {n} events", file=sys.stderr)
    return 0


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from tasks.store import schema

    schema.upgrade(settings.database_url, args.revision)
    print(f"database at revision {schema.current(settings.database_url)}")
    return 0


def cmd_db_prune(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops.prune import prune_command

    if args.batch < 1:
        print("cowork: --batch must be at least 1", file=sys.stderr)
        return 2
    if args.export and not args.dry_run:
        try:  # can it be written? before anything is deleted
            with open(args.export, "a", encoding="utf-8"):
                pass
        except OSError as e:
            print(f"cowork: cannot write {args.export}: {e.strerror}; nothing was pruned", file=sys.stderr)
            return 1
    out = _run(prune_command(settings, dry_run=args.dry_run, export=args.export, batch=args.batch, now=utcnow()))
    print(json.dumps(out, indent=2))
    return 0


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops.doctor import run_doctor

    return int(asyncio.run(run_doctor(settings)))


def cmd_teams_package(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        from bot.ops.teams_package import build_package
    except ImportError:
        print("cowork: the Teams package builder is not installed", file=sys.stderr)
        return 1
    if not settings.microsoft_app_id:
        print("cowork: set MicrosoftAppId (the Azure Bot's app id) first", file=sys.stderr)
        return 2
    try:
        path = build_package(settings.microsoft_app_id, Path(args.output))
    except ValueError as e:
        print(f"cowork: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"cowork: cannot write the Teams package: {e.strerror or e} ({e.filename})", file=sys.stderr)
        return 1
    print(f"wrote {path}: upload it in Teams (Apps > Manage your apps > Upload an app)")
    return 0


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from benchmarks.engine import run_bench
    except ImportError:  # an installed Cowork: the benchmarks live in a clone of the repository
        print("cowork bench runs the engine benchmark of a clone: python -m benchmarks.engine", file=sys.stderr)
        return 2
    print(json.dumps(run_bench(tasks=args.tasks, postgres=args.postgres, workers=args.workers), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
