"""What the docs promise exists: the example policy loads, the Procfile names the
processes, the README's commands are the ones CI runs."""

from __future__ import annotations

from tasks.rules.policy import load_policy
from tests.conftest import ROOT


def test_example_policy_is_valid() -> None:
    policy = load_policy(ROOT / "docs" / "policy.example.yaml")
    assert policy.rules_for("slack", "T1", "C0PAYMENTS").required == 2
    assert policy.defaults.auto_approve[0].name == "posts-to-bot-sandbox"


def test_procfile_runs_web_and_worker() -> None:
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    assert lines["web"].strip() == "cowork serve --no-worker"
    assert lines["worker"].strip() == "cowork worker"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest -n 2"
    assert command in readme and command in ci
    assert "bash .ci/run" in readme


def test_ci_checks_types_and_lint_before_the_tests() -> None:
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    script = "\n".join(lines)
    checks = [".venv/bin/mypy", ".venv/bin/ruff check .", ".venv/bin/ruff format --check ."]
    assert all(check in script for check in checks)
    assert max(script.index(check) for check in checks) < script.index(".venv/bin/pytest")
    config = (ROOT / "pyproject.toml").read_text()
    assert "[tool.mypy]" in config and "strict = true" in config


def test_readme_is_built_from_its_parts_and_the_settings() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_readme", ROOT / "docs" / "build_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "README.md").read_text() == module.build(), "run: python docs/build_readme.py"


def test_teams_docs_say_how_a_refused_click_is_answered() -> None:
    """As the code does (tests/e2e/test_teams_e2e.py): an Action.Execute refusal is answered in the
    card, to the clicker alone; only the Action.Submit fallback @mentions them."""
    text = " ".join((ROOT / "docs" / "teams.md").read_text().split())
    assert "Nothing is posted in the conversation" in text
    assert "Only the `Action.Submit` fallback of old clients, which cannot be answered in the card" in text
    assert "The bot also posts a short reply" not in text


def test_the_teams_authority_settings_are_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("COWORK_TEAMS_OPENID_METADATA", "COWORK_TEAMS_TOKEN_ISSUER", "COWORK_TEAMS_LOGIN_URL",
                 "COWORK_TEAMS_OAUTH_SCOPE"):  # fmt: skip
        assert f"| `{name}` |" in readme


def test_architecture_names_the_rooms_and_the_functions_of_one_tasks_path() -> None:
    """ARCHITECTURE.md opens with the rooms and the path of one task as at most eight functions
    that exist where it says (issue 11)."""
    import importlib
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text()
    rooms = text[text.index("## The rooms") : text.index("## The path of one task, in eight functions")]
    tasks = ("tasks/rules/", "tasks/store/", "tasks/skills/", "tasks/planning/", "tasks/engine/")
    bot = ("bot/application/", "bot/assembly/", "bot/wiring/", "bot/web/", "bot/ops/")
    for room in ("adapters/", *tasks, *bot, "benchmarks/"):
        assert f"| `{room}` |" in rooms
        assert (ROOT / room).is_dir()
    path = text[
        text.index("## The path of one task, in eight functions") : text.index("## The path of one task, in detail")
    ]
    named = re.findall(r"^\d\. `([\w/]+)\.py` `([\w.]+)`", path, re.MULTILINE)
    assert 5 <= len(named) <= 8
    for module, qualified in named:
        found: object = importlib.import_module(module.replace("/", "."))
        for part in qualified.split("."):
            found = getattr(found, part)
        assert callable(found), qualified
