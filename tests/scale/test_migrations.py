"""Schema migrations: safe when replicas and upgrades start at once, and forward from every revision.

Forward from every revision: a "golden" relay database is made by a real relay — channels, members,
an enrolled and a revoked device, messages of several precedences, delivered and acknowledged
receipts, acked and pending inbox items, tree heads. For each revision in the Alembic history, a
fresh database is migrated to that revision, the golden rows are loaded into the tables and columns
that revision has, and a relay started on it (which upgrades it to head) must serve them: pending
items decrypt to the original texts, old receipts are listed, a retried envelope gets its original
receipt, the log continues at the next index, and every tree head, old and new, is consistent.

A new migration is covered by this test without a change here — unless it adds a table the golden
scenario leaves empty, which fails ``test_the_golden_database_fills_every_table`` until the scenario
below is taught to fill it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, delete, func, insert, select, text
from sqlalchemy.engine import Connection

from hotline.protocol import Envelope
from hotline.protocol.encoding import b64d
from hotline.protocol.model import Precedence
from hotline.protocol.receipts import ReceiptKind
from hotline.relay import migrate
from hotline.relay.db import WRITE_OPTION, create_engine
from tests.conftest import BACKENDS
from tests.relay.support import HOTLINE, REPO, Desk, RelayProcess, error_code, message_id, setup_channel
from tests.scale.support import add_replica, check_audit, read_audit

pytestmark = [pytest.mark.slow]

# Tables a finished scenario may leave empty: single-use challenges are deleted when used.
TRANSIENT_TABLES = {"challenges"}
# The tables of revision 0001: the golden scenario must fill each of them.
FIRST_SCHEMA_TABLES = {
    "channels",
    "members",
    "devices",
    "invites",
    "prekeys",
    "tokens",
    "envelopes",
    "receipts",
    "inbox_items",
    "audit_log",
    "tree_heads",
    "log_state",
}


def revisions() -> list[str]:
    """Every revision in the Alembic history, oldest first."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head_revision() -> str:
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert head is not None
    return head


def _reflect(conn: Connection) -> MetaData:
    metadata = MetaData()
    metadata.reflect(conn)
    return metadata


