"""Tampering for real: an attacker with access to the relay's database (SQLite or PostgreSQL) drops the
append-only triggers and edits, deletes, reorders or inserts audit rows — covering their tracks in the
leaf hashes and the numbering. The real ``hotline audit export`` and ``hotline audit verify`` run as
subprocesses and name each change and where it is. So do they for an exported file edited by hand."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hotline.protocol.audit import EntryType, parse_entry
from hotline.protocol.encoding import dump_json
from hotline.protocol.merkle import leaf_hash
from tests.conftest import BACKENDS
from tests.relay.audit_support import wait_for_head
from tests.relay.support import HOTLINE, RelayProcess, setup_channel


def hotline(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(NO_COLOR="1", COLUMNS="200")
    if home is not None:
        env["HOTLINE_HOME"] = str(home)
    return subprocess.run([HOTLINE, *args], capture_output=True, text=True, env=env, timeout=120)


def export(relay: RelayProcess, out: Path) -> dict[str, Any]:
    done = hotline(
        "audit", "export", "--relay", relay.url, "--admin-token-file", str(relay.data_dir / "admin.token"),
        "--out", str(out), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    return dict(json.loads(done.stdout))


def verify(path: Path) -> tuple[int, dict[str, Any]]:
    done = hotline("audit", "verify", str(path), "--json", "--jobs", "2")
    return done.returncode, json.loads(done.stdout)


class Attacker:
    """Raw SQL on the relay's database, below the application, triggers removed first."""

    def __init__(self, relay: RelayProcess) -> None:
        self.relay = relay

    def run(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        if self.relay.backend == "sqlite":
            db = sqlite3.connect(self.relay.data_dir / "relay.db")
            try:
                for sql, params in statements:
                    db.execute(sql, params)
                db.commit()
            finally:
                db.close()
            return
        import asyncpg

        async def go() -> None:
            assert self.relay.db_url is not None
            conn = await asyncpg.connect(
                self.relay.db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
            )
            try:
                async with conn.transaction():
                    for sql, params in statements:
                        n = 0

                        def number(_: object) -> str:
                            nonlocal n
                            n += 1
                            return f"${n}"

                        import re

                        await conn.execute(re.sub(r"\?", number, sql), *params)
            finally:
                await conn.close()

        asyncio.run(go())

    def drop_triggers(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        if self.relay.backend == "sqlite":
            return (("DROP TRIGGER audit_log_no_update", ()), ("DROP TRIGGER audit_log_no_delete", ()))
        return (("DROP TRIGGER audit_log_no_rewrite ON audit_log", ()),)

    def row(self, index: int) -> bytes:
        if self.relay.backend == "sqlite":
            db = sqlite3.connect(self.relay.data_dir / "relay.db")
            try:
                return bytes(db.execute("SELECT entry FROM audit_log WHERE idx = ?", (index,)).fetchone()[0])
            finally:
                db.close()
        import asyncpg

        async def go() -> bytes:
            assert self.relay.db_url is not None
            conn = await asyncpg.connect(
                self.relay.db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
            )
            try:
                return bytes(await conn.fetchval("SELECT entry FROM audit_log WHERE idx = $1", index))
            finally:
                await conn.close()

        return asyncio.run(go())

    def edit(self, index: int, entry: bytes) -> None:
        self.run(
            *self.drop_triggers(),
            ("UPDATE audit_log SET entry = ?, leaf_hash = ? WHERE idx = ?", (entry, leaf_hash(entry), index)),
        )

    def swap(self, a: int, b: int) -> None:
        ea, eb = self.row(a), self.row(b)
        self.run(
            *self.drop_triggers(),
            ("UPDATE audit_log SET entry = ?, leaf_hash = ? WHERE idx = ?", (eb, leaf_hash(eb), a)),
            ("UPDATE audit_log SET entry = ?, leaf_hash = ? WHERE idx = ?", (ea, leaf_hash(ea), b)),
        )

    def delete(self, index: int) -> None:
        """Remove a row and close the numbering, as a careful attacker would."""
        self.run(
            *self.drop_triggers(),
            ("DELETE FROM audit_log WHERE idx = ?", (index,)),
            ("UPDATE audit_log SET idx = -idx WHERE idx > ?", (index,)),
            ("UPDATE audit_log SET idx = -idx - 1 WHERE idx < 0", ()),
            ("UPDATE log_state SET size = size - 1", ()),
        )

    def insert(self, index: int, entry: bytes) -> None:
        """Put a row at ``index``, moving the later ones up."""
        self.run(
            *self.drop_triggers(),
            ("UPDATE audit_log SET idx = -idx WHERE idx >= ?", (index,)),
            ("UPDATE audit_log SET idx = -idx + 1 WHERE idx < 0", ()),
            ("INSERT INTO audit_log (idx, at_ms, entry, leaf_hash) VALUES (?, ?, ?, ?)", (
                index, json.loads(entry)["at_ms"], entry, leaf_hash(entry))),
            ("UPDATE log_state SET size = size + 1", ()),
        )  # fmt: skip


def traffic(relay: RelayProcess) -> dict[str, int]:
    """Messages and receipts, each covered by a tree head of its own, so heads pin single entries.
    Returns log indexes by name."""
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    where: dict[str, int] = {}
    wait_for_head(relay)
    for n in range(3):
        envelope, answer = delhi.send_text(["islamabad"], f"message {n}")
        where[f"envelope{n}"] = answer["log_index"]
        wait_for_head(relay)
        posted = isb.send_receipt(isb.receipt(envelope))
        assert posted.status_code == 201
        where[f"receipt{n}"] = posted.json()["log_index"]
        wait_for_head(relay)
    return where


@pytest.fixture(params=BACKENDS)
def tampered(request: pytest.FixtureRequest, relay_factory, tmp_path: Path):
    relay = relay_factory(request.param, tree_head_interval_s=0.1)
    where = traffic(relay)
    clean = tmp_path / "clean.jsonl"
    export(relay, clean)
    code, report = verify(clean)
    assert code == 0 and report["ok"], report["problems"]
    return relay, where, Attacker(relay), tmp_path


def first(report: dict[str, Any]) -> tuple[str, int | None, int | None]:
    p = report["first_problem"]
    return p["kind"], p["index"], p["last_index"]


def test_an_edited_row_is_named(tampered):
    relay, where, attacker, tmp = tampered
    index = where["receipt1"]
    entry = json.loads(attacker.row(index))
    entry["at_ms"] -= 60_000  # the time of logging: covered by no signature, only by the tree
    attacker.edit(index, dump_json(entry))
    export(relay, tmp / "t.jsonl")
    code, report = verify(tmp / "t.jsonl")
    assert code == 1 and first(report) == ("edited", index, None)
    # Restarted, the relay refuses to run on a log that no longer matches the heads it signed.
    relay.stop()
    with pytest.raises(RuntimeError, match="exited"):
        relay.start()


def test_an_edited_envelope_copy_is_named(tampered):
    relay, where, attacker, tmp = tampered
    index = where["envelope1"]
    entry = json.loads(attacker.row(index))
    entry["precedence"] = "FLASH"
    attacker.edit(index, dump_json(entry))
    export(relay, tmp / "t.jsonl")
    code, report = verify(tmp / "t.jsonl")
    assert code == 1 and first(report)[:2] == ("edited", index)


def test_a_deleted_row_is_named(tampered):
    relay, where, attacker, tmp = tampered
    index = where["envelope1"]
    attacker.delete(index)
    export(relay, tmp / "t.jsonl")
    code, report = verify(tmp / "t.jsonl")
    assert code == 1 and first(report)[:2] == ("deleted", index)


def test_reordered_rows_are_named(tampered):
    relay, where, attacker, tmp = tampered
    attacker.swap(where["envelope2"], where["receipt2"])
    export(relay, tmp / "t.jsonl")
    code, report = verify(tmp / "t.jsonl")
    assert code == 1 and first(report)[:2] == ("reordered", where["envelope2"])


def test_an_inserted_row_is_named(tampered):
    relay, where, attacker, tmp = tampered
    index = where["receipt1"]
    attacker.insert(index + 1, attacker.row(index))  # a replayed copy of a genuine receipt
    export(relay, tmp / "t.jsonl")
    code, report = verify(tmp / "t.jsonl")
    kind, at, _ = first(report)
    assert code == 1 and kind == "inserted" and at in (index, index + 1)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_exported_file_edited_by_hand_is_caught_and_the_clean_one_passes(relay_factory, tmp_path, backend):
    relay = relay_factory(backend, tree_head_interval_s=0.1)
    where = traffic(relay)
    path = tmp_path / "log.jsonl"
    summary = export(relay, path)
    assert summary["entries"] == wait_for_head(relay).size
    code, report = verify(path)
    assert code == 0 and report["ok"]
    counts = next(iter(report["channels"].values()))
    assert counts["delhi"]["sent"] == 3 and counts["islamabad"]["receipts_issued"] == {"delivered": 3}
    # Human output: a summary, then OK.
    human = hotline("audit", "verify", str(path))
    assert human.returncode == 0 and "OK" in human.stdout and "signatures" in human.stdout
    lines = path.read_bytes().splitlines(keepends=True)
    index = where["receipt0"]
    pos = next(i for i, ln in enumerate(lines) if ln.startswith(b'{"index":%d,' % index))
    lines[pos] = lines[pos].replace(b'"kind":"delivered"', b'"kind":"acknowledged"', 1)
    path.write_bytes(b"".join(lines))
    code, report = verify(path)
    assert code == 1 and first(report)[:2] == ("edited", index)
    human = hotline("audit", "verify", str(path))
    assert human.returncode == 1 and f"FIRST BAD index {index}: edited" in human.stdout


def test_an_operator_exports_its_channel_with_the_others_as_leaf_hashes(relay_factory, tmp_path):
    relay = relay_factory("sqlite", tree_head_interval_s=0.1)
    setup_channel(relay, {"delhi": "principal"})  # another channel, withheld from this operator
    channel, invites = relay.create_channel(
        {"delhi": "principal", "islamabad": "principal", "auditor": "operator"}
    )
    home = tmp_path / "home"
    enrolled = hotline(
        "enroll",
        invites["auditor"]["code"],
        "--relay",
        relay.url,
        "--profile",
        "auditor",
        "--json",
        home=home,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    wait_for_head(relay)
    out = tmp_path / "auditor.jsonl"
    done = hotline("audit", "export", "--profile", "auditor", "--out", str(out), "--json", home=home)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["channel"] == channel and summary["withheld"] > 0
    code, report = verify(out)
    assert code == 0, report["problems"]
    assert report["channel"] == channel and set(report["channels"]) == {channel}
    for line in out.read_bytes().splitlines():
        if line.startswith(b'{"index":') and b'"entry":' in line:
            assert parse_entry(line[line.index(b'"entry":') + 8 : -1]).channel == channel
    # A desk's view of the head agrees with the file.
    head = hotline("audit", "head", "--profile", "auditor", "--json", home=home)
    assert head.returncode == 0, head.stderr
    head_file = tmp_path / "head.json"
    head_file.write_text(head.stdout)
    agreed = hotline("audit", "verify", str(out), "--tree-head", str(head_file), "--json")
    assert agreed.returncode == 0, agreed.stdout
    assert EntryType.DEVICE_ENROLLED.value in report["types"]
