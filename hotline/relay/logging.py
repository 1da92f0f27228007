"""The relay's logs: text or JSON lines, each tagged with the id of the request it belongs to.

Every HTTP request and WebSocket gets a request id: the client's ``X-Request-Id`` if it is a short
token of safe characters, a fresh random one otherwise. It is echoed in the response (and in the
socket's handshake answer) and carried by every log line written while the request runs, so that
an operator can follow one request through the relay and through the reverse proxy in front of it.

What never reaches a log: message content (the relay cannot read it anyway), tokens, invite codes,
keys, and the SQL parameters that carry them. The relay's own log calls name things by type and
path (invite codes redacted, ``hotline.relay.http``). Libraries that would print secrets are held
back whatever ``log_level`` says: SQLAlchemy logs statements with their parameters at INFO (held at
WARNING), and the ``websockets`` library logs whole frames — a socket's auth frame holds a token —
at DEBUG, through its own logger or, under uvicorn, through ``uvicorn.error`` (held at INFO).
``tests/deploy/test_logging.py`` checks this at debug level with a marker message and live tokens.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID_HEADER = "x-request-id"
# A client's id is kept only if it is this short and this plain: it ends up in every log line.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

request_id_var: ContextVar[str | None] = ContextVar("hotline_request_id", default=None)

# Loggers that print SQL parameters or raw frames below WARNING.
QUIET_LOGGERS = ("sqlalchemy", "websockets", "asyncpg", "aiosqlite", "alembic.runtime.migration")
# uvicorn hands its own logger to the websockets library, which logs every frame through it at DEBUG.
NO_DEBUG_LOGGERS = ("uvicorn.error",)

# Structured fields the relay passes with ``extra=``; nothing else from a record is copied out.
LOG_FIELDS = ("client", "method", "path", "status", "duration_ms")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_request_id() -> str:
    return os.urandom(8).hex()


def accept_request_id(value: str | None) -> str:
    """The client's request id if it is plain enough to log, else a new one."""
    if value is not None and _CLIENT_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``"-"`` outside a request) to every record a handler sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, the known fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id and request_id != "-":
            out["request_id"] = request_id
        for name in LOG_FIELDS:
            if name in record.__dict__:
                out[name] = record.__dict__[name]
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def configure_logging(level: str, log_format: str) -> None:
    """Route every logger to stderr in ``log_format`` (``text`` or ``json``) at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in NO_DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


class RequestIdMiddleware:
    """Pure ASGI: gives each HTTP request and WebSocket its request id, echoed as ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", ()):
            if name == REQUEST_ID_HEADER.encode():
                given = value.decode("latin-1")
        request_id = accept_request_id(given)
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        reset = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(reset)
