"""Idle WebSockets: how many a server holds, and what each costs it in memory and CPU.

The server's resident memory is read from ``/proc/<pid>/status`` before the sockets open and after
they have all settled; the difference divided by the sockets held is the memory per connection. While
they are held the server's CPU use is sampled (keep-alive pings, timers), and a sample of sockets is
pinged to show they are alive and answered promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection

from hotline.bench.procs import ServerProcess
from hotline.bench.stats import Latency


@dataclass(frozen=True)
class IdleResult:
    requested: int
    held: int
    failures: int
    first_error: str | None
    open_s: float
    rss_before: int | None
    rss_held: int | None
    bytes_per_socket: float | None
    server_cpu_open_s: float | None
    server_cpu_idle_pct: float | None
    ping: Latency

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["ping"] = self.ping.to_json()
        return out


async def hold_idle_sockets(
    open_one: Callable[[int], Awaitable[ClientConnection]],
    count: int,
    server: ServerProcess,
    *,
    concurrency: int = 64,
    hold_s: float = 5.0,
    ping_sample: int = 100,
    settle_s: float = 1.0,
) -> IdleResult:
    """Open ``count`` sockets with ``open_one(k)``, hold them ``hold_s``, measure, close them."""
    sockets: list[ClientConnection] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(k: int) -> None:
        async with gate:
            try:
                sockets.append(await open_one(k))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.sleep(settle_s)
    rss_before = server.rss_bytes()
    cpu0 = server.cpu_seconds()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(k) for k in range(count)))
        open_s = time.perf_counter() - started
        cpu1 = server.cpu_seconds()
        await asyncio.sleep(settle_s)
        rss_held = server.rss_bytes()
        cpu2 = server.cpu_seconds()
        t2 = time.perf_counter()
        await asyncio.sleep(hold_s)
        cpu3 = server.cpu_seconds()
        idle_pct = None
        if cpu2 is not None and cpu3 is not None:
            idle_pct = round(100.0 * (cpu3 - cpu2) / (time.perf_counter() - t2), 2)
        rtts: list[float] = []
        step = max(1, len(sockets) // max(1, ping_sample))
        for ws in sockets[::step][:ping_sample]:
            t = time.perf_counter()
            with contextlib.suppress(Exception):
                pong = await ws.ping()
                await asyncio.wait_for(pong, 10)
                rtts.append(time.perf_counter() - t)
    finally:
        closing = [asyncio.create_task(ws.close()) for ws in sockets]
        for task in closing:
            with contextlib.suppress(Exception):
                await task
    per_socket = None
    if rss_before is not None and rss_held is not None and sockets:
        per_socket = round((rss_held - rss_before) / len(sockets), 1)
    return IdleResult(
        requested=count,
        held=len(sockets),
        failures=len(errors),
        first_error=errors[0] if errors else None,
        open_s=round(open_s, 3),
        rss_before=rss_before,
        rss_held=rss_held,
        bytes_per_socket=per_socket,
        server_cpu_open_s=None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 3),
        server_cpu_idle_pct=idle_pct,
        ping=Latency.of_seconds(rtts),
    )
