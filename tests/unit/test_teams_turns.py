"""Turn logic of `TeamsBot` on botbuilder's TestAdapter, with recording handlers."""

from __future__ import annotations

from botbuilder.core import InvokeResponse

from adapters.chat import ClickResult
from tests.fakes.bot_connector import BOT_ID, execute_invoke, submit_message, teams_activity
from tests.fakes.teams_bot import RecordingBot, run_turn

URL = "https://smba.trafficmanager.net/emea/"


async def test_channel_mention_is_handed_to_the_bot_without_an_inline_reply():
    recorder = RecordingBot()
    adapter, _ = await run_turn(recorder, teams_activity(URL, text="draft the weekly update"))
    assert [m.text for m in recorder.messages] == ["draft the weekly update"]
    assert adapter.activity_buffer == []


async def test_the_bots_own_messages_are_ignored():
    recorder = RecordingBot()
    await run_turn(recorder, teams_activity(URL, text="Task 3 done", user=BOT_ID, aad=None))
    assert recorder.messages == []


async def test_bot_added_to_a_conversation_answers_with_help():
    recorder = RecordingBot()
    payload = teams_activity(URL, type="conversationUpdate", membersAdded=[{"id": BOT_ID}])
    await run_turn(recorder, payload)
    assert [m.text for m in recorder.messages] == ["help"]


async def test_someone_else_joining_gets_no_welcome():
    recorder = RecordingBot()
    payload = teams_activity(URL, type="conversationUpdate", membersAdded=[{"id": "29:carol"}])
    await run_turn(recorder, payload)
    assert recorder.messages == []


async def test_action_execute_is_answered_with_the_refreshed_card():
    recorder = RecordingBot()
    _, response = await run_turn(recorder, execute_invoke(URL, "approve", {"approval_id": 4}))
    assert isinstance(response, InvokeResponse)
    assert response.status == 200
    assert response.body["type"] == "application/vnd.microsoft.card.adaptive"
    assert response.body["value"]["body"][0]["text"] == "Approved by Alice"
    assert [(c.action, c.value) for c in recorder.clicks] == [("approve", {"approval_id": 4})]


async def test_unknown_invoke_names_get_a_400_not_a_crash():
    recorder = RecordingBot()
    payload = teams_activity(URL, type="invoke", name="composeExtension/query", value={})
    _, response = await run_turn(recorder, payload)
    assert response.status == 400
    assert "composeExtension/query" in response.body["value"]["message"]
    assert recorder.clicks == []


async def test_refused_submit_sends_nothing_inline_the_bot_notifies():
    recorder = RecordingBot(click_result=ClickResult(False, "Only Bob may approve this"))
    adapter, _ = await run_turn(recorder, submit_message(URL, "approve", {"approval_id": 4}))
    assert [c.user for c in recorder.clicks] == ["aad-alice"]
    assert adapter.activity_buffer == []


async def test_accepted_submit_sends_nothing_inline():
    recorder = RecordingBot()
    adapter, _ = await run_turn(recorder, submit_message(URL, "approve", {"approval_id": 4}))
    assert len(recorder.clicks) == 1
    assert adapter.activity_buffer == []
