"""`cowork doctor` against fakes on loopback: a fake Slack auth.test, a fake
OpenAI /v1/models, good and bad policy files, good, empty and unreachable
databases. Its verdicts are plain words an operator can act on."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.assembly.config import Settings
from bot.ops.doctor import run_doctor
from tests.conftest import PG_SKIP, _pg, _pg_url
from tests.fakes.loopback import serving
from tests.fakes.slack_api import FakeSlack, fake_slack
from tests.faults.fleet import base_env, free_port


@pytest.fixture
async def models() -> AsyncIterator[str]:
    """An OpenAI-compatible server that serves two models and nothing else."""

    async def listing(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer sk-doctor-test-key":
            return web.json_response({"error": {"message": "bad key", "type": "auth"}}, status=401)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "x"} for m in ("gpt-4o-mini", "small")]
        return web.json_response({"object": "list", "data": data})

    app = web.Application()
    app.router.add_get("/v1/models", listing)
    async with serving(app) as base:
        yield f"{base}/v1"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with fake_slack() as fake:
        yield fake


async def doctor(capsys: pytest.CaptureFixture[str], **env: str) -> tuple[int, dict[str, str]]:
    code = await run_doctor(Settings(**env))  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    verdicts = {line.split()[1]: line for line in lines if line.startswith(("ok ", "BAD"))}
    assert lines[-1] == (
        "all good" if code == 0 else f"{sum(v.startswith('BAD') for v in verdicts.values())} problem(s) found"
    )
    return code, verdicts


async def test_a_working_setup_is_all_good(
    sqlite_url: str, slack: FakeSlack, models: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, v = await doctor(
        capsys, DATABASE_URL=sqlite_url, SLACK_BOT_TOKEN="xoxb-doctor", SLACK_SIGNING_SECRET="s",
        SLACK_API_URL=slack.base_url, OPENAI_API_KEY="sk-doctor-test-key", OPENAI_BASE_URL=models,
    )  # fmt: skip
    assert code == 0
    assert "reachable, schema revision" in v["database"]
    assert v["slack"].endswith("token works: bot cowork in workspace T1")
    assert v["llm"].endswith("endpoint answers; model gpt-4o-mini")
    assert [c.token for c in slack.called("auth.test")] == ["xoxb-doctor"]


async def test_a_refused_slack_token_is_named_with_what_to_do(
    sqlite_url: str, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    slack.fail("auth.test", "invalid_auth")
    code, v = await doctor(capsys, DATABASE_URL=sqlite_url, SLACK_BOT_TOKEN="xoxb-revoked",
                           SLACK_SIGNING_SECRET="s", SLACK_API_URL=slack.base_url)  # fmt: skip
    assert code == 1
    assert v["slack"].startswith("BAD") and "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in v["slack"]
    assert "xoxb-revoked" not in v["slack"]


async def test_an_unreachable_slack_and_a_token_without_a_secret_are_problems(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = f"http://127.0.0.1:{free_port()}/api/"
    _, v = await doctor(capsys, DATABASE_URL=sqlite_url, SLACK_BOT_TOKEN="xoxb-x", SLACK_SIGNING_SECRET="s",
                        SLACK_API_URL=gone)  # fmt: skip
    assert v["slack"].startswith("BAD") and f"cannot reach Slack at {gone}" in v["slack"]
    _, v = await doctor(capsys, DATABASE_URL=sqlite_url, SLACK_BOT_TOKEN="xoxb-x")
    assert "neither SLACK_SIGNING_SECRET nor SLACK_APP_TOKEN" in v["slack"]


async def test_a_model_the_server_does_not_serve_is_named_with_what_it_has(
    sqlite_url: str, models: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, v = await doctor(capsys, DATABASE_URL=sqlite_url, OPENAI_API_KEY="sk-doctor-test-key",
                           OPENAI_BASE_URL=models, COWORK_MODEL="gpt-9")  # fmt: skip
    assert code == 1
    assert "model 'gpt-9' is not served there (has: gpt-4o-mini, small)" in v["llm"]
    _, v = await doctor(capsys, DATABASE_URL=sqlite_url, OPENAI_API_KEY="sk-wrong-key-123456",
                        OPENAI_BASE_URL=models)  # fmt: skip
    assert v["llm"].startswith("BAD") and f"cannot list models at {models}" in v["llm"]
    assert "sk-wrong-key-123456" not in v["llm"]


async def test_a_bad_policy_file_is_named_with_its_line(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults:\n  approval_effects: [write]\n  required: 0\n")
    code, v = await doctor(capsys, DATABASE_URL=sqlite_url, COWORK_POLICY=str(policy))
    assert code == 1
    assert v["policy"].startswith("BAD") and f"{policy}: line 3:" in v["policy"] and "required" in v["policy"]


async def test_a_fresh_sqlite_setup_is_ok_and_doctor_creates_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve` creates and migrates SQLite itself: a missing or empty file is no problem, and looking
    at it must not create it."""
    new = tmp_path / "data" / "new.db"
    code, v = await doctor(capsys, DATABASE_URL=f"sqlite:///{new}")
    assert code == 0 and v["database"].startswith("ok ") and "`cowork serve` creates it" in v["database"]
    assert not new.exists() and not new.parent.exists()
    new.parent.mkdir()
    sqlite3.connect(new).close()  # an empty file, as an earlier doctor left it
    code, v = await doctor(capsys, DATABASE_URL=f"sqlite:///{new}")
    assert code == 0 and f"SQLite at {new} is empty: `cowork serve` migrates it" in v["database"]


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    """A PostgreSQL database with no tables: there, `cowork db upgrade` is the operator's release step."""
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    name = f"cowork_empty_{uuid.uuid4().hex[:12]}"
    _pg(f'CREATE DATABASE "{name}"')
    yield _pg_url(name)
    _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
