"""A real headless Chromium on the console served by a real server (the app of
`cowork serve` on a free port, with the worker and delivery loops running):
mention -> task card -> a stranger's approve is refused privately -> the
requester approves -> the message appears in #eng -> completion summary."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.web.server import make_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
WAIT_MS = 20_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server(sqlite_url: str) -> AsyncIterator[str]:
    port = free_port()
    runtime = Runtime(Settings(DATABASE_URL=sqlite_url, PORT=port, COWORK_HOST="127.0.0.1"))
    runner = web.AppRunner(make_app(runtime, console=True), access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await runtime.start(worker=True, delivery=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runtime.stop()
        await runner.cleanup()
        runtime.close()


@pytest.fixture
async def page(server: str) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=WAIT_MS)  # assertions wait as long as actions: a loaded 2-core CI is slow
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        tab = await context.new_page()
        tab.set_default_timeout(WAIT_MS)
        yield tab
        await browser.close()


async def test_approval_flow_in_the_browser(server: str, page: object, tmp_path: Path) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.goto(f"{server}/?user=alice#general")
    await expect(page.locator("#live")).to_have_class("live on")
    await page.fill("#text", "@cowork run announce channel=#eng text=hello")
    await page.press("#text", "Enter")

    task_card = page.locator(".card", has=page.locator(".card-title", has_text="Task #1: run announce"))
    await expect(task_card).to_be_visible()
    approve = page.locator("button[data-action=approve]")
    await expect(approve).to_be_visible()
    # the bot answered in the thread that the mention started, with one card that asks for the approval
    await expect(page.locator(".thread-block .replies .card")).to_have_count(1)
    await expect(task_card.locator("button[data-action=approve]")).to_be_visible()

    await page.select_option("#user", "bob")
    await expect(page.locator("#live")).to_have_class("live on")
    await approve.click()
    notice = page.locator(".msg.private")
    await expect(notice).to_contain_text("Not done: you are not allowed to decide this approval.")
    await expect(approve).to_be_visible()
    await page.screenshot(path=str(tmp_path / "console-refused.png"))

    await page.select_option("#user", "alice")
    await expect(page.locator("#live")).to_have_class("live on")
    await expect(page.locator(".msg.private")).to_have_count(0)
    await approve.click()
    await expect(task_card).to_contain_text("Approved by alice")
    await expect(page.locator("button[data-action=approve]")).to_have_count(0)
    await expect(task_card).to_contain_text("posted a message to #eng")  # the card ends as the summary
    await expect(task_card.locator(".card-fields")).to_contain_text("Done")
    await page.screenshot(path=str(tmp_path / "console-done.png"))

    await page.click("a.nav-item[data-channel=eng]")
    await expect(page.locator("#channel-title")).to_have_text("#eng")
    await expect(page.locator(".msg.from-bot .msg-text")).to_have_text("hello")

    await page.goto(f"{server}/tasks/1")
    await expect(page.locator("h1")).to_have_text("Task #1: run announce")
    await expect(page.locator("table.approvals")).to_contain_text("alice")
    await expect(page.locator("table.steps")).to_contain_text("succeeded")


async def test_user_markup_is_shown_as_text_in_the_browser(server: str, page: object) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.goto(f"{server}/?user=carol#random")
    await expect(page.locator("#live")).to_have_class("live on")
    evil = "<img src=x onerror=\"document.body.dataset.owned='yes'\"><b>bold?</b>"
    await page.fill("#text", evil)
    await page.press("#text", "Enter")
    await expect(page.locator(".msg .msg-text")).to_have_text(evil)
    assert await page.locator(".msg-text img, .msg-text b").count() == 0
    assert await page.evaluate("document.body.dataset.owned") is None
