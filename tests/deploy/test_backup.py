"""Backup and restore as docs/OPERATIONS.md prescribes, run for real: the database is copied while the
relay runs (``pg_dump`` / SQLite's online ``.backup``), the identity files are copied, and a relay
started on the restored copies serves what was there — same key, same log, pending items intact."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from hotline.protocol.encoding import b64d
from tests.conftest import BACKENDS
from tests.relay.support import RelayProcess, message_id, setup_channel
from tests.scale.support import check_audit, read_audit


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_relay_restored_from_its_backups_serves_the_same_log_and_queues(
    relay_factory, pg_databases, tmp_path, backend
):
    relay = relay_factory(backend, tree_head_interval_s=0.2)
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    envelope, answer = desks["delhi"].send_text(["islamabad"], "kept across a restore")
    public_key = relay.info()["public_key"]

    # Back up while the relay runs.
    backup = tmp_path / "backup"
    backup.mkdir()
    if backend == "postgres":
        dump = backup / "hotline.dump"
        r = subprocess.run(
            [_tool("pg_dump"), "--format=custom", f"--file={dump}", _plain(relay.db_url)],
            capture_output=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr.decode()
    else:
        source = relay.data_dir / "relay.db"
        sqlite_cli = shutil.which("sqlite3")
        if sqlite_cli:
            r = subprocess.run(
                [sqlite_cli, str(source), f".backup '{backup / 'relay.db'}'"], capture_output=True
            )
            assert r.returncode == 0, r.stderr.decode()
        else:  # the same online backup API, from Python
            with sqlite3.connect(source) as src, sqlite3.connect(backup / "relay.db") as dst:
                src.backup(dst)
    for name in ("relay.key", "admin.token"):
        shutil.copy2(relay.data_dir / name, backup / name)
    relay.stop()

    # Restore into a new database and data dir, and start a relay there.
    data_dir = tmp_path / "restored"
    data_dir.mkdir(mode=0o700)
    for name in ("relay.key", "admin.token"):
        shutil.copy2(backup / name, data_dir / name)
        (data_dir / name).chmod(0o600)
    if backend == "postgres":
        db_url = pg_databases.create()
        r = subprocess.run(
            [_tool("pg_restore"), "--no-owner", f"--dbname={_plain(db_url)}", str(backup / "hotline.dump")],
            capture_output=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr.decode()
    else:
        shutil.copy2(backup / "relay.db", data_dir / "relay.db")
        (data_dir / "relay.db").chmod(0o600)
        db_url = f"sqlite+aiosqlite:///{data_dir / 'relay.db'}"
    restored = RelayProcess(data_dir, db_url if backend == "postgres" else None, backend, {})
    restored.log_path = tmp_path / "restored.log"
    restored.start()
    try:
        assert restored.info()["public_key"] == public_key
        isb = desks["islamabad"]
        isb.relay = restored
        isb.login()
        [item] = isb.inbox()
        assert message_id(item) == envelope.header.message_id
        assert isb.open(item) == "kept across a restore"
        delhi = desks["delhi"]
        delhi.relay = restored
        delhi.login()
        again = delhi.send(envelope)
        assert (again.status_code, again.json()["log_index"]) == (200, answer["log_index"])
    finally:
        restored.stop()
    check_audit(asyncio.run(read_audit(db_url)), b64d(public_key, field="public_key"))
    assert Path(data_dir / "relay.key").stat().st_mode & 0o077 == 0
