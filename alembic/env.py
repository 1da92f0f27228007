"""Alembic environment for the relay: async engines, and a connection or URL handed in programmatically.

``hotline.relay.migrate.upgrade`` passes an open connection in ``config.attributes["connection"]``
(it holds the migration lock on it). Run by hand, ``alembic upgrade head`` takes the URL from
``-x url=…``, ``sqlalchemy.url`` or the ``HOTLINE_DB_URL`` environment variable.
"""

from __future__ import annotations

import asyncio
import os

from sqlalchemy.engine import Connection

from alembic import context
from hotline.relay.db import create_engine
from hotline.relay.schema import metadata
from hotline.relay.settings import normalize_db_url

config = context.config
target_metadata = metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    url = url or os.environ.get("HOTLINE_DB_URL")
    if not url:
        raise SystemExit("no database URL: pass -x url=… or set HOTLINE_DB_URL")
    return normalize_db_url(url)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # The relay's engine issues a real BEGIN on SQLite too (hotline.relay.db), so DDL is transactional.
        transactional_ddl=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(hotline_write=True)
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        asyncio.run(_run_with_url(_url()))
