"""The live WebSocket of a device: authenticate, send pending then new items, take acks.

Theory of operation
-------------------
The database is the queue; a socket is only a window onto it. The writer sends the device's pending
items in queue order (precedence, then arrival) that it has not sent on this socket yet, at most
``socket_max_unacked`` of them unacknowledged at a time, and then sleeps until the notifier says
something was queued, an ack frees room, or the device was revoked. Nothing is buffered in memory
beyond one page of items, so a slow client cannot make the relay grow: if its window stays full, or
a frame cannot be written, for ``socket_stall_timeout_s``, the socket is closed (4429) and the client
resumes on reconnect — every unacknowledged item is sent again, and acknowledged ones never are.

The reader takes ``ack``, ``receipt``, ``ping`` and ``pong`` frames. A ``receipt`` frame is ``POST
/receipts`` without an HTTP request and its token lookup (the socket is authenticated): the same
checks, and a refusal is answered with its error while the socket stays open. Frames are JSON
text, parsed strictly; anything else closes the socket (4400). Both tasks share one send lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from hotline.protocol.encoding import b64e, load_json_object
from hotline.protocol.errors import ProtocolError
from hotline.relay.access import Principal, require_channel
from hotline.relay.errors import RelayError, RelayErrorCode, from_protocol, malformed
from hotline.relay.notifier import Subscription
from hotline.relay.ratelimit import TokenBucketLimiter
from hotline.relay.service import RelayService
from hotline.relay.settings import RelaySettings
from hotline.relay.store import ItemKind, ItemRow

log = logging.getLogger(__name__)

_PAGE = 64
AUTH_TIMEOUT_CLOSE = 4408


class SocketClosed(Exception):
    """The peer went away; nothing more to send."""


class DeviceSocket:
    def __init__(
        self,
        ws: WebSocket,
        who: Principal,
        sub: Subscription,
        service: RelayService,
        settings: RelaySettings,
        limiter: TokenBucketLimiter,
    ) -> None:
        self.ws = ws
        self.who = who
        self.sub = sub
        self.service = service
        self.settings = settings
        self.limiter = limiter
        self.sent: set[int] = set()  # sent on this socket and not yet acknowledged
        self._send_lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_text(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))

    async def send_text(self, text: str) -> None:
        async with self._send_lock:
            try:
                await asyncio.wait_for(self.ws.send_text(text), self.settings.socket_stall_timeout_s)
            except TimeoutError as exc:
                raise RelayError(
                    RelayErrorCode.RATE_LIMITED, "the client is not reading its socket", status=429
                ) from exc
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                raise SocketClosed from exc

    async def writer(self) -> None:
        window = self.settings.socket_max_unacked
        while True:
            self.sub.wake.clear()
            if self.sub.revoked:
                raise RelayError(RelayErrorCode.DEVICE_REVOKED, "this device has been revoked")
            room = window - len(self.sent)
            if room > 0:
                page = min(room, _PAGE)
                items = await self.service.pending_for_socket(self.who, page, self.sent)
                for item in items:
                    # Counted before the write: the client may ack it before this task runs again.
                    self.sent.add(item.id)
                    await self.send_text(item_frame(item))
                if len(items) == page:
                    continue
                # A wake-up from another replica can be lost (its connection dropped): look anyway.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.sub.wake.wait(), self.settings.socket_poll_interval_s)
                continue
            # The window is full. Items acked over HTTP meanwhile free room too.
            self.sent &= await self.service.still_pending(self.who, self.sent)
            if len(self.sent) < window:
                continue
            try:
                await asyncio.wait_for(self.sub.wake.wait(), self.settings.socket_stall_timeout_s)
            except TimeoutError as exc:
                raise RelayError(
                    RelayErrorCode.RATE_LIMITED, "too many items unacknowledged for too long", status=429
                ) from exc

    async def reader(self) -> None:
        while True:
            frame = await receive_frame(self.ws, self.settings.socket_max_frame_bytes)
            if self.limiter.take(f"d{self.who.device.id}") is not None:
                raise RelayError(RelayErrorCode.RATE_LIMITED, "too many frames from this device")
            kind = frame.get("type")
            if kind == "ack":
                if set(frame) != {"type", "ids"}:
                    raise malformed("an ack frame is {type, ids}")
                ids = self.service.check_ack_ids(frame["ids"])
                await self.service.ack(self.who, self.who.channel, ids)
                window_was_full = len(self.sent) >= self.settings.socket_max_unacked
                self.sent.difference_update(ids)
                if window_was_full:
                    # Only a writer waiting for room needs this ack; one waiting for new items
                    # would look at the queue again for nothing (a read per acked item).
                    self.sub.wake.set()
            elif kind == "receipt":
                if set(frame) != {"type", "id", "receipt"} or not _is_ref(frame["id"]):
                    raise malformed(
                        "a receipt frame is {type, id, receipt}; id is a string of 1-64 characters"
                    )
                await self.service.check_active(self.who)  # as an HTTP request's token lookup would
                await self.send(await self.post_receipt(frame["id"], frame["receipt"]))
            elif kind == "ping":
                await self.send({"type": "pong"})
            elif kind == "pong":
                continue
            else:
                raise malformed(f"unexpected frame type {kind!r}")

    async def post_receipt(self, ref: str, obj: object) -> dict[str, Any]:
        """The answer to a ``receipt`` frame: ``receipt-result`` with the log index, or the error."""
        try:
            result = await self.service.post_receipt(self.who, self.who.channel, obj)
        except RelayError as refused:
            return {"type": "receipt-result", "id": ref, **refused.to_json()}
        except IntegrityError:  # a concurrent retry of the same receipt won the race
            conflict = RelayError(RelayErrorCode.CONFLICT, "conflicting concurrent request")
            return {"type": "receipt-result", "id": ref, **conflict.to_json()}
        return {
            "type": "receipt-result",
            "id": ref,
            "log_index": result.log_index,
            "duplicate": result.duplicate,
        }

    async def run(self) -> None:
        await self.send({"type": "ready"})
        tasks = [asyncio.create_task(self.writer()), asyncio.create_task(self.reader())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc


def item_frame(item: ItemRow) -> str:
    """An ``item`` frame as text. An envelope's wire JSON, stored canonical, goes in as it is: parsing
    it only to serialize it again cost a parse and a dump per delivery (docs/PERFORMANCE.md)."""
    if item.kind is not ItemKind.ENVELOPE or item.envelope_wire is None:
        item_json = RelayService.item_json(item)
        return json.dumps({"type": "item", "item": item_json}, separators=(",", ":"), ensure_ascii=False)
    assert item.accepted_body is not None and item.accepted_sig is not None
    head = json.dumps(
        {
            "id": item.id,
            "kind": item.kind.value,
            "at_ms": item.at_ms,
            "accepted": {"body": b64e(item.accepted_body), "sig": b64e(item.accepted_sig)},
        },
        separators=(",", ":"),
    )
    return '{"type":"item","item":' + head[:-1] + ',"envelope":' + item.envelope_wire.decode() + "}}"


def _is_ref(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 64


async def receive_frame(ws: WebSocket, max_bytes: int) -> dict[str, Any]:
    """The next client frame as a JSON object; raises SocketClosed or RelayError."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise SocketClosed
    text = message.get("text")
    if text is None:
        raise malformed("frames are JSON text")
    data = text.encode("utf-8")
    if len(data) > max_bytes:
        raise RelayError(RelayErrorCode.TOO_LARGE, f"frame is over {max_bytes} bytes")
    try:
        return load_json_object(data, what="frame", max_bytes=max_bytes)
    except ProtocolError as exc:
        raise from_protocol(exc) from exc


