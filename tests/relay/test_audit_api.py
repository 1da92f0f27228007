"""The audit API on a real relay (SQLite and PostgreSQL): tree heads, proofs that verify with the RFC 9162
code, who may read what, what is logged, and the log staying append-only below the application."""

from __future__ import annotations

import ast
import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from hotline.protocol.audit import EntryType, parse_entry
from hotline.protocol.auditlog import AuditLogVerifier, entry_line, record_line
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.merkle import root_from_leaf_hashes
from hotline.protocol.receipts import Receipt
from hotline.protocol.statements import TreeHead
from tests.conftest import BACKENDS
from tests.relay.audit_support import (
    all_rows,
    check_consistency,
    check_inclusion,
    relay_key,
    wait_for_head,
)
from tests.relay.support import Desk, RelayProcess, error_code, setup_channel

REPO = Path(__file__).resolve().parents[2]
MEMBERS = {"delhi": "principal", "islamabad": "principal", "washington": "facilitator", "auditor": "operator"}


@pytest.fixture(scope="module", params=BACKENDS)
def fast_relay(request: pytest.FixtureRequest, relay_factory) -> RelayProcess:
    """A relay that signs a tree head within 0.1 s of the log growing."""
    return relay_factory(request.param, tree_head_interval_s=0.1)


def test_proofs_served_by_the_relay_verify_with_the_rfc_9162_code(fast_relay):
    relay = fast_relay
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    heads = [wait_for_head(relay)]
    for n in range(3):
        desks["delhi"].send_text(["islamabad"], f"message {n}")
        heads.append(wait_for_head(relay))
    # Every signed head is the root of the entries as stored (an independent recomputation).
    rows = all_rows(relay)
    leaves = [b64d(r["leaf_hash"], field="leaf") for r in rows]
    for head in heads:
        assert root_from_leaf_hashes(leaves[: head.size]) == head.root
    # Consistency between every pair of heads, as the admin and as a device.
    for i, old in enumerate(heads):
        for new in heads[i:]:
            q = {"old_size": old.size, "new_size": new.size}
            check_consistency(relay.admin.get("/v1/admin/audit/consistency", params=q).json(), old, new)
            check_consistency(desks["delhi"].get("/audit/consistency", params=q).json(), old, new)
    # Inclusion of every entry in the newest head.
    newest = heads[-1]
    for index in range(newest.size):
        answer = relay.admin.get(
            "/v1/admin/audit/inclusion", params={"index": index, "size": newest.size}
        ).json()
        raw = check_inclusion(answer, newest)
        assert b64e(raw) == rows[index]["entry"]
        if answer["tree_head"] is not None:
            assert TreeHead.from_json(answer["tree_head"]).root == newest.root


def test_tree_heads_are_listed_and_found_by_size(fast_relay):
    relay = fast_relay
    setup_channel(relay, {"delhi": "principal"})
    head = wait_for_head(relay)
    with relay.client() as c:
        listed = c.get("/v1/audit/tree-heads", params={"start_size": head.size}).json()["tree_heads"]
        assert listed[0]["size"] == head.size
        at = c.get(f"/v1/audit/tree-heads/{head.size}").json()
        assert TreeHead.from_json(at["tree_head"]).root == head.root == b64d(at["root"], field="root")
        assert error_code(c.get(f"/v1/audit/tree-heads/{head.size + 10_000}")) == "not_found"
        assert error_code(c.get("/v1/audit/tree-heads", params={"limit": 5000})) == "malformed"


