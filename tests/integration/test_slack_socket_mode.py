"""Socket Mode (SLACK_APP_TOKEN): the same bolt app over a WebSocket to the fake
Slack; an event envelope reaches the bot and is acknowledged by envelope id."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import SlackAdapter, build_app, socket_mode
from tests.fakes.slack_api import fake_slack, mention_event
from tests.fakes.slack_endpoint import FakeBot


async def test_an_event_over_socket_mode_reaches_the_bot_and_is_acked() -> None:
    async with fake_slack() as slack:
        bot = FakeBot()
        adapter = SlackAdapter(AsyncWebClient(token="xoxb-t", base_url=slack.base_url))
        app = build_app(adapter, signing_secret="", on_message=bot.handle_message, on_click=bot.handle_click)
        handler = socket_mode(app, "xapp-test")
        await handler.connect_async()
        try:
            await slack.until(lambda: bool(slack.sockets))
            envelope = {
                "envelope_id": "env-1",
                "type": "events_api",
                "accepts_response_payload": False,
                "payload": mention_event("run announce channel=#eng text=hi"),
            }
            await slack.sockets[0].send_json(envelope)
            await slack.until(lambda: any(f.get("envelope_id") == "env-1" for f in slack.frames))
        finally:
            await handler.close_async()
        assert slack.called("apps.connections.open")[0].token == "xapp-test"
        assert bot.messages["Ev1"].text == "run announce channel=#eng text=hi"
