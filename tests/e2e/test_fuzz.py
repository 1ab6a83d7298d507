"""Bad input at every HTTP endpoint (hypothesis): no 500, no crash, and a
refused request stores nothing (task and outbox rows counted before and after).

The whole app runs on loopback in its own thread, with Slack, Teams and the
console mounted; requests are raw bytes over http.client, so nothing is
cleaned up on the way in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import sanitize
from tasks.store.schema import upgrade
from tests.conftest import _pg, _pg_url
from tests.e2e.fuzz_random import fuzz
from tests.fakes.payloads import (
    console_post,
    nested,
    raw_json,
    slack_action,
    slack_event,
    slack_payload,
    teams_click,
    teams_message,
)
from tests.fakes.served import SECRET, Served, served_app
from tests.fakes.slack_api import BOT_USER, signed_headers


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app on SQLite, and on PostgreSQL (a database cloned from the migrated template)."""
    folder = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'fuzz.db'}"
        upgrade(url)
        with served_app(url, folder) as app:
            yield app
        return
    name = f"cowork_fuzz_{uuid.uuid4().hex[:12]}"
    _pg(f'CREATE DATABASE "{name}" TEMPLATE "{request.getfixturevalue("pg_template")}"')
    try:
        with served_app(_pg_url(name), folder) as app:
            yield app
    finally:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40)
bodies = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(str.encode),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                 max_leaves=12).map(lambda v: __import__("json").dumps(v).encode()),
)  # fmt: skip
content_types = st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data", "", "x/\x7f"]
)


def test_every_route_is_fuzzed(served: Served) -> None:
    paths = {p for _, p in served.routes}
    assert {"/healthz", "/metrics", "/slack/events", "/api/messages"} <= paths


@FUZZ
@given(body=bodies, ctype=content_types, sig=header_text, ts=header_text, auth=header_text, pick=st.integers(0, 10**6))
def test_bad_posts_never_500_and_refusals_store_nothing(
    served: Served, body: bytes, ctype: str, sig: str, ts: str, auth: str, pick: int
) -> None:
    posts = [p for m, p in served.routes if m == "POST"]
    path = posts[pick % len(posts)]
    headers = {"Content-Type": ctype, "X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts,
               "Authorization": f"Bearer {auth}"}  # fmt: skip
    before = served.counts()
    status = served.send("POST", path, body, headers)
    assert status < 500, f"POST {path} -> {status}"
    if status >= 400:
        assert served.counts() == before, f"refused POST {path} ({status}) stored something"


@FUZZ
@given(body=bodies, ctype=content_types)
def test_slack_bodies_with_a_good_signature_but_bad_content_never_500(served: Served, body: bytes, ctype: str) -> None:
    text_body = body.decode("utf-8", "replace")
    headers = signed_headers(text_body, SECRET, content_type=ctype or "application/json")
    before = served.counts()
    status = served.send("POST", "/slack/events", text_body.encode(), headers)
    assert status < 500
    if status >= 400:
        assert served.counts() == before


@FUZZ
@given(query=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60), pick=st.integers(0, 10**6),
       ident=st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=12))  # fmt: skip
def test_bad_queries_and_ids_on_gets_never_500(served: Served, query: str, pick: int, ident: str) -> None:
    gets = [p for m, p in served.routes if m == "GET"]
    path = gets[pick % len(gets)].replace("{id}", ident).replace("{name}", ident)
    from urllib.parse import quote

    status = served.send("GET", f"{quote(path)}?{quote(query, safe='=&')}")
    assert status < 500, f"GET {path}?{query} -> {status}"


# -- the classes of bad input that once answered 500 (issue 12, item 4) ----------------------------

HUGE = [float("inf"), float("-inf"), float("nan"), 1e308, 10**30, 2**63, -1, 0, "99999999999999999999", "²"]


def arrived(value: str) -> str:
    """`value` as stored after a trip through JSON (where an escaped surrogate pair becomes one character)."""
    return sanitize.text(json.loads(raw_json(value)))


