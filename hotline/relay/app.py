"""``create_app(settings)``: the relay's FastAPI application, routes and error handling.

Routes only parse, authorize and delegate to :class:`hotline.relay.service.RelayService`; the only
place errors become responses is here (and, for requests refused before routing, ``http.py``). Every
error is ``{"error": {"code", "message"}}`` with a stable code (docs/API.md) — including FastAPI's
validation errors, Starlette's 404 and 405, and database outages (503). Nothing is created at import
time: the lifespan loads the relay's keys, opens and migrates the database and starts the background
tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hotline.protocol.crypto import constant_time_equal
from hotline.protocol.errors import ProtocolError
from hotline.protocol.model import CHANNEL_RE, NAME_RE, UUID_RE
from hotline.relay import bodies, migrate
from hotline.relay.access import Principal, require_channel
from hotline.relay.audit_api import build_audit_router
from hotline.relay.clock import RelayClock
from hotline.relay.db import create_engine
from hotline.relay.errors import RelayError, RelayErrorCode, from_protocol
from hotline.relay.http import RequestGuardMiddleware, ResponseMiddleware, redact_path
from hotline.relay.identity import RelayIdentity, load_or_create_identity
from hotline.relay.logging import RequestIdMiddleware
from hotline.relay.metrics import (
    PROMETHEUS_CONTENT_TYPE,
    RelayMetrics,
    ResponseCountMiddleware,
    authorize_scrape,
)
from hotline.relay.notifier import LocalNotifier, Notifier, PostgresNotifier
from hotline.relay.ratelimit import TokenBucketLimiter, retry_after_header
from hotline.relay.semantics_routes import build_semantics_router
from hotline.relay.service import MemberSpec, RelayService
from hotline.relay.settings import RelaySettings
from hotline.relay.socket import serve_socket
from hotline.relay.sql_store import SqlStore
from hotline.relay.timers import TimerLoop
from hotline.relay.treehead import TreeHeadSigner
from hotline.relay.webclient import default_web_root, mount_web_client

log = logging.getLogger("hotline.relay")


class RelayContext:
    """Everything one relay app owns; filled in by the lifespan, emptied at shutdown."""

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self.device_limiter = TokenBucketLimiter(
            settings.rate_per_s, settings.rate_burst, settings.rate_max_tracked
        )
        self.address_limiter = TokenBucketLimiter(
            settings.address_rate_per_s, settings.address_rate_burst, settings.rate_max_tracked
        )
        self._service: RelayService | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._notifier: Notifier | None = None
        self.identity: RelayIdentity | None = None
        self.signer: TreeHeadSigner | None = None  # its Merkle tree answers audit proofs
        self.metrics = RelayMetrics()
        self.clock = RelayClock(adjustable=settings.test_clock)  # adjustable by tests only (ADR 0007)

    @property
    def service(self) -> RelayService:
        if self._service is None:
            raise RelayError(RelayErrorCode.UNAVAILABLE, "the relay is starting")
        return self._service

    async def start(self) -> None:
        s = self.settings
        self.identity = load_or_create_identity(s.data_dir)
        if self.identity.created:
            log.warning(
                "created the relay key and admin token; the admin token is in %s",
                self.identity.admin_token_path,
            )
        engine = create_engine(
            s.database_url(), pool_size=s.db_pool_size, busy_timeout_ms=s.sqlite_busy_timeout_ms
        )
        if s.auto_migrate:
            await migrate.upgrade(engine)
        store = SqlStore(
            engine, busy_timeout_ms=s.sqlite_busy_timeout_ms, group_commit_max=s.sqlite_group_commit_max
        )
        notifier: Notifier
        if engine.dialect.name == "postgresql":
            dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            notifier = PostgresNotifier(dsn)
        else:
            notifier = LocalNotifier()
        await notifier.start()
        self._notifier = notifier
        self.metrics.watch(
            engine,
            notifier,
            cap=s.metrics_queue_cap,
            timeout_s=s.metrics_query_timeout_s,
            cache_s=s.metrics_cache_s,
        )
        service = RelayService(
            store, self.identity, s, notifier, metrics=self.metrics, now_ms=self.clock.now_ms
        )
        signer = TreeHeadSigner(store, self.identity.signing_key, service.now_ms)
        await signer.start()
        self.signer = signer
        self._service = service
        self._tasks = [
            asyncio.create_task(signer.run(s.tree_head_interval_s), name="tree-heads"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
            asyncio.create_task(TimerLoop(service.semantics, s.timer_interval_s).run(), name="timers"),
        ]

    async def _housekeeping(self) -> None:
        service = self.service
        while True:
            await asyncio.sleep(self.settings.housekeeping_interval_s)
            now = service.now_ms()
            try:
                async with service.store.write() as tx:
                    await tx.prune_auth(now, now - self.settings.expired_token_memory_s * 1000)
            except Exception:
                log.exception("housekeeping failed; will retry")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._notifier is not None:
            await self._notifier.close()
            self._notifier = None
        if self._service is not None:
            await self._service.store.close()
            self._service = None


# --- dependencies -------------------------------------------------------------------------------------


def get_context(request: Request) -> RelayContext:
    ctx: RelayContext = request.app.state.relay
    return ctx


def get_service(request: Request) -> RelayService:
    return get_context(request).service


# The dependencies are coroutines on purpose: FastAPI runs a plain ``def`` dependency in a worker
# thread, a hop there and back on every request (docs/PERFORMANCE.md).
async def context_dependency(request: Request) -> RelayContext:
    return get_context(request)


async def service_dependency(request: Request) -> RelayService:
    return get_service(request)


ContextDep = Annotated[RelayContext, Depends(context_dependency)]
ServiceDep = Annotated[RelayService, Depends(service_dependency)]


def _bearer(request: Request) -> str:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RelayError(
            RelayErrorCode.UNAUTHORIZED,
            "an Authorization: Bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


async def require_device(request: Request, ctx: ContextDep) -> Principal:
    """The authenticated device, a member of the path's channel (401/403 otherwise), within its rate
    limit (429 otherwise). Runs before any request body is read."""
    who = await ctx.service.authenticate(_bearer(request))
    require_channel(who, request.path_params.get("channel", who.channel))
    retry = ctx.device_limiter.take(f"d{who.device.id}")
    if retry is not None:
        raise RelayError(
            RelayErrorCode.RATE_LIMITED,
            "too many requests from this device",
            headers={"Retry-After": retry_after_header(retry)},
        )
    return who


async def require_admin(request: Request, ctx: ContextDep) -> None:
    token = _bearer(request)
    identity = ctx.identity
    if identity is None or not constant_time_equal(token.encode(), identity.admin_token.encode()):
        raise RelayError(
            RelayErrorCode.UNAUTHORIZED, "not the admin token", headers={"WWW-Authenticate": "Bearer"}
        )


DeviceDep = Annotated[Principal, Depends(require_device)]
AdminDep = Annotated[None, Depends(require_admin)]
ChannelPath = Annotated[str, Path(pattern=CHANNEL_RE.pattern, max_length=64)]
NamePath = Annotated[str, Path(pattern=NAME_RE.pattern, max_length=32)]
MessageIdPath = Annotated[str, Path(pattern=UUID_RE.pattern, max_length=36)]


async def read_body(request: Request) -> bytes:
    return await request.body()


def _json(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status)


# --- routes -------------------------------------------------------------------------------------------


def build_router() -> APIRouter:
    r = APIRouter()

    @r.get("/healthz", tags=["service"])
    async def healthz() -> JSONResponse:
        return _json({"status": "ok"})

    @r.get("/metrics", tags=["service"], include_in_schema=False)
    async def metrics(ctx: ContextDep, request: Request) -> Response:
        peer = request.client.host if request.client else None
        authorize_scrape(peer, request.headers.get("authorization"), ctx.settings.metrics_token)
        return Response(await ctx.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    @r.get("/readyz", tags=["service"])
    async def readyz(ctx: ContextDep) -> JSONResponse:
        try:
            await ctx.service.store.ping()
        except RelayError:
            raise
        except Exception as exc:
            raise RelayError(RelayErrorCode.UNAVAILABLE, "the database does not answer") from exc
        return _json({"status": "ready"})

    @r.get("/v1/relay", tags=["service"])
    async def relay_info(svc: ServiceDep) -> JSONResponse:
        return _json(svc.relay_info())

    @r.get("/v1/audit/tree-head", tags=["audit"])
    async def tree_head(svc: ServiceDep) -> JSONResponse:
        return _json(await svc.latest_tree_head())

    # --- admin ---

    @r.post(
        "/v1/admin/channels",
        tags=["admin"],
        status_code=201,
        openapi_extra=bodies.openapi_body(bodies.CreateChannelBody),
    )
    async def create_channel(_: AdminDep, svc: ServiceDep, request: Request) -> JSONResponse:
        body = bodies.parse_body(
            bodies.CreateChannelBody, await read_body(request), svc.settings.max_request_bytes
        )
        out = await svc.create_channel(
            body.channel,
            body.title,
            body.suite,
            [MemberSpec(m.member, m.role) for m in body.members],
            body.invite_ttl_s,
            policy=body.policy,
        )
        return _json(out, 201)

    @r.get("/v1/admin/channels", tags=["admin"])
    async def list_channels(_: AdminDep, svc: ServiceDep) -> JSONResponse:
        return _json({"channels": await svc.list_channels()})

    @r.get("/v1/admin/channels/{channel}", tags=["admin"])
    async def get_channel(_: AdminDep, svc: ServiceDep, channel: ChannelPath) -> JSONResponse:
        return _json(await svc.get_channel(channel))

    @r.post(
        "/v1/admin/channels/{channel}/members",
        tags=["admin"],
        status_code=201,
        openapi_extra=bodies.openapi_body(bodies.AddMemberBody),
    )
    async def add_member(
        _: AdminDep, svc: ServiceDep, channel: ChannelPath, request: Request
    ) -> JSONResponse:
        body = bodies.parse_body(
            bodies.AddMemberBody, await read_body(request), svc.settings.max_request_bytes
        )
        return _json(
            await svc.add_member(channel, MemberSpec(body.member, body.role), body.invite_ttl_s), 201
        )

    @r.post(
        "/v1/admin/channels/{channel}/invites",
        tags=["admin"],
        status_code=201,
        openapi_extra=bodies.openapi_body(bodies.CreateInviteBody),
    )
    async def create_invite(
        _: AdminDep, svc: ServiceDep, channel: ChannelPath, request: Request
    ) -> JSONResponse:
        body = bodies.parse_body(
            bodies.CreateInviteBody, await read_body(request), svc.settings.max_request_bytes
        )
        return _json(await svc.create_invite(channel, body.member, body.ttl_s), 201)

    @r.post("/v1/admin/channels/{channel}/members/{member}/revoke", tags=["admin"])
    async def revoke_member(
        _: AdminDep, svc: ServiceDep, channel: ChannelPath, member: NamePath
    ) -> JSONResponse:
        return _json(await svc.revoke_member(channel, member))

    @r.post("/v1/admin/channels/{channel}/devices/{member}/{device}/revoke", tags=["admin"])
    async def admin_revoke_device(
        _: AdminDep, svc: ServiceDep, channel: ChannelPath, member: NamePath, device: NamePath
    ) -> JSONResponse:
        return _json(await svc.revoke_device(channel, member, device, by="admin"))

    @r.get("/v1/admin/audit", tags=["admin", "audit"])
    async def audit_entries(
        _: AdminDep,
        svc: ServiceDep,
        start: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> JSONResponse:
        return _json(await svc.audit_entries(start, limit))

    # --- enrollment and auth ---

    @r.get("/v1/invites/{code}", tags=["enrollment"])
    async def preview_invite(svc: ServiceDep, code: Annotated[str, Path(max_length=64)]) -> JSONResponse:
        return _json(await svc.preview_invite(code))

    @r.post(
        "/v1/enroll",
        tags=["enrollment"],
        status_code=201,
        openapi_extra=bodies.openapi_body(bodies.EnrollBody),
    )
    async def enroll(svc: ServiceDep, request: Request) -> JSONResponse:
        body = bodies.parse_body(bodies.EnrollBody, await read_body(request), svc.settings.max_request_bytes)
        return _json(await svc.enroll(body.code, body.device, body.signing_key, body.prekeys), 201)

    @r.post("/v1/auth/challenge", tags=["auth"], openapi_extra=bodies.openapi_body(bodies.ChallengeBody))
    async def challenge(svc: ServiceDep, request: Request) -> JSONResponse:
        body = bodies.parse_body(
            bodies.ChallengeBody, await read_body(request), svc.settings.max_request_bytes
        )
        return _json(await svc.challenge(body.channel, body.member, body.device))

    @r.post("/v1/auth/token", tags=["auth"], openapi_extra=bodies.openapi_body(bodies.TokenBody))
    async def token(svc: ServiceDep, request: Request) -> JSONResponse:
        body = bodies.parse_body(bodies.TokenBody, await read_body(request), svc.settings.max_request_bytes)
        return _json(await svc.token(body.channel, body.member, body.device, body.challenge, body.signature))

    # --- channel ---

    base = "/v1/channels/{channel}"

    @r.get(base + "/directory", tags=["channel"])
    async def directory(who: DeviceDep, svc: ServiceDep, channel: ChannelPath) -> JSONResponse:
        return _json(await svc.directory(who, channel))

    @r.post(base + "/prekeys", tags=["channel"], openapi_extra=bodies.openapi_body(bodies.PrekeysBody))
    async def prekeys(
        who: DeviceDep, svc: ServiceDep, channel: ChannelPath, request: Request
    ) -> JSONResponse:
        body = bodies.parse_body(bodies.PrekeysBody, await read_body(request), svc.settings.max_request_bytes)
        return _json(await svc.publish_prekeys(who, channel, body.prekeys))

    @r.post(base + "/devices/{member}/{device}/revoke", tags=["channel"])
    async def revoke_own_device(
        who: DeviceDep, svc: ServiceDep, channel: ChannelPath, member: NamePath, device: NamePath
    ) -> JSONResponse:
        return _json(await svc.revoke_own_device(who, channel, member, device))

    @r.post(
        base + "/envelopes",
        tags=["channel"],
        status_code=201,
        openapi_extra=bodies.openapi_body(bodies.ENVELOPE_SCHEMA),
    )
    async def send_envelope(
        who: DeviceDep, svc: ServiceDep, channel: ChannelPath, request: Request
    ) -> JSONResponse:
        obj = bodies.parse_json(await read_body(request), svc.settings.max_request_bytes)
        result = await svc.send_envelope(who, channel, obj)
        return _json(
            {
                "receipt": result.receipt.to_json(),
                "log_index": result.log_index,
                "duplicate": result.duplicate,
            },
            200 if result.duplicate else 201,
        )

    @r.get(base + "/envelopes/{message_id}", tags=["channel"])
    async def get_envelope(
        who: DeviceDep, svc: ServiceDep, channel: ChannelPath, message_id: MessageIdPath
    ) -> JSONResponse:
        return _json(await svc.get_envelope(who, channel, message_id))

    @r.post(
        base + "/receipts",
        tags=["channel"],
        status_code=201,
        openapi_extra=bodies.openapi_body(bodies.ReceiptBody),
    )
    async def post_receipt(
        who: DeviceDep, svc: ServiceDep, channel: ChannelPath, request: Request
    ) -> JSONResponse:
        body = bodies.parse_body(bodies.ReceiptBody, await read_body(request), svc.settings.max_request_bytes)
        result = await svc.post_receipt(who, channel, body.receipt)
        return _json(
            {"log_index": result.log_index, "duplicate": result.duplicate}, 200 if result.duplicate else 201
        )

    @r.get(base + "/inbox", tags=["channel"])
    async def inbox(
        who: DeviceDep, svc: ServiceDep, channel: ChannelPath, limit: Annotated[int, Query(ge=1)] = 100
    ) -> JSONResponse:
        return _json({"items": await svc.inbox(who, channel, limit)})

    @r.post(base + "/inbox/ack", tags=["channel"], openapi_extra=bodies.openapi_body(bodies.AckBody))
    async def ack(who: DeviceDep, svc: ServiceDep, channel: ChannelPath, request: Request) -> JSONResponse:
        body = bodies.parse_body(bodies.AckBody, await read_body(request), svc.settings.max_request_bytes)
        return _json({"acked": await svc.ack(who, channel, list(body.ids))})

    @r.get(base + "/messages/{message_id}/receipts", tags=["channel"])
    async def message_receipts(
        who: DeviceDep, svc: ServiceDep, channel: ChannelPath, message_id: MessageIdPath
    ) -> JSONResponse:
        return _json(await svc.message_receipts(who, channel, message_id))

    @r.websocket(base + "/socket")
    async def socket(websocket: WebSocket, channel: str) -> None:
        ctx: RelayContext = websocket.app.state.relay
        await serve_socket(websocket, channel, ctx.service, ctx.settings, ctx.device_limiter)

    return r


# --- errors -------------------------------------------------------------------------------------------


def _error_response(error: RelayError) -> JSONResponse:
    return JSONResponse(error.to_json(), status_code=error.status, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    async def relay_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RelayError)
        return _error_response(exc)

    async def protocol_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProtocolError)
        return _error_response(from_protocol(exc))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return _error_response(
            RelayError(RelayErrorCode.MALFORMED, f"{where}: {first.get('msg', 'invalid')}")
        )

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            error = RelayError(RelayErrorCode.NOT_FOUND, "no such endpoint")
        elif exc.status_code == 405:
            error = RelayError(
                RelayErrorCode.METHOD_NOT_ALLOWED,
                "method not allowed here",
                headers=dict(exc.headers) if exc.headers else None,
            )
        elif exc.status_code == 413:
            error = RelayError(RelayErrorCode.TOO_LARGE, "request body is too large")
        elif 400 <= exc.status_code < 500:
            error = RelayError(RelayErrorCode.MALFORMED, str(exc.detail), status=exc.status_code)
        else:
            error = RelayError(RelayErrorCode.INTERNAL, "internal error", status=exc.status_code)
        return _error_response(error)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, IntegrityError):
            # Two requests raced for the same unique row; the loser is told so, like any conflict.
            return _error_response(RelayError(RelayErrorCode.CONFLICT, "conflicting concurrent request"))
        log.error("database error on %s: %s", redact_path(request.url.path), type(exc).__name__)
        return _error_response(RelayError(RelayErrorCode.UNAVAILABLE, "the database is unavailable"))

    app.add_exception_handler(RelayError, relay_error)
    app.add_exception_handler(ProtocolError, protocol_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for exc_type in (OperationalError, SAInterfaceError, DBAPIError, ConnectionError, TimeoutError):
        app.add_exception_handler(exc_type, database_error)


def create_app(settings: RelaySettings | None = None) -> FastAPI:
    """Build a relay app; nothing is opened until the app's lifespan starts."""
    settings = settings or RelaySettings()
    ctx = RelayContext(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ctx.start()
        try:
            yield
        finally:
            await ctx.stop()

    app = FastAPI(
        title="hotline relay",
        version="1",
        summary="Stores and forwards signed, encrypted envelopes and receipts; see docs/API.md.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.relay = ctx
    install_error_handlers(app)
    app.add_middleware(
        RequestGuardMiddleware, max_body_bytes=settings.max_request_bytes, limiter=ctx.address_limiter
    )
    app.add_middleware(ResponseMiddleware, tls=settings.tls_cert is not None)
    app.add_middleware(ResponseCountMiddleware, metrics=ctx.metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: every log line of the request carries its id
    app.include_router(build_router())
    app.include_router(
        build_semantics_router(
            get_context=get_context, require_device=require_device, require_admin=require_admin
        )
    )
    audit_router = build_audit_router(
        get_context=get_context, require_device=require_device, require_admin=require_admin
    )
    app.include_router(audit_router)
    web_root = settings.web_root or default_web_root()
    if settings.serve_web_client and web_root is not None:
        mount_web_client(app, web_root)
    return app
