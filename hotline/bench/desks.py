"""Real desks for the benchmark: channels of two desks, enrolled and driven with ``DeskClient``.

Every desk is a :class:`hotline.client.DeskClient` with a :class:`MemoryProfileStore` (a supported
store: the benchmark measures the relay and the protocol, not the disk of the load generator). A
desk generates its keys, redeems an invite, logs in with challenge-response, fetches and pins the
directory, seals and signs every message for its peer, checks the relay's signed receipt, and on the
receiving side verifies, opens, answers with a signed ``delivered`` receipt and acknowledges — the
same calls the CLI makes. Nothing is pre-computed or skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import ClientConnection

from hotline.bench.load import Recorder, index_of, message_text
from hotline.client import (
    AdminClient,
    DeskClient,
    GapAlarm,
    MemoryProfileStore,
    MessageReceived,
    MessageRefused,
    ReceiptReceived,
    RelayAlarm,
)
from hotline.protocol import Intent, Precedence, ReceiptKind

MEMBERS = ("delhi", "islamabad")


@dataclass
class DeskPair:
    """One channel with two principals, one device each: ``a`` (delhi) and ``b`` (islamabad)."""

    channel: str
    a: DeskClient
    b: DeskClient

    @property
    def desks(self) -> tuple[DeskClient, DeskClient]:
        return (self.a, self.b)


async def enroll_pairs(
    relay_url: str, admin_token: str, count: int, prefix: str, *, concurrency: int = 8
) -> list[DeskPair]:
    """Create ``count`` channels ``<prefix>-<k>`` and enroll both desks of each; they pin each other."""
    admin = AdminClient(relay_url, admin_token)
    gate = asyncio.Semaphore(concurrency)

    async def one(k: int) -> DeskPair:
        async with gate:
            channel = f"{prefix}-{k:03d}"
            created = await admin.create_channel(channel, {m: "principal" for m in MEMBERS})
            codes = {inv["member"]: inv["code"] for inv in created["invites"]}
            a = await DeskClient.enroll(relay_url, codes[MEMBERS[0]], "desk", MemoryProfileStore())
            b = await DeskClient.enroll(relay_url, codes[MEMBERS[1]], "desk", MemoryProfileStore())
            # delhi enrolled first and learns of islamabad's device from its queue, as a user would.
            await a.sync()
            await b.sync()
            return DeskPair(channel, a, b)

    try:
        return list(await asyncio.gather(*(one(k) for k in range(count))))
    finally:
        await admin.aclose()


async def close_pairs(pairs: Sequence[DeskPair]) -> None:
    for pair in pairs:
        for desk in pair.desks:
            with contextlib.suppress(Exception):
                await desk.aclose()


class DeskSender:
    """Sends benchmark message ``index`` from ``desk`` to the member ``to`` with ``DeskClient.send``."""

    def __init__(self, desk: DeskClient, to: str, listeners: DeskListeners | None) -> None:
        self.desk = desk
        self.to = to
        self.listeners = listeners

    async def send(self, tag: str, index: int) -> None:
        sent = await self.desk.send(
            [self.to],
            message_text(tag, index),
            precedence=Precedence.IMMEDIATE,
            intent=Intent.FREE_TEXT,
            exercise=True,
        )
        if self.listeners is not None and self.listeners.recorder is not None:
            self.listeners.recorder.on_message_id(index, sent.message_id)


class DeskListeners:
    """``DeskClient.listen()`` on every desk; events are written to the current :class:`Recorder`."""

    def __init__(self, desks: Sequence[DeskClient]) -> None:
        self.desks = list(desks)
        self.recorder: Recorder | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.failures: list[str] = []

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [asyncio.create_task(self._listen(d)) for d in self.desks]

    async def _listen(self, desk: DeskClient) -> None:
        try:
            async for event in desk.listen(stop=self._stop):
                rec = self.recorder
                if rec is None:
                    continue
                if isinstance(event, MessageReceived):
                    index = index_of(rec.tag, event.text)
                    if index is None:
                        rec.note("message of another run")
                    else:
                        rec.on_delivered(index)
                elif isinstance(event, ReceiptReceived):
                    if event.kind is ReceiptKind.DELIVERED:
                        rec.on_returned_message(event.message_id)
                elif isinstance(event, GapAlarm):
                    rec.note("gap alarm")
                elif isinstance(event, MessageRefused):
                    rec.note(f"message refused: {event.reason}")
                elif isinstance(event, RelayAlarm):
                    rec.note("relay alarm")
        except Exception as exc:
            self.failures.append(f"{desk.address}: {type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        self._tasks = []


async def open_idle_socket(desk: DeskClient, http_url: str) -> ClientConnection:
    """A device socket authenticated exactly as ``DeskClient.listen`` does it, then left idle.

    The desk's token comes from its challenge-response login; the socket sends the ``auth`` frame and
    waits for ``ready``. The ``websockets`` client answers the relay's keep-alive pings by itself.
    """
    if desk.api.token is None:
        await desk.login()
    url = http_url.rstrip("/").replace("http://", "ws://", 1) + f"/v1/channels/{desk.channel}/socket"
    ws = await websockets.connect(url, max_size=4 * 1024 * 1024, open_timeout=30)
    try:
        await ws.send(json.dumps({"type": "auth", "token": desk.api.token}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if first.get("type") != "ready":
            raise RuntimeError(f"socket refused: {first}")
    except BaseException:
        await ws.close()
        raise
    return ws
