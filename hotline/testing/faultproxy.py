"""A fault-injecting TCP proxy between hotline clients and a relay, for tests and developers.

Theory of operation
-------------------
The proxy listens on a local port and opens one upstream connection to the relay for every client
connection. Two pumps move bytes, one per direction ("up": client to relay, "down": relay to
client). Each pump cuts its byte stream into *units* and asks a seeded random source, unit by unit,
whether to interfere:

* on plain HTTP a unit is whatever one ``read()`` returned (a TCP chunk);
* once a connection has been upgraded to a WebSocket (the client asked for ``Upgrade: websocket``
  and the relay answered ``101``), a unit is one whole WebSocket frame, so faults hit messages the
  way a broken or hostile middlebox would, and framing stays valid unless the fault is a cut.

The faults, tested in this order for every unit (at most one applies):

``cut``        close both sides before the unit is forwarded
``truncate``   forward a random prefix of the unit, then close both sides
``drop``       (frames only) forget the frame, keep the connection
``corrupt``    flip one random bit (in a frame: in its payload, so the frame still parses)
``duplicate``  forward the unit twice
``reorder``    hold the unit back and forward it right after the next one (or after 50 ms)
``delay``      sleep up to ``max_delay_s`` before forwarding (order is kept)

Every decision comes from ``random.Random(f"{seed}:{connection number}:{direction}")``, so a seed
replays the same decisions for the same sequence of units: a failing test logs its seed, and running
it again with that seed (``HOTLINE_FAULT_SEED`` in the tests) replays the schedule. TCP may split
chunks differently on another run; frames are cut the same way every time. Every fault applied is
recorded in :attr:`FaultProxy.events`.

The plan can be changed while the proxy runs (``proxy.plan = FaultPlan(...)``), and
:meth:`FaultProxy.cut_all` closes every live connection (what a dead link looks like to both ends).

As a command, for developers::

    python -m hotline.testing.faultproxy --upstream 127.0.0.1:8000 --port 8100 --seed 7 \\
        --cut 0.01 --corrupt 0.01 --duplicate 0.05 --reorder 0.05 --delay 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

log = logging.getLogger(__name__)

Direction = Literal["up", "down"]
FaultKind = Literal["cut", "truncate", "drop", "corrupt", "duplicate", "reorder", "delay"]

READ_SIZE = 65_536
REORDER_HOLD_S = 0.05
MAX_HTTP_HEAD = 64 * 1024


@dataclass(frozen=True)
class FaultPlan:
    """Probabilities per unit (chunk or frame) of each fault; all zero is a transparent proxy."""

    seed: int = 0
    cut: float = 0.0
    truncate: float = 0.0
    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    max_delay_s: float = 0.05
    directions: frozenset[str] = frozenset({"up", "down"})
    http: bool = True  # apply faults to plain HTTP connections
    websocket: bool = True  # apply faults to upgraded WebSocket connections
    frames: bool = True  # after an upgrade, treat whole WebSocket frames as units

    def with_seed(self, seed: int) -> FaultPlan:
        return replace(self, seed=seed)

    @property
    def quiet(self) -> bool:
        return not any(
            (self.cut, self.truncate, self.drop, self.corrupt, self.duplicate, self.reorder, self.delay)
        )


CLEAN = FaultPlan()


@dataclass(frozen=True)
class FaultEvent:
    connection: int
    direction: Direction
    unit: int
    kind: FaultKind
    websocket: bool


class _Cut(Exception):
    """The proxy decided to cut this connection."""


def ws_frame_length(buffer: bytes | bytearray) -> int | None:
    """The length of the WebSocket frame at the start of ``buffer`` (RFC 6455 §5.2), if complete."""
    if len(buffer) < 2:
        return None
    masked = buffer[1] & 0x80
    length = buffer[1] & 0x7F
    offset = 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length = struct.unpack_from("!H", buffer, 2)[0]
        offset = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length = struct.unpack_from("!Q", buffer, 2)[0]
        offset = 10
    if masked:
        offset += 4
    total = offset + int(length)
    return total if len(buffer) >= total else None


def ws_payload_offset(frame: bytes) -> int:
    length = frame[1] & 0x7F
    offset = 2 + (2 if length == 126 else 8 if length == 127 else 0)
    return offset + (4 if frame[1] & 0x80 else 0)


@dataclass
class _Connection:
    number: int
    client_writer: asyncio.StreamWriter
    upstream_writer: asyncio.StreamWriter
    upgrade_requested: bool = False
    websocket: bool = False
    # Set by the down pump when the relay's 101 has been forwarded; the up pump switches to frames
    # after the request head, which the client sends before it can see the 101.
    up_head_done: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for writer in (self.client_writer, self.upstream_writer):
            with contextlib.suppress(Exception):
                writer.transport.abort()


class FaultProxy:
    """``async with FaultProxy(host, port, plan) as proxy:`` clients use ``proxy.url``."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        plan: FaultPlan = CLEAN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.plan = plan
        self.host = host
        self.port = port
        self.events: list[FaultEvent] = []
        self.connections_seen = 0
        self._live: dict[int, _Connection] = {}
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.cut_all()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def cut_all(self) -> int:
        """Abort every live connection (both sides see a reset); returns how many there were."""
        live = list(self._live.values())
        for conn in live:
            conn.close()
        return len(live)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for ev in self.events:
            out[ev.kind] = out.get(ev.kind, 0) + 1
        return out

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_seen += 1
        number = self.connections_seen
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        conn = _Connection(number, writer, up_writer)
        self._live[number] = conn
        up = asyncio.create_task(self._pump(conn, "up", reader, up_writer))
        down = asyncio.create_task(self._pump(conn, "down", up_reader, writer))
        conn.tasks = [up, down]
        try:
            await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_COMPLETED)
            # Let a half-closed direction finish (an HTTP answer after the request side ended).
            await asyncio.wait(conn.tasks, timeout=5)
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            for task in conn.tasks:
                task.cancel()
            conn.close()
            self._live.pop(number, None)

    def _rng(self, conn: _Connection, direction: Direction) -> random.Random:
        return random.Random(f"{self.plan.seed}:{conn.number}:{direction}")

    async def _pump(
        self,
        conn: _Connection,
        direction: Direction,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        rng = self._rng(conn, direction)
        units = _Units(conn, direction)
        held: bytes | None = None
        unit_index = 0
        try:
            while True:
                try:
                    data = await (
                        asyncio.wait_for(reader.read(READ_SIZE), REORDER_HOLD_S)
                        if held is not None
                        else reader.read(READ_SIZE)
                    )
                except TimeoutError:
                    writer.write(held or b"")
                    held = None
                    await writer.drain()
                    continue
                if not data:
                    if held is not None:
                        writer.write(held)
                    with contextlib.suppress(Exception):
                        await writer.drain()
                        writer.write_eof()
                    return
                for unit, is_frame in units.feed(data):
                    unit_index += 1
                    out = await self._apply(conn, direction, rng, unit, is_frame, unit_index)
                    if out is None:
                        continue
                    if isinstance(out, _Hold):
                        if held is not None:
                            writer.write(held)
                        held = out.data
                        continue
                    writer.write(out)
                    if held is not None:
                        writer.write(held)
                        held = None
                await writer.drain()
        except (_Cut, ConnectionError, OSError):
            conn.close()
        except asyncio.CancelledError:
            raise

    async def _apply(
        self,
        conn: _Connection,
        direction: Direction,
        rng: random.Random,
        unit: bytes,
        is_frame: bool,
        index: int,
    ) -> bytes | _Hold | None:
        """The bytes to forward for one unit (None: nothing), after at most one fault."""
        plan = self.plan
        # Draw every number for this unit whatever the plan, so one seed gives one schedule.
        draws = [rng.random() for _ in range(7)]
        position = rng.random()
        bit = rng.randrange(8)
        delay = rng.random() * plan.max_delay_s
        active = (
            direction in plan.directions
            and (plan.websocket if conn.websocket else plan.http)
            and not plan.quiet
            and unit
        )
        if not active:
            return unit

        def record(kind: FaultKind) -> None:
            self.events.append(FaultEvent(conn.number, direction, index, kind, conn.websocket))

        if draws[0] < plan.cut:
            record("cut")
            raise _Cut
        if draws[1] < plan.truncate:
            record("truncate")
            cut_at = int(position * len(unit))
            writer = conn.upstream_writer if direction == "up" else conn.client_writer
            writer.write(unit[:cut_at])
            with contextlib.suppress(Exception):
                await writer.drain()
            raise _Cut
        if is_frame and draws[2] < plan.drop:
            record("drop")
            return None
        if draws[3] < plan.corrupt:
            record("corrupt")
            start = ws_payload_offset(unit) if is_frame else 0
            if start >= len(unit):
                return unit
            at = start + int(position * (len(unit) - start))
            data = bytearray(unit)
            data[at] ^= 1 << bit
            return bytes(data)
        if draws[4] < plan.duplicate:
            record("duplicate")
            return unit + unit
        if draws[5] < plan.reorder:
            record("reorder")
            return _Hold(unit)
        if draws[6] < plan.delay:
            record("delay")
            await asyncio.sleep(delay)
        return unit


@dataclass(frozen=True)
class _Hold:
    data: bytes


class _Units:
    """Cuts one direction's byte stream into units: TCP chunks, or whole frames after an upgrade."""

    def __init__(self, conn: _Connection, direction: Direction) -> None:
        self.conn = conn
        self.direction = direction
        self.head = bytearray()  # the HTTP head while we look for an upgrade
        self.frames = bytearray()
        self.in_frames = False
        self.in_bytes = False  # a plain HTTP connection: chunks from now on

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bool]]:
        if self.in_frames:
            yield from self._frames(data)
            return
        if self.in_bytes or (self.direction == "down" and not self.conn.upgrade_requested):
            yield data, False
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_HTTP_HEAD:  # not an HTTP head we understand: stay byte-level
                chunk, self.head = bytes(self.head), bytearray()
                yield chunk, False
            return
        head, rest = bytes(self.head[: end + 4]), bytes(self.head[end + 4 :])
        self.head = bytearray()
        lower = head.lower()
        if self.direction == "up" and b"upgrade: websocket" in lower:
            self.conn.upgrade_requested = True
            self.in_frames = True
        elif self.direction == "down" and self.conn.upgrade_requested and head.startswith(b"HTTP/1.1 101"):
            self.conn.websocket = True
            self.in_frames = True
        else:
            # Plain HTTP (a connection is upgraded with its first request or never): chunks from now on.
            self.in_bytes = True
            yield head + rest, False
            return
        yield head, False  # the handshake is one chunk: it can be cut, not dropped as a frame
        if rest:
            yield from self._frames(rest)

    def _frames(self, data: bytes) -> Iterator[tuple[bytes, bool]]:
        if not self.conn.websocket:
            # The relay has not agreed to the upgrade (it refused it): bytes pass on as they come.
            yield data, False
            return
        self.frames += data
        while True:
            length = ws_frame_length(self.frames)
            if length is None:
                return
            frame, self.frames = bytes(self.frames[:length]), self.frames[length:]
            yield frame, True


def _parse_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _serve(args: argparse.Namespace) -> None:
    host, port = _parse_hostport(args.upstream)
    plan = FaultPlan(
        seed=args.seed,
        cut=args.cut,
        truncate=args.truncate,
        drop=args.drop,
        corrupt=args.corrupt,
        duplicate=args.duplicate,
        reorder=args.reorder,
        delay=args.delay,
        max_delay_s=args.max_delay,
    )
    proxy = FaultProxy(host, port, plan, host=args.host, port=args.port)
    await proxy.start()
    print(f"fault proxy on {proxy.url} -> {host}:{port}, seed {plan.seed}", flush=True)
    try:
        while True:
            await asyncio.sleep(10)
            if proxy.events:
                print(f"faults so far: {proxy.counts()}", flush=True)
    finally:
        await proxy.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fault-injecting TCP proxy in front of a hotline relay.")
    parser.add_argument("--upstream", required=True, help="relay address, host:port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(2**31))
    for name in ("cut", "truncate", "drop", "corrupt", "duplicate", "reorder", "delay"):
        parser.add_argument(f"--{name}", type=float, default=0.0, help=f"probability of {name} per unit")
    parser.add_argument("--max-delay", type=float, default=0.05, help="longest delay in seconds")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