def test_a_sender_proves_its_message_and_a_recipient_its_receipt(fast_relay):
    relay = fast_relay
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    envelope, answer = delhi.send_text(["islamabad"], "prove me")
    relay_receipt = Receipt.from_json(answer["receipt"])
    relay_receipt.verify(relay_key(relay))
    assert relay_receipt.log_index == answer["log_index"]
    receipt = isb.receipt(envelope)
    posted = isb.send_receipt(receipt)
    assert posted.status_code == 201
    head = wait_for_head(relay)

    by_id = delhi.get("/audit/inclusion", params={"message_id": envelope.header.message_id}).json()
    entry = parse_entry(check_inclusion(by_id, head))
    assert by_id["index"] == relay_receipt.log_index
    assert entry.type is EntryType.ENVELOPE_ACCEPTED and entry.fields["envelope_hash"] == b64e(envelope.hash)
    # The recipient may prove the message it received, and the receipt it issued, by its hash.
    assert isb.get("/audit/inclusion", params={"message_id": envelope.header.message_id}).status_code == 200
    mine = isb.get("/audit/inclusion", params={"receipt_hash": b64e(receipt.hash)}).json()
    assert mine["index"] == posted.json()["log_index"]
    assert parse_entry(check_inclusion(mine, head)).fields["receipt"] == receipt.to_json()
    # The sender may prove the receipt about its message.
    assert delhi.get("/audit/inclusion", params={"index": mine["index"]}).status_code == 200
    # Bad questions.
    assert (
        error_code(delhi.get("/audit/inclusion", params={"index": head.size, "size": head.size}))
        == "malformed"
    )
    assert error_code(delhi.get("/audit/inclusion")) == "malformed"
    assert error_code(
        delhi.get("/audit/inclusion", params={"index": 0, "message_id": envelope.header.message_id})
    )
    assert error_code(delhi.get("/audit/consistency", params={"old_size": 3, "new_size": 2})) == "malformed"
    too_big = delhi.get("/audit/consistency", params={"old_size": 0, "new_size": head.size + 1000})
    assert error_code(too_big) == "not_found"


def test_who_may_read_what(fast_relay):
    relay = fast_relay
    channel, desks = setup_channel(relay, MEMBERS)
    other_channel, _ = setup_channel(relay, {"delhi": "principal"})
    delhi, isb, wash, auditor = desks["delhi"], desks["islamabad"], desks["washington"], desks["auditor"]
    envelope, answer = delhi.send_text(["islamabad"], "not for washington")
    index = answer["log_index"]
    wait_for_head(relay)
    rows = all_rows(relay)
    kinds = {r["index"]: parse_entry(b64d(r["entry"], field="e")) for r in rows}
    own_enrollment = next(
        i for i, e in kinds.items() if e.channel == channel and e.type is EntryType.DEVICE_ENROLLED
        and e.fields["member"] == "washington"
    )  # fmt: skip
    delhi_enrollment = next(
        i for i, e in kinds.items() if e.channel == channel and e.type is EntryType.DEVICE_ENROLLED
        and e.fields["member"] == "delhi"
    )  # fmt: skip
    foreign = next(i for i, e in kinds.items() if e.channel == other_channel)

    # Principals and facilitators: proofs about their own member only; no listing.
    assert delhi.get("/audit/inclusion", params={"index": index}).status_code == 200
    assert isb.get("/audit/inclusion", params={"index": index}).status_code == 200
    assert error_code(wash.get("/audit/inclusion", params={"index": index})) == "not_found"
    assert wash.get("/audit/inclusion", params={"index": own_enrollment}).status_code == 200
    assert error_code(wash.get("/audit/inclusion", params={"index": delhi_enrollment})) == "not_found"
    assert error_code(delhi.get("/audit/inclusion", params={"index": foreign})) == "not_found"
    for desk in (delhi, isb, wash):
        assert error_code(desk.get("/audit/entries")) == "forbidden"
        assert desk.get("/audit/consistency", params={"old_size": 0}).status_code == 200

    # Operators: every entry of their channel, other channels as leaf hashes only; never content.
    assert auditor.get("/audit/inclusion", params={"index": index}).status_code == 200
    assert error_code(auditor.get("/audit/inclusion", params={"index": foreign})) == "not_found"
    page = auditor.get("/audit/entries", params={"start": 0, "limit": 1000}).json()
    assert page["channel"] == channel
    for row in page["entries"]:
        if "entry" in row:
            assert parse_entry(b64d(row["entry"], field="e")).channel == channel
        else:
            assert set(row) == {"index", "leaf_hash"}
    assert any("entry" not in r for r in page["entries"])
    logged = next(r for r in page["entries"] if r["index"] == index)
    assert Receipt.from_json(logged["accepted"]).log_index == index
    assert b64e(envelope.body) not in str(page)

    # The admin: everything, and one channel on request.
    everything = relay.admin.get("/v1/admin/audit/entries", params={"limit": 1000}).json()
    assert all("entry" in r for r in everything["entries"])
    one = relay.admin.get("/v1/admin/audit/entries", params={"limit": 1000, "channel": channel}).json()
    assert [r["index"] for r in one["entries"] if "entry" in r] == [
        r["index"] for r in page["entries"] if "entry" in r
    ]

    # Nobody else.
    with relay.client() as anonymous:
        assert anonymous.get(f"/v1/channels/{channel}/audit/entries").status_code == 401
        assert anonymous.get("/v1/admin/audit/entries").status_code == 401
        assert anonymous.get("/v1/admin/audit/consistency", params={"old_size": 0}).status_code == 401
    assert error_code(auditor.get("/audit/entries", params={"limit": 5000})) == "malformed"


