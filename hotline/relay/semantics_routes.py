"""HTTP routes of hotline semantics (docs/API.md, "Hotline semantics"): parse, authorize, delegate.

Ladders, withdrawals, resends, link tests and link status, check-ins, escalations, crisis acts and the
channel policy; and, for tests only, the adjustable clock and an on-demand timer sweep. ``create_app``
includes :func:`build_semantics_router` with the app's own authentication dependencies. (No ``from
__future__ import annotations``: the routes are defined inside the builder and FastAPI must see their
``Annotated`` dependencies as objects.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from hotline.protocol.model import CHANNEL_RE, UUID_RE
from hotline.relay import bodies
from hotline.relay.access import Principal
from hotline.relay.clock import RelayClock
from hotline.relay.errors import not_found
from hotline.relay.semantics import Purpose, SendPurpose
from hotline.relay.service import RelayService
from hotline.relay.settings import RelaySettings

MAX_CLOCK_STEP_MS = 10 * 365 * 24 * 3600 * 1000


class SemanticsContext(Protocol):
    """What the routes need from the app's context (``hotline.relay.app.RelayContext``)."""

    settings: RelaySettings
    clock: RelayClock

    @property
    def service(self) -> RelayService: ...


class ActBody(bodies.Body):
    act: Any


class ClockBody(bodies.Body):
    advance_ms: Annotated[int, Field(ge=0, le=MAX_CLOCK_STEP_MS)]