def answered(served: Served, platform: str, tenant: str, event_id: str) -> bool:
    """The message made a task, or the bot replied to it: it is not lost."""
    tasks = served.rows("SELECT id FROM task WHERE platform = :p AND tenant = :t AND dedupe_key = :e",
                        p=platform, t=tenant, e=event_id)  # fmt: skip
    replies = served.rows("SELECT id FROM outbox WHERE idempotency_key = :k", k=f"reply:{platform}:{tenant}:{event_id}")
    return bool(tasks or replies)


@pytest.mark.parametrize("approval_id", HUGE, ids=repr)
def test_an_approval_id_no_database_holds_is_refused_politely(served: Served, approval_id: object) -> None:
    before = served.counts()
    assert slack_action(served, raw_json({"approval_id": approval_id})) == 200
    status, body = teams_click(served, approval_id)
    assert status == 200 and b"carries no approval" in body
    assert served.counts() == before


def test_status_of_a_task_number_no_database_holds_is_answered(served: Served) -> None:
    event_id = f"Ev-status-{served.counts()[1]}"
    assert slack_event(served, f"<@{BOT_USER}> status 99999999999999999999", event_id=event_id) == 200
    [payload] = served.rows("SELECT payload FROM outbox WHERE idempotency_key = :k", k=f"reply:slack:T1:{event_id}")
    assert "There is no task #99999999999999999999" in str(payload[0])


@pytest.mark.parametrize("ident", ["9" * 20, "%C2%B2", "0", "-1", "1e308", "Infinity"])
def test_a_task_page_for_an_id_no_database_holds_is_404(served: Served, ident: str) -> None:
    assert served.send("GET", f"/tasks/{ident}") == 404
    assert served.send("GET", f"/api/tasks/{ident}") == 404


BOLT_BREAKERS = {
    "event is text": {"type": "event_callback", "team_id": "T1", "event": "hello"},
    "event type a number": {"type": "event_callback", "team_id": "T1", "event": {"type": 5}},
    "type a number": {"type": 5, "team_id": "T1"},
    "action_id a number": {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": 5}]},
    "actions not a list": {"type": "block_actions", "user": {"id": "U1"}, "actions": "approve"},
    "actions of text": {"type": "block_actions", "user": {"id": "U1"}, "actions": ["approve"]},
    "user a number": {"type": "block_actions", "user": 5, "actions": [{"action_id": "approve"}]},
    "user a list": {"type": "block_actions", "user": [1], "actions": [{"action_id": "approve"}]},
    "view a list": {"type": "view_submission", "user": {"id": "U1"}, "view": []},
}


@pytest.mark.parametrize("body", list(BOLT_BREAKERS.values()), ids=list(BOLT_BREAKERS))
def test_signed_slack_payloads_of_a_shape_slack_never_sends_are_400(served: Served, body: dict[str, object]) -> None:
    before = served.counts()
    assert served.slack(raw_json(body)) == 400
    assert slack_payload(served, body) == 400
    assert served.counts() == before


def test_json_nested_5000_deep_is_400_everywhere(served: Served) -> None:
    deep = nested(5000)
    assert served.slack(deep) == 400
    assert served.teams(deep.encode())[0] == 400
    for path in ("/api/console/messages", "/api/console/actions"):
        assert served.send("POST", path, deep.encode(), {"Content-Type": "application/json"}) == 400
    assert slack_action(served, nested(5000)) == 200  # a button value nested too deep: no approval


@pytest.mark.parametrize("bad", ["\x00", "\ud800", "\udfff\x00\ud800"])
def test_text_no_database_stores_is_stored_sanitised_and_answered(served: Served, bad: str) -> None:
    run = f"run announce channel=C9 text=a{bad}b"
    event_id = f"Ev{bad}{served.counts()[0]}"
    assert slack_event(served, f"<@{BOT_USER}> {run}", event_id=event_id) == 200
    assert slack_event(served, f"<@{BOT_USER}> hi", event_id=f"{event_id}x", team_id=f"T{bad}1") == 200
    status, _ = teams_message(served, run, id=f"t{bad}{served.counts()[0]}")
    assert status == 200
    assert console_post(served, f"@cowork {run}") == 201
    clean = sanitize.text(f"a{bad}b")
    stored = {r[0]: r[1] for r in served.rows("SELECT platform, text FROM task ORDER BY id DESC LIMIT 3")}
    assert stored["slack"].endswith(clean) and stored["teams"].endswith(clean) and stored["console"].endswith(clean)
    assert answered(served, "slack", "T1", sanitize.text(event_id))
    assert answered(served, "slack", sanitize.text(f"T{bad}1"), sanitize.text(f"{event_id}x"))


@pytest.mark.parametrize("name", ["a" * 256, "a" * 5000, "..%2F..%2Fetc%2Fpasswd", "%00", "console.js%00"])
def test_a_static_file_name_that_cannot_be_a_file_is_404(served: Served, name: str) -> None:
    assert served.send("GET", f"/static/{name}") == 404
    assert served.send("GET", "/static/console.js") == 200


# -- the same classes, generated -------------------------------------------------------------------

ids = st.one_of(st.integers(), st.floats(), st.text("0123456789²", min_size=1, max_size=30), st.just(10**30))
unstorable = st.lists(st.sampled_from(["\x00", "\ud800", "\udc00", "a", "é", "=", " ", f"<@{BOT_USER}>"]),
                      min_size=1, max_size=20).map("".join)  # fmt: skip
junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                    max_leaves=8)  # fmt: skip
bolt_keys = st.sampled_from(["type", "event", "actions", "user", "team", "channel", "view", "enterprise", "command",
                             "callback_id", "action_id", "authorizations", "container", "message"])  # fmt: skip