async def close_with_error(ws: WebSocket, error: RelayError, code: int | None = None) -> None:
    if ws.application_state is not WebSocketState.CONNECTED:
        return
    try:
        await ws.send_text(json.dumps({"type": "error", "error": error.to_json()["error"]}))
        await ws.close(code or error.close_code)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


async def _authenticate(ws: WebSocket, service: RelayService, settings: RelaySettings) -> Principal:
    frame = await receive_frame(ws, settings.socket_max_frame_bytes)
    if frame.get("type") != "auth" or set(frame) != {"type", "token"} or not isinstance(frame["token"], str):
        raise RelayError(RelayErrorCode.UNAUTHORIZED, 'the first frame must be {"type": "auth", "token": …}')
    return await service.authenticate(frame["token"])


async def serve_socket(
    ws: WebSocket,
    channel: str,
    service: RelayService,
    settings: RelaySettings,
    limiter: TokenBucketLimiter,
) -> None:
    """Run one device socket from accept to close."""
    await ws.accept()
    sub: Subscription | None = None
    try:
        try:
            who = await asyncio.wait_for(_authenticate(ws, service, settings), settings.socket_auth_timeout_s)
        except TimeoutError:
            await close_with_error(
                ws, RelayError(RelayErrorCode.UNAUTHORIZED, "no auth frame in time"), AUTH_TIMEOUT_CLOSE
            )
            return
        require_channel(who, channel)
        notifier = service.notifier
        if notifier.count(who.device.id) >= settings.max_sockets_per_device:
            raise RelayError(RelayErrorCode.RATE_LIMITED, "too many sockets for this device")
        if notifier.total >= settings.max_sockets_total:
            raise RelayError(RelayErrorCode.UNAVAILABLE, "the relay has too many sockets open")
        sub = notifier.subscribe(who.device.id)
        await DeviceSocket(ws, who, sub, service, settings, limiter).run()
    except SocketClosed:
        pass
    except RelayError as error:
        await close_with_error(ws, error)
    except Exception:
        log.exception("socket failed")
        await close_with_error(ws, RelayError(RelayErrorCode.INTERNAL, "internal error", status=500))
    finally:
        if sub is not None:
            sub.close()
