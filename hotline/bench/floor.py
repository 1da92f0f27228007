"""Clients of the bare forwarder, shaped like the desks: HTTP to send, a WebSocket to receive.

A floor sender posts the same-sized text with ``httpx`` (as ``DeskClient`` does) and returns when the
forwarder answers; a floor recipient holds a ``websockets`` socket (as ``DeskClient.listen`` does)
and answers each message with a small frame to the sender, the floor of a delivered receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from hotline.bench.load import Recorder, index_of, message_text


def ws_url(http_url: str, name: str) -> str:
    return http_url.rstrip("/").replace("http://", "ws://", 1) + f"/ws/{name}"


class FloorSender:
    def __init__(self, base_url: str, name: str, to: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.to = to
        self.http = httpx.AsyncClient(timeout=10.0)

    async def send(self, tag: str, index: int) -> None:
        body = json.dumps({"from": self.name, "text": message_text(tag, index)}, separators=(",", ":"))
        response = await self.http.post(
            f"{self.base_url}/send/{self.to}",
            content=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()
        response.json()

    async def aclose(self) -> None:
        await self.http.aclose()


class FloorSockets:
    """One socket per desk name; recipients answer each message, senders note the answer."""

    def __init__(self, base_url: str, names: Sequence[str]) -> None:
        self.base_url = base_url
        self.names = list(names)
        self.recorder: Recorder | None = None
        self._sockets: list[ClientConnection] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for name in self.names:
            ws = await websockets.connect(ws_url(self.base_url, name), max_size=4 * 1024 * 1024)
            self._sockets.append(ws)
            self._tasks.append(asyncio.create_task(self._read(name, ws)))

    async def _read(self, name: str, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                frame = json.loads(raw)
                rec = self.recorder
                if rec is None:
                    continue
                if "text" in frame:
                    index = index_of(rec.tag, frame["text"])
                    if index is not None:
                        rec.on_delivered(index)
                        await ws.send(json.dumps({"to": frame["from"], "delivered": index}))
                elif "delivered" in frame:
                    rec.on_returned_index(int(frame["delivered"]))

    async def stop(self) -> None:
        for ws in self._sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._sockets, self._tasks = [], []


async def open_floor_idle_socket(base_url: str, name: str) -> ClientConnection:
    """A plain socket to the forwarder: no authentication (there is none to do)."""
    return await websockets.connect(ws_url(base_url, name), open_timeout=30)
