"""Fixtures for the browser tests: a loopback server for the web client and vectors, and headless Chromium.

The server serves only ``clients/web/`` at ``/``, ``tests/vectors/`` at ``/vectors/`` and
``tests/web/data/`` at ``/test-data/``, from a thread, on ``http://127.0.0.1:<ephemeral port>`` — a secure
context, so WebCrypto is available — with the strict Content-Security-Policy the client must live under
(``script-src 'self'``, no inline script, no eval). Chromium is Debian's ``/usr/bin/chromium`` driven by
Playwright; without it the browser tests are skipped, except under ``CI=true``, where a missing browser is
a failure.
"""

from __future__ import annotations

import mimetypes
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Debian's Chromium; HOTLINE_TEST_CHROMIUM names another build (the tests never download a browser).
CHROMIUM = Path(os.environ.get("HOTLINE_TEST_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
# Longest prefix first: "/" must come last.
MOUNTS = (
    ("/vectors/", ROOT / "tests" / "vectors"),
    ("/test-data/", ROOT / "tests" / "web" / "data"),
    ("/", ROOT / "clients" / "web"),
)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
CONTENT_TYPES = {".js": "text/javascript", ".json": "application/json", ".html": "text/html; charset=utf-8"}
PAGE = "/test-vectors.html"


def resolve_path(url_path: str) -> Path | None:
    """The file a URL path names inside one of the mounts, or None (never anything outside them)."""
    path = unquote(urlsplit(url_path).path)
    for prefix, root in MOUNTS:
        if path.startswith(prefix):
            candidate = (root / path[len(prefix) :]).resolve()
            if candidate.is_relative_to(root.resolve()) and candidate.is_file():
                return candidate
            return None
    return None


class StaticHandler(BaseHTTPRequestHandler):
    """GET and HEAD of files under the mounts; everything else is 404 or 405."""

    def do_GET(self) -> None:
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        self._serve(with_body=False)

    def _serve(self, *, with_body: bool) -> None:
        path = resolve_path(self.path)
        if path is None:
            self.send_error(404)
            return
        body = path.read_bytes()
        content_type = CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        self.send_response(200)
        self.send_header("Content-Type", content_type or "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass  # keep the test output quiet


@pytest.fixture(scope="session")
def web_server() -> Iterator[str]:
    """Base URL of the loopback server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StaticHandler)
    thread = threading.Thread(target=server.serve_forever, name="web-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _browser_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _browser_unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_unavailable("the playwright package is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class SelftestPage:
    """The self-test page, loaded once; `problems` collects console errors, page errors and CSP violations."""

    page: Any
    problems: list[str] = field(default_factory=list)

    def run(self, suite: str) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate("(name) => globalThis.hotlineSelftest.run(name)", suite)
        return result

    def step(self, name: str, args: Any = None) -> Any:
        return self.page.evaluate(
            "([name, args]) => globalThis.hotlineSelftest.step(name, args)",
            [name, args],
        )


@pytest.fixture(scope="session")
def selftest(browser: Any, web_server: str) -> Iterator[SelftestPage]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    result = SelftestPage(page)
    page.on("console", lambda msg: _console_problem(msg, result.problems))
    page.on("pageerror", lambda err: result.problems.append(f"page error: {err}"))
    page.on("response", lambda r: _response_problem(r, result.problems))
    response = page.goto(web_server + PAGE)
    assert response is not None and response.ok, f"could not load {PAGE}"
    # Module scripts run before the load event that goto() waits for. (wait_for_function would compile its
    # predicate with eval, which the page's own policy forbids.)
    assert page.evaluate("() => globalThis.hotlineSelftest !== undefined"), (
        "the self-test module did not load"
    )
    try:
        yield result
    finally:
        context.close()


def _console_problem(message: Any, problems: list[str]) -> None:
    # Failed loads are reported by _response_problem with their URL instead (the browser's own
    # /favicon.ico request is not the page's doing).
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        problems.append(f"console: {message.text}")


def _response_problem(response: Any, problems: list[str]) -> None:
    if response.status >= 400 and urlsplit(response.url).path != "/favicon.ico":
        problems.append(f"HTTP {response.status} for {response.url}")


def failures(cases: list[dict[str, Any]]) -> list[str]:
    """Readable lines for the failed cases of a suite."""
    return [f"{c['name']}: {c.get('error')}" for c in cases if not c["ok"]]


# --- the browser client against a real relay ------------------------------------------------------


def start_web_relay(tmp_path_factory: pytest.TempPathFactory, **settings: str) -> Any:
    """A real relay (``hotline serve`` on SQLite, on an ephemeral loopback port) serving the web client."""
    from tests.relay.support import RelayProcess

    data_dir = tmp_path_factory.mktemp("web-relay") / "data"
    env = {"HOTLINE_LOG_LEVEL": "warning", **{f"HOTLINE_{k.upper()}": v for k, v in settings.items()}}
    return RelayProcess(data_dir, None, "sqlite", env).start()


@pytest.fixture(scope="session")
def web_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One relay for the browser-client tests; each test makes its own channel."""
    relay = start_web_relay(tmp_path_factory)
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture
def open_desks() -> Iterator[list[Any]]:
    """Browser desks a test opened; closed at its end, after checking none saw a problem."""
    desks: list[Any] = []
    yield desks
    problems = [f"{d.member or 'page'}: {p}" for d in desks for p in d.problems]
    for d in desks:
        d.close()
    assert not problems, "\n".join(problems)
