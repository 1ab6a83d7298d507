"""A bounded random fuzz of every endpoint: N requests (signed where the endpoint needs it,
forged now and then), each a platform's usual request with hostile values put in random
places, or junk. It counts the answers; any 5xx is a finding (the database is up, so not
even a 503 is expected).

    python -m tests.e2e.fuzz_random --requests 2000 --database sqlite     # or postgres
    -> {"database": "sqlite", "requests": 2000, "statuses": {"200": ..., "400": ...}, "5xx": []}

tests/e2e/test_fuzz.py runs it on both databases.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from tests.fakes.bot_connector import execute_invoke, teams_activity
from tests.fakes.payloads import FORM, nested
from tests.fakes.served import Served, served_app

EVIL: list[Any] = [None, True, 0, -1, 2**31, 2**63, 10**30, 1e308, float("inf"), float("nan"), "", "\x00", "\ud800",
                   "a\x00b\udfff", "²", "9" * 20, "x" * 5000, "../../etc/passwd", "%00", "<@UBOT> status 1", [], {},
                   [1, "a"], {"id": 5}, {"approval_id": 10**30}, "run announce channel=C9 text=\x00"]  # fmt: skip


def _value(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return json.loads(nested(rng.choice([50, 500])))
    return rng.choice(EVIL)


def _mutate(rng: random.Random, body: Any, depth: int = 0) -> Any:
    """`body` with a few values, at any depth, replaced by hostile ones."""
    if isinstance(body, dict) and body:
        out = dict(body)
        for key in rng.sample(sorted(out), k=min(len(out), rng.randint(0, 2))):
            out[key] = _value(rng) if rng.random() < 0.6 or depth > 3 else _mutate(rng, out[key], depth + 1)
        return out
    if isinstance(body, list) and body:
        return [_mutate(rng, item, depth + 1) for item in body]
    return body


def _slack_templates(rng: random.Random) -> list[tuple[dict[str, Any], bool]]:
    ts = f"{rng.randint(1, 10**9)}.{rng.randint(0, 999999):06d}"
    mention = {
        "type": "event_callback",
        "team_id": "T1",
        "event_id": f"Ev{uuid.uuid4().hex[:10]}",
        "event": {
            "type": "app_mention",
            "user": "U1",
            "channel": "C1",
            "ts": ts,
            "text": rng.choice(["<@UBOT> help", "<@UBOT> status 3", "<@UBOT> run announce a=b", "hi"]),
        },
    }
    click = {
        "type": "block_actions",
        "user": {"id": "U1", "team_id": "T1"},
        "team": {"id": "T1"},
        "actions": [
            {
                "action_id": rng.choice(["approve", "reject", "open"]),
                "block_id": "b",
                "value": json.dumps({"approval_id": rng.choice(EVIL[:12])}),
            }
        ],
        "container": {"channel_id": "C1", "message_ts": ts},
        "channel": {"id": "C1"},
    }
    command = {"command": "/cowork", "text": "status 4", "user_id": "U1", "channel_id": "C1",
               "team_id": "T1", "trigger_id": f"tr{uuid.uuid4().hex[:8]}"}  # fmt: skip
    return [(mention, False), (click, True), (command, True)]


def _slack(rng: random.Random, served: Served) -> tuple[str, int]:
    template, as_form = rng.choice(_slack_templates(rng))
    body = _mutate(rng, template)
    if template.get("command"):
        raw = urlencode(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}, errors="surrogatepass"
        )  # a lone surrogate goes out as the bytes no UTF-8 has
    else:
        raw = urlencode({"payload": json.dumps(body)}) if as_form else json.dumps(body)
    if rng.random() < 0.1:  # forged: a signature for another body
        return "slack forged", served.send("POST", "/slack/events", raw.encode(), {"X-Slack-Signature": "v0=0"})
    return "slack", served.slack(raw, FORM if as_form or template.get("command") else "application/json")


def _teams(rng: random.Random, served: Served) -> tuple[str, int]:
    kind = rng.choice(["message", "invoke", "update"])
    if kind == "invoke":
        activity = execute_invoke(served.service_url, rng.choice(["approve", "reject", "x"]),
                                  {"approval_id": rng.choice(EVIL[:12])}, id=f"i{uuid.uuid4().hex[:8]}")  # fmt: skip
    else:
        activity = teams_activity(served.service_url, id=f"t{uuid.uuid4().hex[:8]}", text="status 2",
                                  type="message" if kind == "message" else "conversationUpdate")  # fmt: skip
    raw = json.dumps(_mutate(rng, activity)).encode()
    if rng.random() < 0.1:
        headers = {"Authorization": "Bearer forged.jwt.value", "Content-Type": "application/json"}
        return "teams forged", served.send("POST", "/api/messages", raw, headers)
    return "teams", served.teams(raw)[0]


def _console(rng: random.Random, served: Served) -> tuple[str, int]:
    if rng.random() < 0.5:
        path, body = "/api/console/messages", {"user": "alice", "channel": "general", "text": "@cowork status 1"}
    else:
        path = "/api/console/actions"
        body = {"user": "alice", "action": "approve", "value": {"approval_id": 1}, "message_id": 1}
    return "console", served.send("POST", path, json.dumps(_mutate(rng, body)).encode(),
                                  {"Content-Type": "application/json"})  # fmt: skip


def _get(rng: random.Random, served: Served) -> tuple[str, int]:
    path = rng.choice([p for m, p in served.routes if m == "GET"])
    ident = str(rng.choice(EVIL))
    query = urlencode(
        {rng.choice(["user", "channel", "ready", "after", "x"]): str(rng.choice(EVIL))}, errors="surrogatepass"
    )
    ident = quote(ident, safe="", errors="surrogatepass")
    target = path.replace("{id}", ident).replace("{name}", ident)
    return "get", served.send("GET", f"{target}?{query}")


def _junk(rng: random.Random, served: Served) -> tuple[str, int]:
    path = rng.choice([p for m, p in served.routes if m == "POST"])
    body = rng.choice([rng.randbytes(rng.randint(0, 300)), nested(5000).encode(), b"[" * 3000, b"\xff\xfe"])
    return "junk", served.send("POST", path, body, {"Content-Type": rng.choice(["application/json", FORM, ""])})


def fuzz(served: Served, requests: int, seed: int = 12) -> tuple[Counter[str], list[str]]:
    """Send `requests` requests; the statuses seen, and a line for each 5xx."""
    rng = random.Random(seed)
    makers = [_slack, _slack, _teams, _teams, _console, _get, _junk]
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    for i in range(requests):
        kind, status = rng.choice(makers)(rng, served)
        statuses[str(status)] += 1
        if status >= 500:
            errors.append(f"request {i} ({kind}): {status}")
    return statuses, errors


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    from tasks.store.schema import upgrade
    from tests.conftest import _pg, _pg_url

    with tempfile.TemporaryDirectory() as tmp:
        name = f"cowork_fuzz_{uuid.uuid4().hex[:10]}"
        url = f"sqlite:///{Path(tmp) / 'fuzz.db'}" if args.database == "sqlite" else _pg_url(name)
        if args.database == "postgres":
            _pg(f'CREATE DATABASE "{name}"')
        try:
            upgrade(url)
            with served_app(url, Path(tmp)) as served:
                statuses, errors = fuzz(served, args.requests, args.seed)
        finally:
            if args.database == "postgres":
                _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps({"database": args.database, "requests": args.requests, "seed": args.seed,
                      "statuses": dict(sorted(statuses.items())), "5xx": errors}, indent=2))  # fmt: skip
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