async def dump_rows(db_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table but Alembic's, by table."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            metadata = await conn.run_sync(_reflect)
            out = {}
            for table in metadata.sorted_tables:
                if table.name != "alembic_version":
                    out[table.name] = [dict(r) for r in (await conn.execute(select(table))).mappings()]
            return out
    finally:
        await engine.dispose()


async def load_at_revision(db_url: str, revision: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Migrate an empty database to ``revision`` and load ``rows`` into the tables and columns it has."""
    engine = create_engine(db_url)
    try:
        await migrate.upgrade(engine, revision)
        async with engine.connect() as conn:
            conn = await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                metadata = await conn.run_sync(_reflect)
                for table in metadata.sorted_tables:
                    data = rows.get(table.name)
                    if table.name == "alembic_version" or not data:
                        continue
                    columns = {c.name for c in table.columns}
                    if (await conn.execute(select(func.count()).select_from(table))).scalar_one():
                        await conn.execute(delete(table))  # rows the migration seeded (log_state)
                    await conn.execute(
                        insert(table), [{k: v for k, v in r.items() if k in columns} for r in data]
                    )
                if engine.dialect.name == "postgresql":
                    for table in metadata.sorted_tables:
                        if "id" in table.columns and table.name in rows and rows[table.name]:
                            await conn.execute(
                                text(
                                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                    f"(SELECT max(id) FROM {table.name}))"
                                )
                            )
    finally:
        await engine.dispose()


@dataclass
class Golden:
    """A relay database made by a real relay, and what the test knows about its contents."""

    backend: str
    data_dir: Path
    db_url: str
    rows: dict[str, list[dict[str, Any]]]
    channel: str
    desks: dict[str, Desk]
    envelopes: dict[str, Envelope]  # name -> envelope
    texts: dict[str, str]
    log_indexes: dict[str, int]
    log_size: int
    public_key: bytes
    extra: dict[str, Any] = field(default_factory=dict)


def _db_url(relay: RelayProcess) -> str:
    return relay.db_url or f"sqlite+aiosqlite:///{(relay.data_dir / 'relay.db').resolve()}"


def make_golden(relay_factory: Any, backend: str) -> Golden:
    relay = relay_factory(backend, tree_head_interval_s=0.2)
    channel, desks = setup_channel(
        relay,
        {"delhi": "principal", "islamabad": "principal", "washington": "facilitator"},
        devices={"islamabad": ["phone"]},
    )
    delhi, isb, wdc = desks["delhi"], desks["islamabad"], desks["washington"]
    r = relay.admin.post(f"/v1/admin/channels/{channel}/devices/islamabad/phone/revoke")
    assert r.status_code == 200, r.text
    del desks["islamabad/phone"]
    for desk in desks.values():
        desk.ack(i["id"] for i in desk.inbox(500))
    texts = {
        "m1": "FLASH: clarify the launch reported at 04:10",
        "m2": "ROUTINE: weekly DGMO call moves to Tuesday",
        "m3": "IMMEDIATE: restraint notice for sector 7",
    }
    envelopes, indexes = {}, {}
    for name, to, precedence in (
        ("m1", ["islamabad"], Precedence.FLASH),
        ("m2", ["islamabad", "washington"], Precedence.ROUTINE),
        ("m3", ["islamabad"], Precedence.IMMEDIATE),
    ):
        envelope, answer = delhi.send_text(to, texts[name], precedence=precedence)
        envelopes[name], indexes[name] = envelope, answer["log_index"]
    # Islamabad reads m1 (delivered, acknowledged, item acked); m2 and m3 stay pending, as does
    # m2 for Washington; Delhi's receipt items stay pending too.
    [item] = [i for i in isb.inbox() if message_id(i) == envelopes["m1"].header.message_id]
    for kind in (ReceiptKind.DELIVERED, ReceiptKind.ACKNOWLEDGED):
        assert isb.send_receipt(isb.receipt(envelopes["m1"], kind)).status_code == 201
    isb.ack([item["id"]])
    assert len(wdc.inbox()) == 1
    with relay.client() as c:
        size = c.get("/v1/admin/audit", headers={"Authorization": f"Bearer {relay.admin_token}"}).json()[
            "size"
        ]
        for _ in range(100):
            if c.get("/v1/audit/tree-head").json()["size"] == size:
                break
            threading.Event().wait(0.1)
    public_key = b64d(relay.info()["public_key"], field="public_key")
    relay.stop()
    db_url = _db_url(relay)
    rows = asyncio.run(dump_rows(db_url))
    return Golden(
        backend=backend,
        data_dir=relay.data_dir,
        db_url=db_url,
        rows=rows,
        channel=channel,
        desks=desks,
        envelopes=envelopes,
        texts=texts,
        log_indexes=indexes,
        log_size=size,
        public_key=public_key,
    )


@pytest.fixture(scope="module", params=BACKENDS)
def golden(request: pytest.FixtureRequest, relay_factory: Any, pg_databases: Any) -> Golden:
    if request.param == "postgres":
        pg_databases.require()
    return make_golden(relay_factory, request.param)


def test_the_golden_database_fills_every_table(golden: Golden) -> None:
    """Every table of the first schema holds rows; later tables left empty are named in a warning
    (their owners extend ``make_golden`` as their features settle)."""
    empty = {name for name, rows in golden.rows.items() if not rows and name not in TRANSIENT_TABLES}
    required = sorted(empty & FIRST_SCHEMA_TABLES)
    assert not required, f"the golden scenario leaves {required} empty: fill them in make_golden()"
    if empty:
        warnings.warn(
            f"upgrade tests run with no rows in {sorted(empty)}: extend make_golden() in {__file__}",
            stacklevel=1,
        )


@pytest.mark.parametrize("revision", revisions())
def test_a_database_at_each_revision_upgrades_to_head_and_is_served(
    golden: Golden, revision: str, tmp_path: Path, pg_databases: Any
) -> None:
    if golden.backend == "postgres":
        db_url = pg_databases.create()
    else:
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    asyncio.run(load_at_revision(db_url, revision, golden.rows))

    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    for name in ("relay.key", "admin.token"):
        shutil.copy2(golden.data_dir / name, data_dir / name)
    relay = RelayProcess(data_dir, db_url, golden.backend, {"HOTLINE_TREE_HEAD_INTERVAL_S": "0.2"})
    relay.start()  # upgrades the schema to head on start
    try:
        _check_served(golden, relay)
    finally:
        relay.stop()
    state = asyncio.run(read_audit(db_url))
    check_audit(state, golden.public_key)
    assert any(head.size == golden.log_size for head in state.heads), "the old tree heads survived"


def _check_served(golden: Golden, relay: RelayProcess) -> None:
    assert b64d(relay.info()["public_key"], field="public_key") == golden.public_key
    desks = {}
    for name, old in golden.desks.items():
        desk = Desk(relay, golden.channel, old.keys, old.role)
        desk.seq = old.seq
        desks[name] = desk
    delhi, isb, wdc = desks["delhi"], desks["islamabad"], desks["washington"]
    for desk in (delhi, isb, wdc):
        desk.login()
    with relay.client() as c:
        r = c.post(
            "/v1/auth/challenge",
            json={"channel": golden.channel, "member": "islamabad", "device": "phone"},
        )
        assert (r.status_code, error_code(r)) == (403, "device_revoked")

    # Pending items survived, in precedence order, and open to the original texts.
    pending = isb.inbox()
    wanted = [golden.envelopes[m].header.message_id for m in ("m3", "m2")]  # IMMEDIATE before ROUTINE
    assert [message_id(i) for i in pending if i["kind"] == "envelope"] == wanted
    assert [isb.open(i) for i in pending if i["kind"] == "envelope"] == [
        golden.texts["m3"],
        golden.texts["m2"],
    ]
    assert [message_id(i) for i in wdc.inbox()] == [golden.envelopes["m2"].header.message_id]
    assert [i["kind"] for i in delhi.inbox()] == ["receipt", "receipt"]

    m1 = golden.envelopes["m1"].header.message_id
    r = delhi.get(f"/messages/{m1}/receipts")
    assert r.status_code == 200 and len(r.json()["receipts"]) == 3

    # A retry of an old envelope gets its original receipt; a new one continues the log.
    r = delhi.send(golden.envelopes["m1"])
    assert (r.status_code, r.json()["duplicate"], r.json()["log_index"]) == (
        200,
        True,
        golden.log_indexes["m1"],
    )
    envelope, answer = delhi.send_text(["islamabad"], "after the upgrade")
    assert answer["log_index"] == golden.log_size
    assert message_id(isb.inbox()[0]) in {envelope.header.message_id, *wanted}
    with relay.client() as c:
        for _ in range(100):
            if c.get("/v1/audit/tree-head").json()["size"] > golden.log_size:
                break
            threading.Event().wait(0.1)
    for desk in desks.values():
        desk.close()


@pytest.mark.postgres
def test_upgrades_and_replicas_started_together_on_a_fresh_database_all_succeed(
    pg_databases: Any, tmp_path: Path
) -> None:
    db_url = pg_databases.create()
    data_dir = tmp_path / "data"
    # The relay key and admin token come first (docs/OPERATIONS.md); then everything starts at once.
    init = subprocess.run(
        [HOTLINE, "identity", "init", "--data-dir", str(data_dir)], cwd=REPO, capture_output=True, timeout=60
    )
    assert init.returncode == 0, init.stderr.decode()
    upgrades = [
        subprocess.Popen(
            [HOTLINE, "db", "upgrade", "--db", db_url, "--data-dir", str(data_dir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    first = RelayProcess(data_dir, db_url, "postgres", {"HOTLINE_LOG_LEVEL": "warning"})
    first.log_path = tmp_path / "relay-a.log"
    replicas = [first, add_replica(first, "b"), add_replica(first, "c")]
    failures: list[BaseException] = []

    def start(relay: RelayProcess) -> None:
        try:
            relay.start()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(r,)) for r in replicas]
    try:
        for thread in threads:
            thread.start()
        for proc in upgrades:
            out, _ = proc.communicate(timeout=90)
            assert proc.returncode == 0, out.decode()
        for thread in threads:
            thread.join(90)
        assert not failures, failures
        infos = [r.info() for r in replicas]
        assert infos[0] == infos[1] == infos[2]
        for relay in replicas:
            assert "Traceback" not in relay.log_path.read_text(), relay.log_tail()
        _, desks = setup_channel(first, {"delhi": "principal", "islamabad": "principal"})
        desks["islamabad"].relay = replicas[2]
        desks["islamabad"].close()
        envelope, _ = desks["delhi"].send_text(["islamabad"], "all up")
        assert message_id(desks["islamabad"].inbox()[0]) == envelope.header.message_id
    finally:
        for relay in replicas:
            relay.stop()

    async def schema_state() -> tuple[list[str], int]:
        engine = create_engine(db_url)
        try:
            async with engine.connect() as conn:
                versions = [
                    r[0] for r in (await conn.execute(text("SELECT version_num FROM alembic_version")))
                ]
                log_rows = (await conn.execute(text("SELECT count(*) FROM log_state"))).scalar_one()
                return versions, int(log_rows)
        finally:
            await engine.dispose()

    assert asyncio.run(schema_state()) == ([head_revision()], 1)