@FUZZ
@given(ident=ids)
def test_any_id_in_any_place_is_never_500(served: Served, ident: object) -> None:
    assert slack_action(served, raw_json({"approval_id": ident})) == 200
    assert teams_click(served, ident)[0] == 200
    text = ident if isinstance(ident, str) else raw_json(ident)
    assert slack_event(served, f"<@{BOT_USER}> status {text}") == 200
    from urllib.parse import quote

    assert served.send("GET", f"/tasks/{quote(text)}") in (404, 200)


@FUZZ
@given(text=unstorable, event_id=unstorable, team=unstorable)
def test_unstorable_text_and_ids_are_never_lost(served: Served, text: str, event_id: str, team: str) -> None:
    event_id = f"{event_id}{served.counts()}"
    assert (
        slack_event(served, f"<@{BOT_USER}> run announce channel=C9 text={text}", event_id=event_id, team_id=team)
        == 200
    )
    assert answered(served, "slack", arrived(team), arrived(event_id))
    activity_id = f"t{event_id}"
    assert teams_message(served, f"run announce channel=C9 text={text}", id=activity_id)[0] == 200
    assert answered(served, "teams", "tenant-1", arrived(activity_id))


@FUZZ
@given(base=st.sampled_from(list(BOLT_BREAKERS.values())), key=bolt_keys, value=junk, form=st.booleans())
def test_any_value_where_bolt_looks_is_never_500(
    served: Served, base: dict[str, object], key: str, value: object, form: bool
) -> None:
    body = {**base, key: value}
    status = slack_payload(served, body) if form else served.slack(raw_json(body))
    assert status < 500, f"{body} -> {status}"


def test_two_thousand_random_requests_over_every_endpoint_find_no_5xx(served: Served) -> None:
    """tests/e2e/fuzz_random.py: signed (and forged) platform requests with hostile values anywhere."""
    statuses, errors = fuzz(served, 2000, seed=12)
    assert errors == []
    assert sum(statuses.values()) == 2000 and {"200", "400", "401", "404"} <= set(statuses)