async def test_an_empty_or_unreachable_database_says_what_to_run(
    pg_empty_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, v = await doctor(capsys, DATABASE_URL=pg_empty_url)
    assert v["database"].startswith("BAD") and "run `cowork db upgrade`" in v["database"]
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    _, v = await doctor(capsys, DATABASE_URL=nowhere)
    assert v["database"].startswith("BAD") and "cannot connect" in v["database"]


def test_cowork_doctor_exits_nonzero_on_a_problem_and_zero_when_all_is_well(sqlite_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense: 1\n")
    run = [sys.executable, "-m", "bot.ops.cli", "doctor"]
    env = base_env(DATABASE_URL=sqlite_url, COWORK_LOG_JSON="0")
    ok = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("all good"), ok.stdout + ok.stderr
    broken = subprocess.run(run, env={**env, "COWORK_POLICY": str(bad)}, capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)  # fmt: skip
    assert broken.returncode == 1 and "unknown top-level key 'nonsense'" in broken.stdout


@pytest.mark.postgres
async def test_a_schema_older_than_the_code_is_named_and_a_process_will_not_start_on_it(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alembic import command

    from tasks.store import schema

    assert schema.behind(schema.current(pg_url)) is None
    await asyncio.to_thread(command.downgrade, schema.alembic_config(pg_url), "0002")
    old = schema.current(pg_url)
    head = schema.behind(old) or ""
    assert old == "0002" and head != "0002"
    _, v = await doctor(capsys, DATABASE_URL=pg_url)
    assert (
        v["database"].startswith("BAD")
        and f"schema revision 0002, older than this Cowork needs ({head})" in v["database"]
    )
    run = [sys.executable, "-m", "bot.ops.cli", "worker", "--burst"]
    env = base_env(DATABASE_URL=pg_url, COWORK_LOG_JSON="0")
    refused = await asyncio.to_thread(subprocess.run, run, env=env, capture_output=True, text=True, timeout=60,
                                      cwd=tmp_path)  # fmt: skip
    assert refused.returncode != 0 and "run `cowork db upgrade` first" in refused.stderr
    await asyncio.to_thread(schema.upgrade, pg_url)
    assert schema.behind(schema.current(pg_url)) is None