def test_every_security_relevant_event_is_logged(fast_relay):
    relay = fast_relay
    channel, desks = setup_channel(
        relay, {"delhi": "principal", "islamabad": "principal"}, {"delhi": ["phone"]}
    )
    delhi, isb = desks["delhi"], desks["islamabad"]
    assert relay.admin.post(
        f"/v1/admin/channels/{channel}/members", json={"member": "nsa", "role": "principal"}
    )
    envelope, _ = delhi.send_text(["islamabad"], "logged")
    assert isb.send_receipt(isb.receipt(envelope)).status_code == 201
    with relay.client() as c:  # a refused log-in
        who = {"channel": channel, "member": "islamabad", "device": "laptop"}
        challenge = c.post("/v1/auth/challenge", json=who).json()["challenge"]
        c.post("/v1/auth/token", json={**who, "challenge": challenge, "signature": b64e(bytes(64))})
    assert delhi.post("/devices/delhi/phone/revoke").status_code == 200  # by a device of the member
    assert relay.admin.post(f"/v1/admin/channels/{channel}/members/nsa/revoke").status_code == 200
    entries = [parse_entry(b64d(r["entry"], field="e")) for r in all_rows(relay)]
    mine = [e for e in entries if e.channel == channel]
    assert {e.type for e in mine} >= {
        EntryType.CHANNEL_CREATED,
        EntryType.MEMBER_ADDED,
        EntryType.INVITE_CREATED,
        EntryType.DEVICE_ENROLLED,
        EntryType.PREKEYS_PUBLISHED,
        EntryType.ENVELOPE_ACCEPTED,
        EntryType.RECEIPT,
        EntryType.AUTH_REFUSED,
        EntryType.DEVICE_REVOKED,
        EntryType.MEMBER_REVOKED,
    }
    revoked = next(e for e in mine if e.type is EntryType.DEVICE_REVOKED)
    assert revoked.fields == {"member": "delhi", "device": "phone", "by": "delhi/laptop"}
    assert next(e for e in mine if e.type is EntryType.MEMBER_REVOKED).fields["by"] == "admin"


# --- append-only below the application ----------------------------------------------------------

AUDIT_TABLES = ("audit_log", "tree_heads")


def rewrites_of_the_log(source: str) -> list[int]:
    """Line numbers where ``source`` builds or writes an UPDATE/DELETE/TRUNCATE of an audit table."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        # SQLAlchemy Core: update(t.audit_log), delete(t.tree_heads), t.audit_log.update()/.delete()
        if isinstance(node, ast.Call):
            func = node.func
            names = [ast.unparse(a) for a in node.args]
            if (
                isinstance(func, ast.Name)
                and func.id in {"update", "delete"}
                and any(n.split(".")[-1] in AUDIT_TABLES for n in names)
            ):
                lines.append(node.lineno)
            if (
                isinstance(func, ast.Attribute)
                and func.attr in {"update", "delete"}
                and ast.unparse(func.value).split(".")[-1] in AUDIT_TABLES
            ):
                lines.append(node.lineno)
        # Raw SQL in strings.
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = " ".join(node.value.upper().split())
            for table in (t.upper() for t in AUDIT_TABLES):
                if f"UPDATE {table}" in text or f"DELETE FROM {table}" in text or f"TRUNCATE {table}" in text:
                    lines.append(node.lineno)
    return lines


def test_the_rewrite_finder_finds_rewrites():
    source = """
