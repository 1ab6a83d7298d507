"""The `cowork` command explains itself and manages tasks from the shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [
    [],
    ["serve"],
    ["worker"],
    ["tasks"],
    ["tasks", "show"],
    ["db", "upgrade"],
    ["doctor"],
    ["bench"],
    ["teams-package"],
]


def cowork(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)  # fmt: skip


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "cowork")
def test_every_command_has_help(words: list[str], tmp_path: Path) -> None:
    out = cowork(*words, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "usage: cowork" in out.stdout and len(out.stdout) > 100


def test_help_lists_the_configuration(tmp_path: Path) -> None:
    out = cowork("--help", cwd=tmp_path).stdout
    for name in ("DATABASE_URL", "SLACK_SIGNING_SECRET", "MicrosoftAppId", "OPENAI_BASE_URL", "COWORK_POLICY"):
        assert name in out


def test_db_upgrade_then_tasks_list_and_show(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    up = cowork("db", "upgrade", cwd=tmp_path, env=env)
    assert up.returncode == 0 and "revision" in up.stdout, up.stderr
    assert cowork("tasks", "list", cwd=tmp_path, env=env).stdout.strip() == "no tasks"
    missing = cowork("tasks", "show", "7", cwd=tmp_path, env=env)
    assert missing.returncode == 1 and "no task 7" in missing.stderr


def test_bad_policy_is_refused_at_start_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("defaults:\n  approval_effects: [write]\n  required: zero\n")
    out = cowork(
        "worker",
        "--burst",
        cwd=tmp_path,
        env={"COWORK_POLICY": str(bad), "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"},
    )
    assert out.returncode == 2
    assert "line 3" in out.stderr and "required" in out.stderr
