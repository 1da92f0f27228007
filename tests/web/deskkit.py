"""Driving the browser client as people use it: a page per desk, each in its own browser context.

A ``BrowserDesk`` is one enrolled browser profile (its own IndexedDB), driven through the page's
controls only. Every console error, page error, CSP violation and unexpected HTTP error the page sees is
collected in ``problems``; the tests assert it stays empty. The only errors expected are the 404s and
403s of feature detection (the client asks the relay what it offers), listed in ``EXPECTED_MISSING``.
``HOTLINE_TEST_CONSOLE=1`` prints every console message of every page (with ``pytest -s``), to debug.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Channel paths the client asks for to learn what the relay offers; a relay without them answers 404.
EXPECTED_MISSING = re.compile(r"/v1/channels/[^/]+/(policy|link|exercise|audit/entries|audit/consistency)$")
TIME = re.compile(r"\d\d:\d\d:\d\dZ")


def make_channel(
    relay: Any, members: dict[str, str], name: str = "delhi-islamabad"
) -> tuple[str, dict[str, Any]]:
    """A channel with a readable name (it shows in screenshots), made unique with a short suffix."""
    channel = f"{name}-{uuid.uuid4().hex[:4]}"
    r = relay.admin.post(
        "/v1/admin/channels",
        json={
            "channel": channel,
            "title": "Delhi–Islamabad hotline",
            "members": [{"member": m, "role": role} for m, role in members.items()],
        },
    )
    assert r.status_code == 201, r.text
    return channel, {i["member"]: i for i in r.json()["invites"]}


def artifacts_dir() -> Path:
    """Where tests save screenshots and downloads (``HOTLINE_TEST_ARTIFACTS``, else test-artifacts/web)."""
    path = Path(os.environ.get("HOTLINE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "web"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save to the artifacts dir; with HOTLINE_UPDATE_SCREENSHOTS=1 also refresh docs/screenshots/."""
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    if os.environ.get("HOTLINE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")
    return path


@dataclass
class BrowserDesk:
    """One browser profile (context) with its page, enrolled through the page's own enrollment form."""

    context: Any
    page: Any
    member: str = ""
    device: str = ""
    problems: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Any, url: str, *, viewport: dict[str, int] = DESKTOP) -> BrowserDesk:
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        desk = cls(context, page)
        page.on("console", desk._console)
        page.on("pageerror", lambda err: desk.problems.append(f"page error: {err}"))
        page.on("response", desk._response)
        page.goto(url)
        return desk

    @classmethod
    def enroll(
        cls,
        browser: Any,
        relay_url: str,
        invite: dict[str, Any],
        device: str = "browser",
        *,
        viewport: dict[str, int] = DESKTOP,
        screenshot: str | None = None,
    ) -> BrowserDesk:
        desk = cls.open(browser, f"{relay_url}/#enroll={invite['code']}", viewport=viewport)
        page = desk.page
        page.wait_for_selector("#enroll-button:not([disabled])")
        assert page.text_content("#invite-member") == invite["member"]
        page.fill("#device-name", device)
        if screenshot:
            save_screenshot(page, screenshot)
        page.click("#enroll-button")
        ready = {"operator": "#verify-button", "controller": "#exercise-body"}.get(
            invite["role"], "#compose-form"
        )
        page.wait_for_selector(ready)
        desk.member, desk.device = invite["member"], device
        # The invite code is gone from the address bar once used.
        assert "enroll=" not in page.url
        return desk

    def _console(self, message: Any) -> None:
        # Failed loads are judged by _response, with their URL.
        if os.environ.get("HOTLINE_TEST_CONSOLE"):
            print(f"[{self.member or 'page'}] {message.type}: {message.text}")
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")

    def _response(self, response: Any) -> None:
        path = urlsplit(response.url).path
        if response.status >= 400 and not EXPECTED_MISSING.search(path) and path != "/favicon.ico":
            self.problems.append(f"HTTP {response.status} for {response.request.method} {path}")

    # --- navigation -----------------------------------------------------------------------------------

    def view(self, name: str) -> None:
        self.page.click(f"#tabs a[data-view={name}]")
        self.page.wait_for_selector(f"#tabs a[data-view={name}].active")

    def wait_live(self) -> None:
        self.page.wait_for_selector("#link-pill.link-connected")

    # --- desk -------------------------------------------------------------------------------------------

    def send(
        self,
        text: str,
        *,
        precedence: str = "ROUTINE",
        intent: str = "free_text",
        to: list[str] | None = None,
    ) -> str:
        """Compose and send; returns the message id of the new card."""
        page = self.page
        if to is not None:
            for box in page.query_selector_all("#to-field input[type=checkbox]"):
                box.set_checked(box.get_attribute("value") in to)
        page.check(f"input[name=precedence][value={precedence}]")
        page.select_option("#intent", intent)
        page.fill("#message-text", text)
        before = set(self.sent_ids())
        page.click("#send-button")
        page.wait_for_selector("#compose-status:has-text('Sent.')")
        new = [i for i in self.sent_ids() if i not in before]
        assert len(new) == 1, new
        return new[0]

    def sent_ids(self) -> list[str]:
        return [
            str(el.get_attribute("data-message-id"))
            for el in self.page.query_selector_all("#messages li[data-kind=sent]")
        ]

    def card(self, message_id: str) -> Any:
        return self.page.locator(f"#msg-{message_id}")

    def wait_received(self, text: str) -> str:
        """Wait for a received message with this text; returns its id."""
        locator = self.page.locator("#messages li[data-kind=received]", has_text=text)
        locator.first.wait_for()
        return str(locator.first.get_attribute("data-message-id"))

    def acknowledge(self, message_id: str, reply: str = "") -> None:
        card = self.card(message_id)
        if reply:
            card.locator("textarea").fill(reply)
        card.locator("button[data-action=acknowledge]").click()
        card.locator("[data-step=acknowledged].done").wait_for()

    def state(self) -> dict[str, Any]:
        """The saved profile state from IndexedDB (what survives a reload)."""
        result: dict[str, Any] = self.page.evaluate(
            """async () => {
              const { profileStore } = await import("/js/app/store.js");
              const [p] = await profileStore.list();
              return JSON.parse(JSON.stringify(await profileStore.getState(p.id)));
            }"""
        )
        return result

    def close(self) -> None:
        self.context.close()


# --- the command-line desk ---------------------------------------------------------------------------


@dataclass
class CliDesk:
    """The real ``hotline`` command as a subprocess, with its own HOTLINE_HOME."""

    home: Path
    relay_url: str

    def __call__(self, *args: str) -> Any:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update(HOTLINE_HOME=str(self.home), HOTLINE_RELAY_URL=self.relay_url, NO_COLOR="1")
        done = subprocess.run(
            [sys.executable, "-m", "hotline.cli", *args, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, f"hotline {' '.join(args)} exited {done.returncode}: {done.stderr}"
        return json.loads(done.stdout)


def eventually(check: Any, timeout: float = 15.0, interval: float = 0.2, page: Any = None) -> Any:
    """Call ``check`` until it returns something truthy (or raise its last assertion).

    With ``page``, wait through Playwright: its event handlers (routes, console) only run while the
    sync API is inside a call, so a plain sleep would stall them.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        if page is not None:
            page.wait_for_timeout(interval * 1000)
        else:
            time.sleep(interval)