update(t.audit_log).values(at_ms=0)
delete(t.tree_heads)
t.audit_log.delete()
conn.execute(text("delete  from audit_log"))
update(t.log_state).values(size=1)  # the append counter is not the log
"""
    assert sorted(rewrites_of_the_log(source)) == [2, 3, 4, 5]


def test_no_code_path_updates_or_deletes_an_audit_row():
    offenders = {
        str(path.relative_to(REPO)): found
        for path in sorted((REPO / "hotline").rglob("*.py"))
        if (found := rewrites_of_the_log(path.read_text()))
    }
    assert offenders == {}


def test_the_append_only_triggers_are_in_the_database(fast_relay):
    relay = fast_relay
    setup_channel(relay, {"delhi": "principal"})
    if relay.backend == "sqlite":
        db = sqlite3.connect(relay.data_dir / "relay.db")
        try:
            triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        finally:
            db.close()
        assert triggers >= {f"{t}_no_{a}" for t in AUDIT_TABLES for a in ("update", "delete")}
    else:
        import asyncpg

        async def triggers() -> set[tuple[str, str]]:
            conn = await asyncpg.connect(relay.db_url.replace("postgresql+asyncpg://", "postgresql://", 1))
            try:
                rows = await conn.fetch(
                    "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal"
                )
            finally:
                await conn.close()
            return {(r[0], r[1]) for r in rows}

        found = asyncio.run(triggers())
        for table in AUDIT_TABLES:
            assert (f"{table}_no_rewrite", table) in found and (f"{table}_no_truncate", table) in found


@pytest.mark.slow
def test_two_relay_processes_appending_at_once_make_one_log(relay_factory):
    """Appends serialize on the log-state row: two replicas on one PostgreSQL database, each taking
    envelopes at the same time, still produce one gap-free log that verifies offline."""
    a = relay_factory("postgres", tree_head_interval_s=0.1)
    b = RelayProcess(a.data_dir, a.db_url, "postgres", a.env)
    b.start()
    try:
        _, desks = setup_channel(a, {"delhi": "principal", "islamabad": "principal"})
        delhi, isb = desks["delhi"], desks["islamabad"]
        isb.relay = b
        isb.close()
        errors: list[str] = []

        def send(desk: Desk, to: str, n: int) -> None:
            for k in range(n):
                r = desk.send(desk.seal([to], f"{desk.member} {k}"))
                if r.status_code != 201:
                    errors.append(r.text)

        threads = [threading.Thread(target=send, args=(delhi, "islamabad", 25)), threading.Thread(
            target=send, args=(isb, "delhi", 25))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        head = wait_for_head(a)
        rows = all_rows(a)
        assert [r["index"] for r in rows] == list(range(len(rows)))
        verifier = AuditLogVerifier()
        key = relay_key(a)
        from hotline.protocol.auditlog import EXPORT_FORMAT, EXPORT_VERSION, relay_id_for_key

        verifier.feed(
            record_line(
                "header",
                {
                    "format": EXPORT_FORMAT,
                    "v": EXPORT_VERSION,
                    "relay_id": relay_id_for_key(key),
                    "relay_public_key": b64e(key),
                    "channel": None,
                    "exported_at_ms": 0,
                    "size": head.size,
                    "source": None,
                },
            )
        )
        for r in rows[: head.size]:
            verifier.feed(entry_line(r["index"], b64d(r["entry"], field="e")))
        verifier.feed(record_line("tree-head", {"tree_head": head.to_json()}))
        verifier.feed(
            record_line("end", {"entries": head.size, "tree_heads": 1, "accepted": 0, "key_events": 0})
        )
        report = verifier.finish()
        assert report.ok, report.problems
        assert report.signatures["envelope"] == 50
    finally:
        b.stop()
