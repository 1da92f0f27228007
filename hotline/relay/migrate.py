"""Schema migrations: run Alembic's ``upgrade head`` on a relay database, safely from several processes.

Two relay processes may start at once. On PostgreSQL a session advisory lock serializes them; on
SQLite (a local file) an exclusive ``flock`` on a lock file next to the database does. The second
process then finds the schema at head and does nothing.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import hotline
from alembic import command

# Arbitrary but fixed: the advisory-lock key every hotline relay uses for migrations ("hotline" in ASCII).
_PG_MIGRATION_LOCK = 0x686F746C696E65

_REPO_ROOT = Path(hotline.__file__).resolve().parent.parent


def alembic_config() -> Config:
    """Alembic's config pointing at the repository's ``alembic/`` scripts."""
    ini = _REPO_ROOT / "alembic.ini"
    cfg = Config(str(ini)) if ini.exists() else Config()
    cfg.set_main_option("script_location", str(_REPO_ROOT / "alembic"))
    return cfg


def _command(connection: Connection, cfg: Config, action: str, revision: str) -> None:
    cfg.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest), holding the migration lock."""
    await _locked(engine, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Take the database back to ``revision`` (``"base"``: empty), holding the migration lock."""
    await _locked(engine, "downgrade", revision)


async def _locked(engine: AsyncEngine, action: str, revision: str) -> None:
    cfg = alembic_config()
    if engine.dialect.name == "sqlite":
        database = make_url(str(engine.url)).database
        if not database or database == ":memory:":
            raise ValueError("the relay needs a SQLite file, not an in-memory database")
        lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            async with engine.connect() as conn:
                conn = await conn.execution_options(hotline_write=True)
                await conn.run_sync(_command, cfg, action, revision)
                await conn.commit()
        finally:
            os.close(fd)  # releases the flock
        return
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        await conn.commit()
        try:
            await conn.run_sync(_command, cfg, action, revision)
            await conn.commit()
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
            await conn.commit()
