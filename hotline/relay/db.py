"""Database engines for the relay: SQLite (aiosqlite) and PostgreSQL (asyncpg), set up for durability.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit survives power loss), foreign keys on and a
busy timeout. pysqlite's own implicit transactions are switched off so that SQLAlchemy's ``begin`` is
a real ``BEGIN`` — ``BEGIN IMMEDIATE`` for connections marked as writers, which takes SQLite's single
write lock up front instead of failing with SQLITE_BUSY when a read transaction later tries to write.
SQL parameters (token hashes, ciphertext) are kept out of error messages, hence out of logs.

For SQLite the store also opens an *inline* engine on the same file (pysqlite, no driver thread):
a statement on the event loop's own thread costs tens of microseconds, where a hop to aiosqlite's
thread and back costs several hundred (docs/PERFORMANCE.md has the profile). Only the steps that can
wait — taking the write lock and the fsync of a commit — are run in a worker thread by the store.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

WRITE_OPTION = "hotline_write"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 10, busy_timeout_ms: int = 10_000) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(
            url, connect_args={"timeout": busy_timeout_ms / 1000}, hide_parameters=True
        )
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, hide_parameters=True
    )


def create_inline_sqlite_engine(engine: AsyncEngine, *, busy_timeout_ms: int = 10_000) -> Engine | None:
    """A synchronous pysqlite engine on the database file of an aiosqlite ``engine``, set up the same
    way; None for an in-memory database (a second engine would see another database)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    sync = create_sync_engine(
        engine.url.set(drivername="sqlite+pysqlite"),
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        hide_parameters=True,
    )
    _configure_sqlite_engine(sync, busy_timeout_ms)
    return sync


class Executor(Protocol):
    """What a store transaction needs of its connection: an awaitable ``execute``."""

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]: ...


class InlineConnection:
    """A synchronous connection behind the awaitable ``execute`` of :class:`Executor`.

    The statement runs at once on the caller's thread; nothing is awaited. Use it only for statements
    that cannot wait on a lock (SQLite reads in WAL mode, and writes once the write lock is held).
    """

    def __init__(self, conn: Connection) -> None:
        self.sync = conn

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return self.sync.execute(statement, parameters)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    _configure_sqlite_engine(engine.sync_engine, busy_timeout_ms)


def _configure_sqlite_engine(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
