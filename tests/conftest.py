"""Shared fixtures: real relay processes on SQLite and PostgreSQL.

PostgreSQL comes from ``HOTLINE_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
trust auth). Every relay started on it gets a database of its own, ``hotline_t_<random>``, created
through that URL and dropped when the test session ends. Without a reachable server, PostgreSQL
tests are skipped — except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.relay.support import RelayProcess

PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]


def _pg_dsn(database: str | None = None) -> str:
    url = PG_URL.replace("postgresql+asyncpg://", "postgresql://", 1)
    if database is None:
        return url
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + database + (f"?{query}" if query else "")


async def _pg_execute(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class PostgresDatabases:
    """Creates throw-away databases on the test server; drops them all at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.error: str | None = None
        try:
            asyncio.run(_pg_execute("SELECT 1"))
        except Exception as exc:  # any failure to connect means "no PostgreSQL here"
            self.error = f"PostgreSQL at {PG_URL} is unreachable: {exc!r}"

    def require(self) -> None:
        if self.error is None:
            return
        if os.environ.get("CI") == "true":
            pytest.fail(self.error)
        pytest.skip(self.error)

    def create(self) -> str:
        """A new empty database; returns its asyncpg SQLAlchemy URL."""
        self.require()
        name = f"hotline_t_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return _pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)

    def drop_all(self) -> None:
        for name in self.created:
            with contextlib.suppress(Exception):  # best effort: a leftover database harms nothing
                asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.clear()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases]:
    dbs = PostgresDatabases()
    yield dbs
    dbs.drop_all()


RelayFactory = Callable[..., RelayProcess]


@pytest.fixture(scope="session")
def relay_factory(
    pg_databases: PostgresDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayFactory]:
    """``relay_factory(backend, start=True, **settings)`` -> a running relay; all are stopped at the end.

    ``settings`` become ``HOTLINE_<NAME>`` environment variables of the relay process.
    """
    started: list[RelayProcess] = []

    def make(backend: str, start: bool = True, **settings: Any) -> RelayProcess:
        db_url = pg_databases.create() if backend == "postgres" else None
        data_dir = Path(tmp_path_factory.mktemp(f"relay-{backend}"))
        env = {f"HOTLINE_{k.upper()}": str(v) for k, v in settings.items()}
        env.setdefault("HOTLINE_LOG_LEVEL", "warning")
        relay = RelayProcess(data_dir / "data", db_url, backend, env)
        started.append(relay)
        return relay.start() if start else relay

    yield make
    for relay in started:
        relay.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def relay(request: pytest.FixtureRequest, relay_factory: RelayFactory) -> RelayProcess:
    """One relay per test module and backend, with default settings."""
    return relay_factory(request.param)
