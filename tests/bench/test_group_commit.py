"""SQLite group commit (a fix the benchmark's profile called for) keeps every writer's guarantees.

Writers that queue up while one commits share one transaction and one fsync'd COMMIT, each in a
savepoint of its own. These tests pin what must not change with it: a writer returns only once its
work is committed (a new connection sees it), a failing writer loses only its own work, and the log
indexes of a group stay consecutive. They count commits, never time them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from hotline.relay import migrate
from hotline.relay.db import WRITE_OPTION, create_engine
from hotline.relay.sql_store import SqlStore


class Boom(Exception):
    pass


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")
    await migrate.upgrade(engine)
    s = SqlStore(engine, group_commit_max=64)
    yield s
    await s.close()


@pytest.fixture
def commits() -> AsyncIterator[list[int]]:
    seen: list[int] = []

    def count(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):  # a writers' transaction, not a read
            seen.append(1)

    event.listen(Engine, "commit", count)
    yield seen
    event.remove(Engine, "commit", count)


async def _append(store: SqlStore, n: int, *, fail: bool = False) -> int:
    async with store.write() as tx:
        await tx.lock_log()
        index = await tx.append_audit(n, b"entry-%d" % n)
        if fail:
            raise Boom
        return index


async def test_concurrent_writers_share_commits_and_each_returns_after_its_commit(store, commits):
    async with store.read() as tx:
        start = await tx.log_size()
    commits.clear()

    async def append_then_read(n: int) -> int:
        index = await _append(store, n)
        async with store.read() as tx:  # another connection: sees only committed rows
            rows = await tx.audit_rows(index, 1)
        assert rows and rows[0].entry == b"entry-%d" % n
        return index

    indexes = await asyncio.gather(*(append_then_read(n) for n in range(40)))
    assert sorted(indexes) == list(range(start, start + 40))
    assert 1 <= len(commits) < 40  # writers queued behind a commit shared the next one


async def test_a_failing_writer_loses_only_its_own_work(store):
    async with store.read() as tx:
        start = await tx.log_size()
    results = await asyncio.gather(
        _append(store, 1), _append(store, 2, fail=True), _append(store, 3), return_exceptions=True
    )
    assert isinstance(results[1], Boom)
    assert sorted(r for r in results if isinstance(r, int)) == [start, start + 1]
    async with store.read() as tx:
        assert await tx.log_size() == start + 2
        entries = [r.entry for r in await tx.audit_rows(start, 10)]
    assert sorted(entries) == [b"entry-1", b"entry-3"]


async def test_a_writer_cancelled_while_queued_does_not_stall_the_others(store):
    async with store.read() as tx:
        start = await tx.log_size()
    first = asyncio.create_task(_append(store, 1))
    queued = asyncio.create_task(_append(store, 2))
    last = asyncio.create_task(_append(store, 3))
    await asyncio.sleep(0)
    queued.cancel()
    done = await asyncio.gather(first, queued, last, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError | int)
    async with store.read() as tx:
        size = await tx.log_size()
    assert size - start == sum(isinstance(r, int) for r in done)
