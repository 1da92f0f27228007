"""Pure-ASGI middleware for the relay's HTTP side: size limits, rate limits, headers, last-resort errors.

They run before FastAPI parses anything. :class:`RequestGuardMiddleware` refuses an over-limit
client address (429) and an oversized body — from its ``Content-Length`` before reading a byte, or
while it streams in when there is none — so the relay never buffers more than ``max_request_bytes``.
:class:`ResponseMiddleware` adds security headers to every response, writes a content-free access log,
and turns an unexpected exception into a bare 500 JSON error (the traceback goes to the log only).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hotline.relay.errors import RelayError, RelayErrorCode
from hotline.relay.ratelimit import TokenBucketLimiter, retry_after_header

log = logging.getLogger("hotline.relay.access")
errlog = logging.getLogger("hotline.relay")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The web client is served from "/": nothing but our own origin, no inline script, no framing; and
# Trusted Types with no policy, so no script of the page can write markup into an HTML sink (innerHTML
# and kin throw): the client builds its DOM with createElement and textContent only (docs/WEB.md).
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
)
# Swagger UI at /docs loads its script and style from a CDN and starts with an inline script.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/docs/oauth2-redirect")

# Invite codes travel in a path; they must never reach a log.
_SECRET_PATH = re.compile(r"^(/v1/invites/)[^/]+")


def redact_path(path: str) -> str:
    return _SECRET_PATH.sub(r"\1…", path)


async def send_error(send: Send, error: RelayError) -> None:
    body = json.dumps(error.to_json(), separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RequestGuardMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, limiter: TokenBucketLimiter) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        retry = self.limiter.take("a" + client_address(scope))
        if retry is not None:
            await send_error(
                send,
                RelayError(
                    RelayErrorCode.RATE_LIMITED,
                    "too many requests from this address",
                    headers={"Retry-After": retry_after_header(retry)},
                ),
            )
            return
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                length = value
        if length is not None:
            if not length.isdigit() or len(length) > 18:
                await send_error(send, RelayError(RelayErrorCode.MALFORMED, "bad Content-Length"))
                return
            if int(length) > self.max_body_bytes:
                await send_error(send, self._too_large())
                return
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)

    def _too_large(self) -> RelayError:
        return RelayError(
            RelayErrorCode.TOO_LARGE, f"request body is over the limit of {self.max_body_bytes} bytes"
        )


class ResponseMiddleware:
    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self.app = app
        self.tls = tls

    def _headers(self, path: str) -> list[tuple[bytes, bytes]]:
        csp = DOCS_CSP if path in _DOCS_PATHS else STRICT_CSP
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
            (b"content-security-policy", csp.encode()),
        ]
        if path.startswith("/v1/"):
            headers.append((b"cache-control", b"no-store"))
        if self.tls:
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        started = time.perf_counter()
        status = 0
        extra = self._headers(path)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in extra if h[0] not in present
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            errlog.exception("unhandled error on %s %s", scope.get("method"), redact_path(path))
            if status == 0:
                await send_error(
                    send_with_headers, RelayError(RelayErrorCode.INTERNAL, "internal error", status=500)
                )
        finally:
            client, method, safe_path = client_address(scope), scope.get("method"), redact_path(path)
            elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
            log.info(
                "%s %s %s %d %.1fms",
                client,
                method,
                safe_path,
                status,
                elapsed_ms,
                extra={
                    "client": client,
                    "method": method,
                    "path": safe_path,
                    "status": status,
                    "duration_ms": elapsed_ms,
                },
            )
