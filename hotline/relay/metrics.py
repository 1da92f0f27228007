"""Prometheus metrics of one relay process, served at ``GET /metrics`` in the text exposition format.

Two kinds of series (names and PromQL in docs/OPERATIONS.md, "What to monitor"):

* **Counted by this process** — envelopes accepted, receipts logged, delivery and acknowledgement
  latencies (histograms by precedence), escalations, HTTP responses, open sockets. With several
  replicas, ``sum`` them.
* **Read from the shared database when scraped** — queue depths, the oldest pending item, the audit
  log's size and the newest signed tree head. Every replica reports the same values: take ``max``.
  The read is bounded (at most ``metrics_queue_cap`` pending items counted, a statement time limit)
  and cached for ``metrics_cache_s``, so scrapes cannot load the database.

Latencies come from the relay's own stored timestamps: ``accepted_at_ms`` of the envelope, the
``received_at_ms`` of the delivered receipt, the time the acknowledged receipt is stored. A device's
clock is never trusted here. Labels come from small fixed sets (precedence, receipt kind, item kind,
status code, an escalation reason checked against a pattern): no names, ids or content.

There is no global registry: :class:`RelayMetrics` belongs to one app, so tests can build many.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.protocol.crypto import constant_time_equal
from hotline.protocol.model import Precedence
from hotline.relay import schema as t
from hotline.relay.errors import RelayError, RelayErrorCode

log = logging.getLogger(__name__)

__all__ = ["PROMETHEUS_CONTENT_TYPE", "RelayMetrics", "authorize_scrape"]

# Seconds. The precedence deadlines (FLASH 10 min, IMMEDIATE 30 min, PRIORITY 3 h, ROUTINE 6 h) are
# bucket bounds, so "share of FLASH deliveries within their deadline" is one bucket over the count.
LATENCY_BUCKETS_S = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    10800.0,
    21600.0,
    43200.0,
)
PRECEDENCES = tuple(p.value for p in Precedence)
_BY_RANK = {p.rank: p.value for p in Precedence}
ITEM_KINDS = ("envelope", "receipt", "directory")
RECEIPT_KINDS = ("delivered", "acknowledged", "rejected")
_REASON = re.compile(r"[a-z][a-z0-9_]{0,31}")


class SocketCounter(Protocol):
    @property
    def total(self) -> int: ...


@dataclass(frozen=True)
class DatabaseSnapshot:
    """What the gauges show of the shared database, read in one transaction."""

    depths: dict[tuple[str, str], int] = field(default_factory=dict)  # (item kind, precedence) -> n
    oldest_ms: dict[str, int] = field(default_factory=dict)  # precedence -> at_ms of oldest pending
    capped: bool = False
    log_size: int = 0
    tree_head_size: int | None = None
    tree_head_at_ms: int | None = None


async def read_snapshot(engine: AsyncEngine, *, cap: int, timeout_s: float) -> DatabaseSnapshot:
    """One bounded, read-only look at queue depths and the audit log."""
    i = t.inbox_items
    pending = select(i.c.kind, i.c.rank, i.c.at_ms).where(i.c.acked.is_(False)).limit(cap).subquery()
    depth_stmt = select(
        pending.c.kind, pending.c.rank, func.count().label("n"), func.min(pending.c.at_ms).label("oldest")
    ).group_by(pending.c.kind, pending.c.rank)
    head_stmt = (
        select(t.tree_heads.c.size, t.tree_heads.c.at_ms).order_by(t.tree_heads.c.size.desc()).limit(1)
    )
    async with engine.connect() as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}"))
        rows = (await conn.execute(depth_stmt)).mappings().all()
        log_size = (await conn.execute(select(t.log_state.c.size))).scalar_one_or_none()
        head = (await conn.execute(head_stmt)).mappings().first()
    depths: dict[tuple[str, str], int] = {}
    oldest: dict[str, int] = {}
    counted = 0
    for row in rows:
        precedence = _BY_RANK.get(int(row["rank"]), "unknown")
        key = (str(row["kind"]), precedence)
        depths[key] = depths.get(key, 0) + int(row["n"])
        counted += int(row["n"])
        at = int(row["oldest"])
        oldest[precedence] = min(oldest.get(precedence, at), at)
    return DatabaseSnapshot(
        depths=depths,
        oldest_ms=oldest,
        capped=counted >= cap,
        log_size=int(log_size or 0),
        tree_head_size=None if head is None else int(head["size"]),
        tree_head_at_ms=None if head is None else int(head["at_ms"]),
    )


class RelayMetrics:
    """The metrics of one relay app: counters the service layer bumps, gauges filled on scrape."""

    def __init__(self, *, wall_clock_ms: Callable[[], int] | None = None) -> None:
        self._wall_clock_ms = wall_clock_ms or (lambda: time.time_ns() // 1_000_000)
        # No *_created series: Prometheus does not need them, and they would double the text.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.envelopes_accepted = Counter(
            "hotline_envelopes_accepted",
            "Envelopes accepted and logged by this process (repeats of an accepted one not counted)",
            ["precedence"],
            registry=r,
        )
        self.envelopes_delivered = Counter(
            "hotline_envelopes_delivered",
            "Delivered receipts logged by this process: one per recipient device that opened an envelope",
            ["precedence"],
            registry=r,
        )
        self.receipts = Counter(
            "hotline_receipts", "Device receipts logged by this process", ["kind", "precedence"], registry=r
        )
        self.delivery_latency = Histogram(
            "hotline_delivery_latency_seconds",
            "Relay accepted an envelope -> a recipient device's delivered receipt was stored",
            ["precedence"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.acknowledgement_latency = Histogram(
            "hotline_acknowledgement_latency_seconds",
            "A device's delivered receipt was stored -> its acknowledged receipt was stored",
            ["precedence"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.escalations = Counter(
            "hotline_escalations",
            "Escalations raised by this process (missed deadlines, missed link tests, ...)",
            ["precedence", "reason"],
            registry=r,
        )
        self.http_responses = Counter(
            "hotline_http_responses", "HTTP responses of this process by status code", ["status"], registry=r
        )
        self.open_sockets = Gauge("hotline_open_sockets", "Live device sockets of this process", registry=r)
        self.queue_depth = Gauge(
            "hotline_queue_depth",
            "Pending (unacknowledged) inbox items in the database, by item kind and precedence",
            ["kind", "precedence"],
            registry=r,
        )
        self.queue_oldest_age = Gauge(
            "hotline_queue_oldest_pending_seconds",
            "Age of the oldest pending inbox item in the database, by precedence (0: none pending)",
            ["precedence"],
            registry=r,
        )
        self.queue_capped = Gauge(
            "hotline_queue_depth_capped",
            "1 when the depth count stopped at metrics_queue_cap (the true depth is larger)",
            registry=r,
        )
        self.audit_log_size = Gauge("hotline_audit_log_size", "Entries in the audit log", registry=r)
        self.tree_head_size = Gauge(
            "hotline_tree_head_size", "Size of the newest signed tree head", registry=r
        )
        self.tree_head_age = Gauge(
            "hotline_tree_head_age_seconds", "Age of the newest signed tree head", registry=r
        )
        self.database_up = Gauge(
            "hotline_database_up", "1 if the last read of the database for these gauges worked", registry=r
        )
        for p in PRECEDENCES:  # every series exists from the start, so rate() and alerts see zeros
            self.envelopes_accepted.labels(p)
            self.envelopes_delivered.labels(p)
            self.delivery_latency.labels(p)
            self.acknowledgement_latency.labels(p)
            for kind in RECEIPT_KINDS:
                self.receipts.labels(kind, p)
        self._engine: AsyncEngine | None = None
        self._sockets: SocketCounter | None = None
        self._cap = 100_000
        self._timeout_s = 2.0
        self._cache_s = 5.0
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    def watch(
        self,
        engine: AsyncEngine,
        sockets: SocketCounter,
        *,
        cap: int,
        timeout_s: float,
        cache_s: float,
    ) -> None:
        """Where the gauges come from: the relay's database and its socket notifier."""
        self._engine = engine
        self._sockets = sockets
        self._cap, self._timeout_s, self._cache_s = cap, timeout_s, cache_s
        self._read_at = None

    # --- what the service layer counts --------------------------------------------------------------

    def envelope_accepted(self, precedence: str) -> None:
        self.envelopes_accepted.labels(precedence).inc()

    def receipt_logged(
        self,
        kind: str,
        precedence: str,
        *,
        at_ms: int,
        accepted_at_ms: int,
        delivered_at_ms: int | None = None,
    ) -> None:
        """A device receipt was stored at ``at_ms`` (relay clock) about an envelope of ``precedence``."""
        self.receipts.labels(kind, precedence).inc()
        if kind == "delivered":
            self.envelopes_delivered.labels(precedence).inc()
            self.delivery_latency.labels(precedence).observe(max(0, at_ms - accepted_at_ms) / 1000)
        elif kind == "acknowledged" and delivered_at_ms is not None:
            self.acknowledgement_latency.labels(precedence).observe(max(0, at_ms - delivered_at_ms) / 1000)

    def count_escalation(self, precedence: str | Precedence, reason: str) -> None:
        """Count one escalation (for the deadline and link-test timers).

        ``reason`` is a short snake_case word from a fixed set the caller owns (``deadline_missed``,
        ``link_test_missed``, …): it becomes a label, so it must never carry names or content.
        """
        value = Precedence(precedence).value
        if not _REASON.fullmatch(reason):
            raise ValueError("an escalation reason is a short snake_case word")
        self.escalations.labels(value, reason).inc()

    def http_response(self, status: int) -> None:
        self.http_responses.labels(str(status)).inc()

    # --- scrape -------------------------------------------------------------------------------------

    async def _refresh(self) -> None:
        if self._sockets is not None:
            self.open_sockets.set(self._sockets.total)
        engine = self._engine
        if engine is None:
            return
        async with self._lock:  # concurrent scrapes share one read
            now = time.monotonic()
            if self._read_at is not None and now - self._read_at < self._cache_s:
                return
            try:
                snap = await asyncio.wait_for(
                    read_snapshot(engine, cap=self._cap, timeout_s=self._timeout_s), self._timeout_s * 2
                )
            except Exception as exc:
                log.warning("metrics: cannot read the database (%s)", type(exc).__name__)
                self.database_up.set(0)
                self._read_at = now
                return
            self._read_at = now
        self._show(snap)

    def _show(self, snap: DatabaseSnapshot) -> None:
        wall = self._wall_clock_ms()
        self.database_up.set(1)
        for kind in ITEM_KINDS:
            for p in PRECEDENCES:
                if kind == "directory" and p != Precedence.FLASH.value:
                    continue  # directory items always travel at FLASH rank
                self.queue_depth.labels(kind, p).set(snap.depths.get((kind, p), 0))
        for p in PRECEDENCES:
            oldest = snap.oldest_ms.get(p)
            self.queue_oldest_age.labels(p).set(0 if oldest is None else max(0, wall - oldest) / 1000)
        self.queue_capped.set(1 if snap.capped else 0)
        self.audit_log_size.set(snap.log_size)
        if snap.tree_head_size is not None and snap.tree_head_at_ms is not None:
            self.tree_head_size.set(snap.tree_head_size)
            self.tree_head_age.set(max(0, wall - snap.tree_head_at_ms) / 1000)

    async def render(self) -> bytes:
        """The exposition text, gauges refreshed first (from cache when recent)."""
        await self._refresh()
        return generate_latest(self.registry)


def authorize_scrape(peer: str | None, authorization: str | None, token: SecretStr | None) -> None:
    """Allow a scrape, or raise: with a token configured, a matching bearer token is required (401);
    without one, only loopback peers may scrape (403). The peer is the TCP peer: proxy headers are
    never trusted, and the shipped reverse-proxy configs refuse ``/metrics`` from outside."""
    if token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not constant_time_equal(given.strip().encode(), expected):
            raise RelayError(
                RelayErrorCode.UNAUTHORIZED,
                "metrics need the metrics bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return
    try:
        loopback = peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise RelayError(
            RelayErrorCode.FORBIDDEN, "metrics are served to loopback only unless metrics_token is set"
        )


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ResponseCountMiddleware:
    """Pure ASGI: counts every HTTP response by status code, refusals by outer middleware included."""

    def __init__(self, app: ASGIApp, *, metrics: RelayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.http_response(int(message["status"]))
            await send(message)

        await self.app(scope, receive, counting_send)
