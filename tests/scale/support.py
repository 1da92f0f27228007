"""Support for multi-replica tests: replica processes, a loopback TCP balancer, audit-log checks.

Replicas are ``hotline serve`` processes sharing one data dir (relay key, admin token) and one
PostgreSQL database, each with its own log file. The balancer stands in for the load balancer of a
real deployment: it sends each new TCP connection to the first backend that accepts it, so killing
a replica moves every reconnecting client to the next one. The audit check reads the database
directly and verifies it with the protocol core alone (``hotline.protocol.merkle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hotline.protocol.merkle import MerkleTree, leaf_hash, verify_consistency
from hotline.protocol.statements import TreeHead
from tests.relay.support import RelayProcess


def add_replica(first: RelayProcess, name: str) -> RelayProcess:
    """Another relay process on ``first``'s data dir and database (not started), logging apart."""
    replica = RelayProcess(first.data_dir, first.db_url, first.backend, dict(first.env))
    replica.log_path = first.data_dir.parent / f"{first.data_dir.name}-{name}.log"
    return replica


class TcpBalancer:
    """Forwards each connection on a loopback port to the first backend in ``backends`` that accepts it.

    Runs its own event loop in a thread, so blocking and asyncio tests can both use it.
    """

    def __init__(self, backends: list[tuple[str, int]], connect_timeout_s: float = 2.0) -> None:
        self.backends = list(backends)
        self.connect_timeout_s = connect_timeout_s
        self.port = 0
        self.connections: Counter[int] = Counter()  # backend port -> connections sent there
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpBalancer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._pipes):
                task.cancel()
            await asyncio.gather(*self._pipes, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            for host, port in self.backends:
                try:
                    up_r, up_w = await asyncio.wait_for(
                        asyncio.open_connection(host, port), self.connect_timeout_s
                    )
                except (OSError, TimeoutError):
                    continue
                self.connections[port] += 1
                await self._pipe_both(client_r, client_w, up_r, up_w)
                return
        finally:
            self._pipes.discard(task)
            with contextlib.suppress(Exception):
                client_w.close()

    @staticmethod
    async def _pipe_both(
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
    ) -> None:
        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()

        tasks = [asyncio.create_task(pipe(client_r, up_w)), asyncio.create_task(pipe(up_r, client_w))]
        try:
            # Either side ending ends the connection: a killed backend drops its clients at once.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (up_w, client_w):
                with contextlib.suppress(Exception):
                    writer.close()


@dataclass
class AuditState:
    """The audit log and tree heads of a relay database, as stored."""

    size: int
    indexes: list[int]
    entries: list[bytes]
    leaf_hashes: list[bytes]
    heads: list[TreeHead] = field(default_factory=list)
    envelope_indexes: dict[str, int] = field(default_factory=dict)  # message id -> log_index

    def entry(self, index: int) -> dict[str, Any]:
        return dict(json.loads(self.entries[index]))


async def read_audit(db_url: str) -> AuditState:
    """Read the log, its size, the tree heads and the envelopes' log indexes (SQLite or PostgreSQL)."""
    from sqlalchemy import text

    from hotline.relay.db import create_engine

    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT idx, entry, leaf_hash FROM audit_log ORDER BY idx"))
            ).all()
            size = (await conn.execute(text("SELECT size FROM log_state WHERE id = 1"))).scalar_one()
            heads = (
                await conn.execute(text("SELECT size, root, at_ms, body, sig FROM tree_heads ORDER BY size"))
            ).all()
            envelopes = (await conn.execute(text("SELECT message_id, log_index FROM envelopes"))).all()
    finally:
        await engine.dispose()
    state = AuditState(
        size=int(size),
        indexes=[int(r[0]) for r in rows],
        entries=[bytes(r[1]) for r in rows],
        leaf_hashes=[bytes(r[2]) for r in rows],
        envelope_indexes={str(r[0]): int(r[1]) for r in envelopes},
    )
    for size_, root, at_ms, body, sig in heads:
        head = TreeHead.parse(bytes(body), bytes(sig))
        assert (head.size, head.root, head.at_ms) == (int(size_), bytes(root), int(at_ms))
        state.heads.append(head)
    return state


def check_audit(state: AuditState, relay_public_key: bytes) -> None:
    """One log in one order, one tree: every check an auditor could make from the stored rows.

    Indexes are unique and contiguous from 0 and match the log's size; each leaf hash is the RFC 9162
    hash of its entry; each envelope's log index names its own ``envelope-accepted`` entry; every tree
    head is signed by the relay and has the root of the log's prefix of its size; and each tree head
    is consistent with the next (the consistency proof verifies), so no replica ever signed a
    different history.
    """
    assert state.indexes == list(range(len(state.indexes))), "log indexes have holes or repeats"
    assert state.size == len(state.indexes), (state.size, len(state.indexes))
    for index, (entry, stored) in enumerate(zip(state.entries, state.leaf_hashes, strict=True)):
        assert leaf_hash(entry) == stored, f"leaf hash of entry {index} does not match"
    for message_id, index in state.envelope_indexes.items():
        entry = state.entry(index)
        assert entry["type"] == "envelope-accepted" and entry["message_id"] == message_id, (index, entry)
    assert len(set(state.envelope_indexes.values())) == len(state.envelope_indexes)
    tree = MerkleTree(state.leaf_hashes)
    previous: TreeHead | None = None
    for head in state.heads:
        head.verify(relay_public_key)
        assert head.size <= tree.size
        assert tree.root(head.size) == head.root, f"tree head of size {head.size} has another root"
        if previous is not None:
            proof = tree.consistency_proof(previous.size, head.size)
            verify_consistency(previous.size, head.size, previous.root, head.root, proof)
        previous = head
