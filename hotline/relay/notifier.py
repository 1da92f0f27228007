"""Wakes live sockets when items are queued for their device, or closes them when it is revoked.

The durable queue is the database; a notification only says "look again", so a spurious wake-up
costs a query, never a message, and a lost one costs latency: sockets also look again every
``socket_poll_interval_s``. :class:`LocalNotifier` serves one process. :class:`PostgresNotifier`
serves several replicas on one PostgreSQL database: it wakes local sockets at once and tells the other
replicas through ``LISTEN``/``NOTIFY`` on one dedicated connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any, Protocol

log = logging.getLogger(__name__)

PG_CHANNEL = "hotline_inbox"
_MAX_PAYLOAD = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more


class Subscription:
    """One live socket's view: ``wake`` is set when there may be something new."""

    def __init__(self, device_id: int, owner: LocalNotifier) -> None:
        self.device_id = device_id
        self.wake = asyncio.Event()
        self.revoked = False
        self._owner = owner

    def close(self) -> None:
        self._owner._drop(self)


class Notifier(Protocol):
    def subscribe(self, device_id: int) -> Subscription: ...
    def count(self, device_id: int) -> int: ...
    @property
    def total(self) -> int: ...
    async def publish(self, device_ids: Iterable[int]) -> None: ...
    async def revoke(self, device_ids: Iterable[int]) -> None: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...


class LocalNotifier:
    """In-process notifier: a set of subscriptions per device id."""

    def __init__(self) -> None:
        self._subs: dict[int, set[Subscription]] = {}
        self._total = 0

    def subscribe(self, device_id: int) -> Subscription:
        sub = Subscription(device_id, self)
        self._subs.setdefault(device_id, set()).add(sub)
        self._total += 1
        return sub

    def _drop(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.device_id)
        if subs and sub in subs:
            subs.discard(sub)
            self._total -= 1
            if not subs:
                del self._subs[sub.device_id]

    def count(self, device_id: int) -> int:
        return len(self._subs.get(device_id, ()))

    @property
    def total(self) -> int:
        return self._total

    def wake(self, device_ids: Iterable[int]) -> None:
        for device_id in set(device_ids):
            for sub in self._subs.get(device_id, ()):
                sub.wake.set()

    def wake_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.wake.set()

    def mark_revoked(self, device_ids: Iterable[int]) -> None:
        for device_id in set(device_ids):
            for sub in self._subs.get(device_id, ()):
                sub.revoked = True
                sub.wake.set()

    async def publish(self, device_ids: Iterable[int]) -> None:
        self.wake(device_ids)

    async def revoke(self, device_ids: Iterable[int]) -> None:
        self.mark_revoked(device_ids)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _payloads(kind: str, device_ids: Iterable[int]) -> list[str]:
    """``"w:1,2,3"`` (wake) or ``"r:4"`` (revoked), split to fit a NOTIFY payload."""
    out: list[str] = []
    current: list[str] = []
    size = 2
    for device_id in sorted(set(device_ids)):
        text = str(device_id)
        if current and size + len(text) + 1 > _MAX_PAYLOAD:
            out.append(f"{kind}:" + ",".join(current))
            current, size = [], 2
        current.append(text)
        size += len(text) + 1
    if current:
        out.append(f"{kind}:" + ",".join(current))
    return out


class PostgresNotifier(LocalNotifier):
    """A :class:`LocalNotifier` that also relays wake-ups to other replicas with LISTEN/NOTIFY.

    One asyncpg connection listens and sends. If it drops, the notifier reconnects in the background
    and wakes every local socket once, since notifications sent meanwhile are lost.
    """

    def __init__(self, dsn: str, reconnect_s: float = 1.0) -> None:
        super().__init__()
        self._dsn = dsn
        self._reconnect_s = reconnect_s
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._keep_connected(), name="pg-notifier")

    async def _connect(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(self._dsn)
        conn.add_termination_listener(lambda _conn: self._lost.set())
        await conn.add_listener(PG_CHANNEL, self._on_notify)
        self._conn = conn

    async def _keep_connected(self) -> None:
        while True:
            await self._lost.wait()
            self._lost.clear()
            self._conn = None
            while self._conn is None:
                try:
                    await self._connect()
                except Exception:
                    log.warning("notifier cannot reach PostgreSQL; retrying")
                    await asyncio.sleep(self._reconnect_s)
            self.wake_all()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if pid == conn.get_server_pid():
            return  # our own NOTIFY: local sockets were woken already
        kind, _, ids = payload.partition(":")
        try:
            device_ids = [int(x) for x in ids.split(",") if x]
        except ValueError:
            return
        if kind == "r":
            self.mark_revoked(device_ids)
        else:
            self.wake(device_ids)

    async def _notify(self, kind: str, device_ids: Iterable[int]) -> None:
        conn = self._conn
        if conn is None:
            return  # other replicas' sockets will poll; nothing else is lost
        try:
            async with self._lock:
                for payload in _payloads(kind, device_ids):
                    await conn.execute("SELECT pg_notify($1, $2)", PG_CHANNEL, payload)
        except Exception:
            log.warning("could not notify other replicas; their sockets will poll")

    async def publish(self, device_ids: Iterable[int]) -> None:
        ids = list(device_ids)
        self.wake(ids)
        await self._notify("w", ids)

    async def revoke(self, device_ids: Iterable[int]) -> None:
        ids = list(device_ids)
        self.mark_revoked(ids)
        await self._notify("r", ids)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
