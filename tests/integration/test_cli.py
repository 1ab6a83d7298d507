"""`cowork tasks export` and `cowork tasks list/show` as an operator runs them:
a real process on a database with a finished task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tasks.store.db import Database
from tasks.store.store import Store
from tests.fakes.engine_harness import deliver_console
from tests.faults.crash import enqueue, write_setup
from tests.faults.fleet import base_env


def cowork(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.ops.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=cwd)  # fmt: skip


async def test_tasks_export_writes_the_audit_trail_as_json_lines(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await enqueue(Store(db), 0, 2, tag="cli")
    db.close()
    env = base_env(DATABASE_URL=sqlite_url, COWORK_LOG_JSON="0", **write_setup(tmp_path, "http://127.0.0.1:9/hook"))
    burst = cowork(env, "worker", "--burst", cwd=tmp_path)
    assert burst.returncode == 0 and json.loads(burst.stdout.splitlines()[-1])["turns"] >= 2, burst.stderr
    db = Database(sqlite_url)
    await deliver_console(Store(db))  # what a web process does: the first posts are taken
    db.close()
    assert cowork(env, "worker", "--burst", cwd=tmp_path).returncode == 0  # so the tasks go on
    everything = cowork(env, "tasks", "export", cwd=tmp_path)
    assert everything.returncode == 0, everything.stderr
    events = [json.loads(line) for line in everything.stdout.splitlines()]
    assert {"id", "task_id", "at", "actor", "kind", "detail"} <= set(events[0])
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert {e["task_id"] for e in events} == {1, 2}
    assert f"exported {len(events)} events" in everything.stderr
    one = cowork(env, "tasks", "export", "--task", "2", "-o", str(tmp_path / "t2.jsonl"), cwd=tmp_path)
    lines = (tmp_path / "t2.jsonl").read_text().splitlines()
    assert one.returncode == 0 and lines and {json.loads(x)["task_id"] for x in lines} == {2}
    kinds = [json.loads(x)["kind"] for x in lines]
    assert kinds[0] == "task.created" and "step.retry" in kinds  # nothing listens on port 9


async def test_tasks_list_and_show_tell_a_person_what_happened(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await enqueue(Store(db), 0, 1, tag="cli")
    db.close()
    env = base_env(DATABASE_URL=sqlite_url, COWORK_LOG_JSON="0", **write_setup(tmp_path, "http://127.0.0.1:9/hook"))
    assert cowork(env, "worker", "--burst", cwd=tmp_path).returncode == 0
    listing = cowork(env, "tasks", "list", cwd=tmp_path)
    assert listing.returncode == 0 and "run crashtest" in listing.stdout
    missing = cowork(env, "tasks", "show", "99", cwd=tmp_path)
    assert missing.returncode == 1 and "99" in missing.stderr


def test_a_task_number_no_database_holds_is_a_usage_error_not_a_traceback(sqlite_url: str, tmp_path: Path) -> None:
    env = base_env(DATABASE_URL=sqlite_url, COWORK_LOG_JSON="0")
    for args in (("tasks", "show", "9" * 20), ("tasks", "cancel", "2147483648"), ("tasks", "export", "--task", "-1")):
        run = cowork(env, *args, cwd=tmp_path)
        assert run.returncode == 2 and "is not a task number" in run.stderr and "Traceback" not in run.stderr
