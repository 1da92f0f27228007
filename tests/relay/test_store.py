"""Contract tests of the relay store, run against each implementation backend (SQLite, PostgreSQL).

These call :class:`hotline.relay.sql_store.SqlStore` directly, for what the HTTP tests cannot see
precisely: log indexes under concurrent appenders, queue order and acks, single-use challenges, and
that migrations go down and up again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from hotline.protocol.merkle import leaf_hash
from hotline.relay import migrate
from hotline.relay.db import create_engine
from hotline.relay.sql_store import SqlStore
from hotline.relay.store import ItemKind, NewItem, Role, TreeHeadRow
from tests.conftest import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def db_url(request, pg_databases, tmp_path_factory) -> str:
    if request.param == "postgres":
        url = pg_databases.create()
    else:
        url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('store')) / 'relay.db'}"

    async def up() -> None:
        engine = create_engine(url)
        await migrate.upgrade(engine)
        await engine.dispose()

    asyncio.run(up())
    return url


@pytest_asyncio.fixture
async def store(db_url) -> AsyncIterator[SqlStore]:
    s = SqlStore(create_engine(db_url))
    yield s
    await s.close()


async def _device(store: SqlStore, name: str) -> int:
    async with store.write() as tx:
        channel = await tx.get_channel("store-test") or await tx.insert_channel(
            "store-test", "", "hotline-c1", 1
        )
        member = await tx.get_member(channel.id, name) or await tx.insert_member(
            channel.id, name, Role.PRINCIPAL, 1
        )
        return await tx.insert_device(channel.id, member.id, name, name.encode().ljust(32, b"."), 1)


async def test_concurrent_appenders_get_consecutive_indexes(store):
    async with store.read() as tx:
        start = await tx.log_size()

    async def append(n: int) -> list[int]:
        async with store.write() as tx:
            await tx.lock_log()
            first = await tx.append_audit(n, b"entry-%d-a" % n)
            second = await tx.append_audit(n, b"entry-%d-b" % n)
            return [first, second]

    results = await asyncio.gather(*(append(n) for n in range(12)))
    indexes = sorted(i for pair in results for i in pair)
    assert indexes == list(range(start, start + 24))
    for first, second in results:
        assert second == first + 1  # one transaction's entries are contiguous
    async with store.read() as tx:
        assert await tx.log_size() == start + 24
        rows = await tx.audit_rows(start, 100)
    assert [r.index for r in rows] == indexes
    assert all(r.leaf_hash == leaf_hash(r.entry) for r in rows)


async def test_append_needs_the_log_lock(store):
    with pytest.raises(RuntimeError):
        async with store.write() as tx:
            await tx.append_audit(1, b"no lock")


async def test_queue_order_is_precedence_then_arrival_and_acks_are_per_device(store):
    me, other = await _device(store, "queue-me"), await _device(store, "queue-other")
    payload = b'{"change":"prekeys","device":"x","member":"y"}'
    ranks = [3, 0, 2, 0, 1]
    async with store.write() as tx:
        await tx.queue_items(
            [NewItem(device_id=me, kind=ItemKind.DIRECTORY, rank=r, at_ms=1, payload=payload) for r in ranks]
        )
        await tx.queue_items(
            [NewItem(device_id=other, kind=ItemKind.DIRECTORY, rank=0, at_ms=1, payload=payload)]
        )
    async with store.read() as tx:
        items = await tx.pending_items(me, 10)
        [theirs] = await tx.pending_items(other, 10)
    assert [i.rank for i in items] == [0, 0, 1, 2, 3]
    assert items[0].id < items[1].id
    async with store.read() as tx:
        rest = await tx.pending_items(me, 10, exclude=[items[0].id, items[1].id])
    assert [i.id for i in rest] == [i.id for i in items[2:]]
    async with store.write() as tx:
        assert await tx.ack_items(me, [items[0].id, theirs.id]) == 1  # not another device's item
        assert await tx.ack_items(me, [items[0].id]) == 0  # not twice
    async with store.read() as tx:
        assert await tx.still_pending(me, [i.id for i in items]) == {i.id for i in items[1:]}
        assert len(await tx.pending_items(other, 10)) == 1


async def test_a_challenge_is_consumed_once(store):
    device = await _device(store, "challenged")
    async with store.write() as tx:
        await tx.insert_challenge(device, b"c" * 32, 99)
    async with store.write() as tx:
        assert await tx.consume_challenge(device, b"c" * 32) == 99
    async with store.write() as tx:
        assert await tx.consume_challenge(device, b"c" * 32) is None


async def test_tree_heads_are_stored_once_per_size(store):
    head = TreeHeadRow(size=10**9, root=b"r" * 32, at_ms=1, body=b"{}", sig=b"s" * 64)
    async with store.write() as tx:
        await tx.insert_tree_head(head)
        await tx.insert_tree_head(TreeHeadRow(size=10**9, root=b"x" * 32, at_ms=2, body=b"{}", sig=b"s" * 64))
    async with store.read() as tx:
        assert await tx.latest_tree_head() == head


def test_migrations_go_down_and_up_again(tmp_path, pg_databases, db_url):
    url = pg_databases.create() if db_url.startswith("postgresql") else f"sqlite+aiosqlite:///{tmp_path}/m.db"

    async def down_and_up() -> None:
        engine = create_engine(url)
        try:
            await migrate.upgrade(engine)
            await migrate.downgrade(engine, "base")
            await migrate.upgrade(engine)
            async with SqlStore(engine).read() as tx:
                assert await tx.log_size() == 0
        finally:
            await engine.dispose()

    asyncio.run(down_and_up())
