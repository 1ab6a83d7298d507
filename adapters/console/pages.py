"""The task pages as HTML: one task (plan, steps, approvals, timeline, cost) and
the list of tasks. Pure functions of the JSON that GET /api/tasks/{id} serves,
so the page and the API cannot disagree; every value is escaped."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

MAX_JSON = 4000


def _s(value: Any) -> str:
    return "" if value is None else escape(str(value), quote=True)


def _when(value: Any) -> str:
    text = str(value or "")
    return _s(text[:19].replace("T", " ")) if text else "—"


def _json(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)
    if len(text) > MAX_JSON:
        text = text[:MAX_JSON] + "\n…"
    return f"<pre>{escape(text)}</pre>"


def _badge(state: str, label: str | None = None) -> str:
    return f'<span class="badge state-{_s(state)}">{_s(label or state.replace("_", " "))}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return '<p class="empty">None.</p>'
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def layout(title: str, body: str, *, refresh: bool = False) -> str:
    meta = '<meta http-equiv="refresh" content="3">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{escape(title)} · Cowork</title>"
        '<link rel="stylesheet" href="/static/console.css"></head>'
        '<body class="page"><nav class="page-nav">'
        '<a href="/">← Console</a> <a href="/tasks">All tasks</a></nav>'
        f"<main>{body}</main></body></html>"
    )


def _summary(task: Mapping[str, Any]) -> str:
    facts = [
        ("Requested by", _s(task.get("requester_name") or task.get("requester"))),
        ("Where", _s(task.get("where"))),
        ("Playbook", _s(task.get("playbook") or "— (planned from the request)")),
        ("Created", _when(task.get("created_at"))),
        ("Started", _when(task.get("started_at"))),
        ("Finished", _when(task.get("finished_at"))),
        ("Elapsed", _s(task.get("elapsed"))),
        ("Tokens", _s(task.get("tokens"))),
        ("Cost", _s(task.get("cost_text"))),
    ]
    rows = "".join(f'<div class="field"><dt>{k}</dt><dd>{v}</dd></div>' for k, v in facts)
    extra = ""
    if task.get("error"):
        extra += f'<p class="error">Error: {_s(task["error"])}</p>'
    if task.get("pause_reason"):
        extra += f'<p class="warn">Paused: {_s(task["pause_reason"])}</p>'
    return f'<dl class="facts">{rows}</dl>{extra}'


def _steps(steps: Sequence[Mapping[str, Any]]) -> str:
    rows = (
        [
            f"<code>{_s(s.get('key'))}</code>",
            _s(s.get("skill")),
            _s(", ".join(s.get("depends_on") or []) or "—"),
            _badge(str(s.get("state", ""))),
            _s(s.get("attempts")),
            _json(s.get("args")),
            (f'<p class="error">{_s(s["error"])}</p>' if s.get("error") else "") + _json(s.get("result")),
        ]
        for s in steps
    )
    return _table(["Step", "Skill", "After", "State", "Attempts", "Arguments", "Result"], rows, "steps")


def _approvals(approvals: Sequence[Mapping[str, Any]]) -> str:
    rows = (
        [
            f"<code>{_s(a.get('step_key'))}</code> {_s(a.get('skill'))}",
            _badge(str(a.get("state", ""))),
            _s(", ".join(a.get("approvers") or [])),
            _s(a.get("decided_by") or "—"),
            _when(a.get("decided_at")),
            _when(a.get("expires_at")),
            _s(a.get("reason") or ""),
        ]
        for a in approvals
    )
    return _table(
        ["Step", "State", "Approvers", "Decided by", "Decided at", "Expires", "Note"],
        rows,
        "approvals",
    )


def _timeline(events: Sequence[Mapping[str, Any]]) -> str:
    rows = (
        [
            _when(e.get("at")),
            _s(e.get("actor")),
            f"<code>{_s(e.get('kind'))}</code>",
            _json(e.get("detail")),
        ]
        for e in events
    )
    return _table(["When (UTC)", "Who", "What", "Detail"], rows, "timeline")


def task_page(data: Mapping[str, Any]) -> str:
    task = data["task"]
    title = str(task.get("title") or f"Task #{task.get('id')}")
    body = (
        f'<header class="task-head"><h1>{escape(title)}</h1>'
        f"{_badge(str(task.get('state', '')), task.get('label'))}</header>"
        f'<p class="request">{_s(task.get("text"))}</p>'
        f"{_summary(task)}"
        f"<h2>Plan</h2>{_steps(data.get('steps') or [])}"
        f"<h2>Approvals</h2>{_approvals(data.get('approvals') or [])}"
        f"<h2>Timeline</h2>{_timeline(data.get('events') or [])}"
        f'<p class="raw"><a href="/api/tasks/{_s(task.get("id"))}">JSON</a></p>'
    )
    return layout(title, body, refresh=not task.get("final", True))


def task_list_page(tasks: Sequence[Mapping[str, Any]]) -> str:
    rows = (
        [
            f'<a href="/tasks/{_s(t.get("id"))}">#{_s(t.get("id"))}</a>',
            _s(t.get("summary")),
            _badge(str(t.get("state", "")), t.get("label")),
            _s(t.get("requester")),
            _s(t.get("platform")),
            _when(t.get("created_at")),
            _s(t.get("cost_text")),
        ]
        for t in tasks
    )
    table = _table(["Task", "What", "State", "Requested by", "Where", "Created", "Cost"], rows, "tasks")
    return layout("Tasks", f"<h1>Tasks</h1>{table}")
