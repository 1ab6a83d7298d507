"""Teams activities -> neutral messages and clicks (pure translation)."""

from __future__ import annotations

from typing import Any

import pytest
from botbuilder.schema import Activity

from adapters.teams.inbound import (
    conversation_id,
    is_from_bot,
    stored_reference,
    strip_mentions,
    to_click,
    to_inbound,
    welcome,
)
from tests.fakes.bot_connector import BOT_ID, CHANNEL, TENANT, execute_invoke, submit_message
from tests.fakes.bot_connector import teams_activity as raw

URL = "https://smba.trafficmanager.net/emea/"


def act(payload: dict[str, Any]) -> Activity:
    return Activity().deserialize(payload)


def test_channel_mention_becomes_a_message_in_the_reply_chain():
    inbound = to_inbound(act(raw(URL, id="17", text="summarize the release notes")))
    assert inbound is not None
    assert inbound.text == "summarize the release notes"
    assert inbound.event_id == "17"
    assert (inbound.platform, inbound.tenant, inbound.user) == ("teams", TENANT, "aad-alice")
    assert inbound.conversation.channel == CHANNEL
    assert inbound.conversation.thread == "17"
    assert inbound.direct is False
    assert conversation_id(inbound.conversation) == f"{CHANNEL};messageid=17"


@pytest.mark.parametrize("kind", ["groupChat", "personal"])
def test_group_and_personal_chat_messages_have_no_thread(kind: str):
    inbound = to_inbound(act(raw(URL, text="list", conversation_type=kind, mention_bot=False)))
    assert inbound is not None
    assert inbound.text == "list"
    assert inbound.conversation.thread is None
    assert inbound.direct is (kind == "personal")


def test_reference_is_stored_with_service_url_for_later_proactive_posts():
    inbound = to_inbound(act(raw(URL, text="hi")))
    assert inbound is not None
    assert inbound.conversation.extra["service_url"] == URL
    reference = stored_reference(inbound.conversation)
    assert reference.service_url == URL
    assert reference.bot.id == BOT_ID
    assert reference.conversation.id == f"{CHANNEL};messageid=1700000000001"


def test_other_mentions_keep_the_name_without_markup():
    text = "<at>Cowork</at> ask <at>Bob Smith</at> about &quot;Q3&quot;\n"
    entities = act(raw(URL, text="x")).entities
    assert strip_mentions(text, entities, BOT_ID) == 'ask Bob Smith about "Q3"'


def test_user_without_aad_object_id_is_known_by_channel_id():
    inbound = to_inbound(act(raw(URL, text="hi", aad=None, user="29:bob")))
    assert inbound is not None and inbound.user == "29:bob"


def test_a_bare_mention_asks_for_help():
    inbound = to_inbound(act(raw(URL, text="")))
    assert inbound is not None and inbound.text == "help"


def test_messages_from_the_bot_itself_are_ignored():
    own = act(raw(URL, text="I posted this", user=BOT_ID, aad=None))
    assert is_from_bot(own)
    assert to_inbound(own) is None


def test_tenant_comes_from_channel_data():
    payload = raw(URL, text="hi")
    del payload["conversation"]["tenantId"]
    inbound = to_inbound(act(payload))
    assert inbound is not None and inbound.tenant == TENANT


def test_action_execute_invoke_becomes_a_click():
    click = to_click(act(execute_invoke(URL, "approve", {"approval_id": 7})))
    assert click is not None
    assert (click.action, click.value, click.user) == ("approve", {"approval_id": 7}, "aad-alice")
    assert click.message_id == "msg-1"


def test_action_submit_from_older_clients_becomes_the_same_click():
    activity = act(submit_message(URL, "reject", {"approval_id": 7}))
    click = to_click(activity)
    assert click is not None
    assert (click.action, click.value) == ("reject", {"approval_id": 7})
    assert to_inbound(activity) is None


def test_invoke_without_a_verb_is_not_a_click():
    payload = execute_invoke(URL, "", {})
    payload["value"] = "garbage"
    assert to_click(act(payload)) is None


def test_bot_added_to_a_team_asks_for_help_once_per_activity():
    added = act(raw(URL, type="conversationUpdate", id="cu-1", membersAdded=[{"id": BOT_ID}]))
    inbound = welcome(added)
    assert (inbound.text, inbound.event_id) == ("help", "welcome:cu-1")
