"""Measure cross-process wake-up latency: PostgreSQL LISTEN/NOTIFY against NATS core pub/sub.

The figures behind docs/adr/0008-replicas-on-postgresql-listen-notify.md. A wake-up is a few bytes
("w:17,42") that tells another replica to look at its queues; the message itself is already
committed in PostgreSQL. Run on a machine with both servers:

    .venv/bin/python -m tests.scale.wakeup_latency [--pg postgresql://…] [--nats 127.0.0.1:4222]

It times, for each transport, one-at-a-time round trips (publish on one connection, receive on
another: the latency a waiting socket sees) and a burst of messages (how many wake-ups a second one
connection carries). NATS is spoken with its plain text protocol over a socket, so the measurement
needs no client library.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

ROUNDS = 2000
BURST = 20000
PAYLOAD = "w:" + ",".join(str(n) for n in range(1000, 1008))


def summary(name: str, samples_s: list[float], burst_s: float) -> str:
    ordered = sorted(samples_s)
    p50 = statistics.median(ordered) * 1e6
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1e6
    return (
        f"{name:<22} round trip p50 {p50:7.0f} µs  p99 {p99:7.0f} µs  "
        f"burst {BURST / burst_s:9.0f} msg/s ({BURST} in {burst_s:.2f} s)"
    )


async def measure(
    publish: Callable[[str], Awaitable[None]], received: asyncio.Queue[str]
) -> tuple[list[float], float]:
    samples = []
    for n in range(ROUNDS):
        start = time.perf_counter()
        await publish(f"{PAYLOAD}:{n}")
        await received.get()
        samples.append(time.perf_counter() - start)
    start = time.perf_counter()
    for n in range(BURST):
        await publish(f"{PAYLOAD}:{n}")
    for _ in range(BURST):
        await received.get()
    return samples, time.perf_counter() - start


async def postgres(dsn: str) -> str:
    import asyncpg

    queue: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(dsn)
    sender = await asyncpg.connect(dsn)
    try:
        await listener.add_listener("hotline_bench", lambda *args: queue.put_nowait(args[3]))

        async def publish(payload: str) -> None:
            await sender.execute("SELECT pg_notify('hotline_bench', $1)", payload)

        samples, burst = await measure(publish, queue)
    finally:
        await listener.close()
        await sender.close()
    return summary("PostgreSQL NOTIFY", samples, burst)


async def nats(address: str) -> str:
    host, _, port = address.rpartition(":")
    queue: asyncio.Queue[str] = asyncio.Queue()
    sub_r, sub_w = await asyncio.open_connection(host, int(port))
    pub_r, pub_w = await asyncio.open_connection(host, int(port))
    for reader, writer in ((sub_r, sub_w), (pub_r, pub_w)):
        await reader.readline()  # INFO {...}
        writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        await writer.drain()
        assert (await reader.readline()).strip() == b"PONG"
    sub_w.write(b"SUB hotline.bench 1\r\nPING\r\n")
    await sub_w.drain()
    assert (await sub_r.readline()).strip() == b"PONG"

    async def read_messages() -> None:
        while line := await sub_r.readline():
            if line.startswith(b"MSG "):
                size = int(line.split()[-1])
                data = await sub_r.readexactly(size + 2)
                queue.put_nowait(data[:-2].decode())
            elif line.startswith(b"PING"):
                sub_w.write(b"PONG\r\n")

    reader_task = asyncio.create_task(read_messages())

    async def publish(payload: str) -> None:
        data = payload.encode()
        pub_w.write(b"PUB hotline.bench %d\r\n%s\r\n" % (len(data), data))
        await pub_w.drain()

    try:
        samples, burst = await measure(publish, queue)
    finally:
        reader_task.cancel()
        for writer in (sub_w, pub_w):
            writer.close()
    return summary("NATS core pub/sub", samples, burst)


async def main(pg_dsn: str, nats_address: str) -> None:
    print(await postgres(pg_dsn))
    print(await nats(nats_address))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--nats", default="127.0.0.1:4222")
    args = parser.parse_args()
    asyncio.run(main(args.pg, args.nats))
