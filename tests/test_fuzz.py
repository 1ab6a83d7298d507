"""Bad input at every HTTP endpoint (hypothesis): no 500, no crash, and a
refused request stores nothing (task and outbox rows counted before and after).

The whole app runs on loopback in its own thread, with Slack, Teams and the
console mounted; requests are raw bytes over http.client, so nothing is
cleaned up on the way in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.schema import upgrade
from tests.conftest import _pg, _pg_url
from tests.fakes.served import SECRET, Served, served_app
from tests.fakes.slack_api import signed_headers


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
    path = gets[pick % len(gets)].replace("{id}", ident)
    from urllib.parse import quote

    status = served.send("GET", f"{quote(path)}?{quote(query, safe='=&')}")
    assert status < 500, f"GET {path}?{query} -> {status}"
