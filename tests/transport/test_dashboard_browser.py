"""The dashboard in a real headless browser: Debian's chromium driven by Playwright.

Playwright cannot download its own browser builds on these machines, so it
launches the system's: ``$FLASHSALE_CHROMIUM`` if set, else ``chromium`` on
``PATH``, else ``/usr/bin/chromium`` (``make test`` installs Debian's
``chromium`` when it is missing: tests/system-deps.sh). Screenshots of the
page at desktop and phone widths are kept in ``artifacts/dashboard/`` (or
``$FLASHSALE_ARTIFACTS``), which git ignores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from flashsale import Config, SkuConfig, StoreConfig, wall_clock
from flashsale.config import RoomConfig

from .live import LiveServer, live_server

TOKEN = "browser-admin-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium() -> str:
    """The system's chromium, or a failure that says how to install it."""
    found = os.environ.get("FLASHSALE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(found, os.X_OK):
        pytest.fail(f"no chromium at {found}: apt-get install chromium (or set FLASHSALE_CHROMIUM)")
    return found


def artifacts() -> Path:
    folder = Path(os.environ.get("FLASHSALE_ARTIFACTS", ROOT / "artifacts")) / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless chromium, closed after the test."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A two-SKU sale on a real socket, with an admin token."""
    config = Config(
        skus=(SkuConfig("moutai-53", stock=100, per_user_limit=2), SkuConfig("tshirt", stock=5000)),
        store=StoreConfig(path=str(tmp_path / "orders.db")),
    )
    with live_server(config, TOKEN) as live:
        yield live


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def watch_console(page: Page) -> list[str]:
    """Every console error and uncaught page error, as text."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/dashboard")
    page.fill("#token", TOKEN)
    page.click("#signin button[type=submit]")
    expect(page.locator("#skus")).to_be_visible()


def test_sign_in_see_the_stock_and_watch_a_purchase_move_the_bar(server: LiveServer, browser: Browser) -> None:
    """Sign in, see the stock, see a purchase made through the API move the bar within 2 s; no console errors."""
    page = browser.new_page(viewport=DESKTOP)
    errors = watch_console(page)
    sign_in(page, server.url)

    card = page.locator('[data-sku="moutai-53"]')
    expect(card).to_have_attribute("data-remaining", "100", timeout=5000)
    expect(card.locator(".remaining")).to_have_text("100")
    left = card.locator(".seg.left")
    expect(left).to_have_attribute("style", "width: 100%;")

    status, body = post(f"{server.url}/v1/purchase", {"sku": "moutai-53", "user": "alice", "qty": 2})
    assert (status, body["result"]) == (200, "reserved")
    expect(card).to_have_attribute("data-remaining", "98", timeout=2000)
    expect(left).to_have_attribute("style", "width: 98%;", timeout=2000)
    expect(card.locator(".seg.reserved")).to_have_attribute("style", "width: 2%;", timeout=2000)
    expect(page.locator('#answers [data-result="reserved"] .n')).to_have_text("1", timeout=2000)
    expect(page.locator("#ready")).to_have_text("ready")
    expect(page.locator('#checks [data-check="store_ok"]')).to_have_class("ok")
    # The chart: the server samples sales once a second, the page polls once a second.
    expect(page.locator("#sales-caption")).to_contain_text("last minute: 2 units", timeout=5000)
    axis = [t for t in page.locator("#sales text").all_text_contents() if t.isdigit()]
    assert axis == ["0", "1", "2"]  # whole numbers, none twice

    folder = artifacts()
    page.screenshot(path=folder / "desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    expect(card).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than a phone
    page.screenshot(path=folder / "phone.png", full_page=True)
    assert errors == []


def test_the_pause_button_pauses_the_sku(server: LiveServer, browser: Browser) -> None:
    """Pause on the page: the next purchase gets 409 sale_paused; Resume sells again; no console errors."""
    page = browser.new_page(viewport=DESKTOP)
    errors = watch_console(page)
    sign_in(page, server.url)
    card = page.locator('[data-sku="moutai-53"]')
    expect(card).to_have_attribute("data-state", "on_sale", timeout=5000)

    card.locator('[data-act="pause"]').click()
    expect(card).to_have_attribute("data-state", "paused", timeout=2000)
    status, body = post(f"{server.url}/v1/purchase", {"sku": "moutai-53", "user": "bob"})
    assert (status, body["error"]) == (409, "sale_paused")

    card.locator('[data-act="resume"]').click()
    expect(card).to_have_attribute("data-state", "on_sale", timeout=2000)
    status, body = post(f"{server.url}/v1/purchase", {"sku": "moutai-53", "user": "bob"})
    assert (status, body["result"]) == (200, "reserved")
    assert errors == []


def test_a_wrong_token_stays_on_the_sign_in_form(server: LiveServer, browser: Browser) -> None:
    """A wrong token shows the server's reason on the form and opens nothing."""
    page = browser.new_page(viewport=PHONE)
    page.goto(f"{server.url}/dashboard")
    page.fill("#token", "not-the-admin-token-at-all")
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin-error")).to_have_text("that is not the admin token")
    assert page.context.cookies() == []
    page.screenshot(path=artifacts() / "signin-phone.png")


@pytest.fixture
def room_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A sale whose waiting room has been admitting for a minute, with an admin token."""
    started = wall_clock() - 60_000_000
    config = Config(
        skus=(SkuConfig("moutai-53", stock=100, per_user_limit=2),),
        store=StoreConfig(path=str(tmp_path / "orders.db")),
        waiting_room=RoomConfig(starts_at=started, opens_at=started - 60_000_000, admit_rate=100.0),
    )
    with live_server(config, TOKEN) as live:
        yield live


def room_now(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/v1/room", timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_the_room_panel_sets_the_rate_and_pauses(room_server: LiveServer, browser: Browser) -> None:
    """The room panel shows the room; its rate form sets admit_rate, Pause and Resume steer it; no console errors."""
    page = browser.new_page(viewport=DESKTOP)
    errors = watch_console(page)
    sign_in(page, room_server.url)
    expect(page.locator("#room")).to_be_visible(timeout=5000)
    expect(page.locator("#room-state")).to_have_text("admitting", timeout=5000)
    expect(page.locator("#room-admit")).to_have_value("100", timeout=5000)
    expect(page.locator("#room-progress")).to_have_text("nobody in the room yet")

    page.fill("#room-admit", "25")
    page.click("#room-form button[type=submit]")
    expect(page.locator("#toast")).to_have_text("room rate set", timeout=2000)
    assert room_now(room_server.url)["admit_rate"] == 25.0

    page.click("#room-pause")
    expect(page.locator("#room-state")).to_have_text("paused", timeout=2000)
    expect(page.locator("#room-clear")).to_have_text("0 s")  # nobody waits: nothing to clear
    assert room_now(room_server.url)["state"] == "paused"
    page.click("#room-resume")
    expect(page.locator("#room-state")).to_have_text("admitting", timeout=2000)
    assert room_now(room_server.url)["state"] == "admitting"

    for n in range(3):
        assert post(f"{room_server.url}/v1/room/join", {"user": f"w{n}"})[0] == 201
    expect(page.locator("#room-progress")).to_have_text(re.compile(r"^[0-3] of 3 admitted$"), timeout=3000)
    expect(page.locator("#room-bar")).not_to_have_class(re.compile("hot"))  # progress, never a warning
    assert errors == []
