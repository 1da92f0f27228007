"""HTTP routes of the audit API (docs/API.md, "Audit"): parse, authorize, delegate to AuditService.

``create_app`` includes :func:`build_audit_router` and hands it the app's own authentication
dependencies, so device tokens, the admin token and rate limits work exactly as on every other route.
(No ``from __future__ import annotations`` here: the routes are defined inside the builder, and FastAPI
must see their ``Annotated`` dependencies as objects, not as names to look up in this module.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from hotline.protocol.model import CHANNEL_RE, UUID_RE
from hotline.relay.access import Principal
from hotline.relay.audit_service import MAX_AUDIT_PAGE, AuditReader, AuditService
from hotline.relay.errors import RelayError, RelayErrorCode
from hotline.relay.service import RelayService
from hotline.relay.treehead import TreeHeadSigner


class AuditContext(Protocol):
    """What the routes need from the app's context (``hotline.relay.app.RelayContext``)."""

    signer: TreeHeadSigner | None

    @property
    def service(self) -> RelayService: ...


def build_audit_router(
    *,
    get_context: Callable[[Request], AuditContext],
    require_device: Callable[..., Awaitable[Principal]],
    require_admin: Callable[..., Awaitable[None]],
) -> APIRouter:
    async def audit_service(request: Request) -> AuditService:  # async: no worker-thread hop
        ctx = get_context(request)
        if ctx.signer is None:
            raise RelayError(RelayErrorCode.UNAVAILABLE, "the relay is starting")
        return AuditService(ctx.service.store, ctx.signer)

    Svc = Annotated[AuditService, Depends(audit_service)]
    Device = Annotated[Principal, Depends(require_device)]
    Admin = Annotated[None, Depends(require_admin)]
    Channel = Annotated[str, Path(pattern=CHANNEL_RE.pattern, max_length=64)]
    Size = Annotated[int | None, Query(ge=0, le=2**53 - 1)]
    Index = Annotated[int | None, Query(ge=0, le=2**53 - 1)]
    MessageId = Annotated[str | None, Query(pattern=UUID_RE.pattern, max_length=36)]
    ReceiptHash = Annotated[str | None, Query(max_length=64)]
    Start = Annotated[int, Query(ge=0, le=2**53 - 1)]
    Limit = Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)]

    def ok(body: Any) -> JSONResponse:
        return JSONResponse(body)

    r = APIRouter(tags=["audit"])

    # --- public ---

    @r.get("/v1/audit/tree-heads")
    async def tree_heads(svc: Svc, start_size: Start = 0, limit: Limit = 100) -> JSONResponse:
        return ok(await svc.tree_heads(start_size, limit))

    @r.get("/v1/audit/tree-heads/{size}")
    async def tree_head_at(svc: Svc, size: Annotated[int, Path(ge=0, le=2**53 - 1)]) -> JSONResponse:
        return ok(await svc.tree_head_at(size))

    # --- devices ---

    base = "/v1/channels/{channel}/audit"

    @r.get(base + "/consistency")
    async def consistency(
        who: Device, svc: Svc, channel: Channel, old_size: Start, new_size: Size = None
    ) -> JSONResponse:
        return ok(await svc.consistency(old_size, new_size))

    @r.get(base + "/inclusion")
    async def inclusion(
        who: Device,
        svc: Svc,
        channel: Channel,
        index: Index = None,
        message_id: MessageId = None,
        receipt_hash: ReceiptHash = None,
        size: Size = None,
    ) -> JSONResponse:
        return ok(
            await svc.inclusion(
                AuditReader(who),
                index=index,
                message_id=message_id,
                receipt_hash=receipt_hash,
                channel=None,
                size=size,
            )
        )

    @r.get(base + "/entries")
    async def entries(
        who: Device, svc: Svc, channel: Channel, start: Start = 0, limit: Limit = 100
    ) -> JSONResponse:
        return ok(await svc.entries(AuditReader(who), start, limit, None))

    # --- admin ---

    @r.get("/v1/admin/audit/consistency", tags=["admin"])
    async def admin_consistency(_: Admin, svc: Svc, old_size: Start, new_size: Size = None) -> JSONResponse:
        return ok(await svc.consistency(old_size, new_size))

    @r.get("/v1/admin/audit/inclusion", tags=["admin"])
    async def admin_inclusion(
        _: Admin,
        svc: Svc,
        index: Index = None,
        message_id: MessageId = None,
        receipt_hash: ReceiptHash = None,
        channel: Annotated[str | None, Query(pattern=CHANNEL_RE.pattern, max_length=64)] = None,
        size: Size = None,
    ) -> JSONResponse:
        return ok(
            await svc.inclusion(
                AuditReader(None),
                index=index,
                message_id=message_id,
                receipt_hash=receipt_hash,
                channel=channel,
                size=size,
            )
        )

    @r.get("/v1/admin/audit/entries", tags=["admin"])
    async def admin_entries(
        _: Admin,
        svc: Svc,
        start: Start = 0,
        limit: Limit = 100,
        channel: Annotated[str | None, Query(pattern=CHANNEL_RE.pattern, max_length=64)] = None,
    ) -> JSONResponse:
        return ok(await svc.entries(AuditReader(None), start, limit, channel))

    return r