def build_semantics_router(
    *,
    get_context: Callable[[Request], SemanticsContext],
    require_device: Callable[..., Awaitable[Principal]],
    require_admin: Callable[..., Awaitable[None]],
) -> APIRouter:
    def service(request: Request) -> RelayService:
        return get_context(request).service

    Svc = Annotated[RelayService, Depends(service)]
    Device = Annotated[Principal, Depends(require_device)]
    Admin = Annotated[None, Depends(require_admin)]
    Channel = Annotated[str, Path(pattern=CHANNEL_RE.pattern, max_length=64)]
    MessageId = Annotated[str, Path(pattern=UUID_RE.pattern, max_length=36)]

    def ok(body: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status)

    async def json_body(svc: RelayService, request: Request) -> dict[str, Any]:
        return bodies.parse_json(await request.body(), svc.settings.max_request_bytes)

    async def act_of(svc: RelayService, request: Request) -> Any:
        return bodies.parse_body(ActBody, await request.body(), svc.settings.max_request_bytes).act

    async def send(
        who: Principal, svc: RelayService, channel: str, request: Request, purpose: SendPurpose
    ) -> JSONResponse:
        result = await svc.send_envelope(who, channel, await json_body(svc, request), purpose=purpose)
        return ok(
            {
                "receipt": result.receipt.to_json(),
                "log_index": result.log_index,
                "duplicate": result.duplicate,
            },
            200 if result.duplicate else 201,
        )

    r = APIRouter(tags=["semantics"])
    base = "/v1/channels/{channel}"

    # --- channel policy and crisis mode ---

    @r.get(base + "/policy")
    async def policy(who: Device, svc: Svc, channel: Channel) -> JSONResponse:
        return ok(await svc.semantics.policy_view(channel))

    @r.put(base + "/policy", openapi_extra=bodies.openapi_body({"type": "object"}))
    async def set_policy(who: Device, svc: Svc, channel: Channel, request: Request) -> JSONResponse:
        return ok(await svc.semantics.set_policy(who, channel, await json_body(svc, request)))

    @r.get(base + "/crisis")
    async def crisis(who: Device, svc: Svc, channel: Channel) -> JSONResponse:
        return ok(await svc.semantics.crisis_view(channel))

    @r.post(base + "/crisis", status_code=201, openapi_extra=bodies.openapi_body(ActBody))
    async def crisis_act(who: Device, svc: Svc, channel: Channel, request: Request) -> JSONResponse:
        out = await svc.semantics.post_crisis_act(who, channel, await act_of(svc, request))
        return ok(out, 200 if out["duplicate"] else 201)

    # --- messages: ladder, withdrawal, resends, link tests ---

    @r.get(base + "/messages/{message_id}/ladder")
    async def ladder(who: Device, svc: Svc, channel: Channel, message_id: MessageId) -> JSONResponse:
        return ok(await svc.semantics.ladder(who, channel, message_id))

    @r.post(base + "/messages/{message_id}/withdraw", openapi_extra=bodies.openapi_body(ActBody))
    async def withdraw(
        who: Device, svc: Svc, channel: Channel, message_id: MessageId, request: Request
    ) -> JSONResponse:
        return ok(await svc.semantics.withdraw(who, channel, message_id, await act_of(svc, request)))

    @r.post(
        base + "/messages/{message_id}/resends",
        status_code=201,
        openapi_extra=bodies.openapi_body(bodies.ENVELOPE_SCHEMA),
    )
    async def resend(
        who: Device, svc: Svc, channel: Channel, message_id: MessageId, request: Request
    ) -> JSONResponse:
        return await send(who, svc, channel, request, SendPurpose(Purpose.RESEND, resend_of=message_id))

    @r.post(base + "/link-tests", status_code=201, openapi_extra=bodies.openapi_body(bodies.ENVELOPE_SCHEMA))
    async def link_test(who: Device, svc: Svc, channel: Channel, request: Request) -> JSONResponse:
        return await send(who, svc, channel, request, SendPurpose(Purpose.LINK_TEST))

    @r.get(base + "/link")
    async def link(who: Device, svc: Svc, channel: Channel) -> JSONResponse:
        return ok(await svc.semantics.link_view(who, channel))

    # --- check-ins and escalations ---

    @r.get(base + "/checkins")
    async def checkins(
        who: Device, svc: Svc, channel: Channel, limit: Annotated[int, Query(ge=1, le=200)] = 20
    ) -> JSONResponse:
        return ok(await svc.semantics.checkins_view(who, channel, limit))

    @r.post(base + "/checkins/answer", status_code=201, openapi_extra=bodies.openapi_body(ActBody))
    async def answer_checkin(who: Device, svc: Svc, channel: Channel, request: Request) -> JSONResponse:
        out = await svc.semantics.answer_checkin(who, channel, await act_of(svc, request))
        return ok(out, 200 if out["duplicate"] else 201)

    @r.get(base + "/escalations")
    async def escalations(
        who: Device,
        svc: Svc,
        channel: Channel,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> JSONResponse:
        return ok(await svc.semantics.escalations_view(who, channel, after, limit))

    # --- admin ---

    @r.get("/v1/admin/channels/{channel}/policy", tags=["admin"])
    async def admin_policy(_: Admin, svc: Svc, channel: Channel) -> JSONResponse:
        return ok(await svc.semantics.policy_view(channel))

    @r.put(
        "/v1/admin/channels/{channel}/policy",
        tags=["admin"],
        openapi_extra=bodies.openapi_body({"type": "object"}),
    )
    async def admin_set_policy(_: Admin, svc: Svc, channel: Channel, request: Request) -> JSONResponse:
        return ok(await svc.semantics.set_policy(None, channel, await json_body(svc, request)))

    @r.get("/v1/admin/channels/{channel}/crisis", tags=["admin"])
    async def admin_crisis(_: Admin, svc: Svc, channel: Channel) -> JSONResponse:
        return ok(await svc.semantics.crisis_view(channel))

    # --- tests only: answer 404 unless the relay runs with test_clock ---

    def test_context(request: Request) -> SemanticsContext:
        ctx = get_context(request)
        if not ctx.settings.test_clock:
            raise not_found("no such endpoint")
        return ctx

    TestCtx = Annotated[SemanticsContext, Depends(test_context)]

    @r.get("/v1/admin/test/clock", include_in_schema=False)
    async def get_clock(_: Admin, ctx: TestCtx) -> JSONResponse:
        return ok({"now_ms": ctx.clock.now_ms(), "offset_ms": ctx.clock.offset_ms})

    @r.post("/v1/admin/test/clock", include_in_schema=False)
    async def move_clock(_: Admin, ctx: TestCtx, request: Request) -> JSONResponse:
        body = bodies.parse_body(ClockBody, await request.body(), ctx.settings.max_request_bytes)
        ctx.clock.advance(body.advance_ms)
        return ok({"now_ms": ctx.clock.now_ms(), "offset_ms": ctx.clock.offset_ms})

    @r.post("/v1/admin/test/sweep", include_in_schema=False)
    async def sweep(_: Admin, ctx: TestCtx) -> JSONResponse:
        return ok({"fired": await ctx.service.semantics.sweep(), "now_ms": ctx.clock.now_ms()})

    return r
