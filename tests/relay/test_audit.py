"""The audit log: what is logged (metadata and signatures, never content), tree heads, append-only tables."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from hotline.protocol.audit import EntryType, parse_entry, verify_envelope_entry
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.merkle import leaf_hash, root_from_leaf_hashes
from hotline.protocol.statements import TreeHead
from tests.relay.support import error_code, setup_channel


def all_entries(relay) -> list[dict]:
    entries: list[dict] = []
    while True:
        page = relay.admin.get("/v1/admin/audit", params={"start": len(entries), "limit": 1000}).json()
        entries += page["entries"]
        if len(entries) >= page["size"]:
            return entries


def test_an_accepted_envelope_is_logged_verifiably_without_its_content(relay):
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi = desks["delhi"]
    envelope, answer = delhi.send_text(["islamabad"], "the content is secret")
    entries = all_entries(relay)
    logged = entries[answer["log_index"]]
    assert logged["index"] == answer["log_index"]
    raw = b64d(logged["entry"], field="entry")
    assert b64d(logged["leaf_hash"], field="leaf_hash") == leaf_hash(raw)
    entry = parse_entry(raw)
    assert entry.type is EntryType.ENVELOPE_ACCEPTED
    assert entry.fields["message_id"] == envelope.header.message_id
    verify_envelope_entry(entry, delhi.keys.signing_public_key)
    assert b64e(envelope.body) not in raw.decode()
    assert all(b64e(k) not in raw.decode() for k in envelope.wrapped_keys)


def test_enrollment_keys_and_refused_logins_are_logged(relay):
    channel, invites = relay.create_channel({"delhi": "principal"})
    code = invites["delhi"]["code"]
    from tests.relay.support import Desk

    delhi = Desk.enroll(relay, invites["delhi"])
    with relay.client() as c:
        who = {"channel": channel, "member": "delhi", "device": "laptop"}
        challenge = c.post("/v1/auth/challenge", json=who).json()["challenge"]
        r = c.post("/v1/auth/token", json={**who, "challenge": challenge, "signature": b64e(bytes(64))})
        assert error_code(r) == "bad_signature"
    mine = [parse_entry(b64d(e["entry"], field="e")) for e in all_entries(relay)]
    mine = [e for e in mine if e.channel == channel]
    assert [e.type for e in mine] == [
        EntryType.CHANNEL_CREATED,
        EntryType.INVITE_CREATED,
        EntryType.DEVICE_ENROLLED,
        EntryType.PREKEYS_PUBLISHED,
        EntryType.AUTH_REFUSED,
    ]
    assert mine[2].fields["signing_key"] == b64e(delhi.keys.signing_public_key)
    assert mine[3].fields["prekeys"] == [p.signed.to_json() for p in delhi.keys.prekeys.values()]
    assert mine[4].fields == {"member": "delhi", "device": "laptop", "reason": "bad_signature"}
    assert all(code not in e.raw.decode() for e in mine)  # only the code's hash is logged


def test_tree_heads_are_signed_and_match_the_log(relay):
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    _, answer = desks["delhi"].send_text(["islamabad"], "covered by a tree head")
    deadline = time.monotonic() + 15
    while True:
        with relay.client() as c:
            body = c.get("/v1/audit/tree-head").json()
        if body["size"] > answer["log_index"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    head = TreeHead.from_json(body["tree_head"])
    head.verify(b64d(relay.info()["public_key"], field="public_key"))
    assert head.size == body["size"] > answer["log_index"]
    leaves = [b64d(e["leaf_hash"], field="leaf") for e in all_entries(relay)[: head.size]]
    assert root_from_leaf_hashes(leaves) == head.root


async def _pg_tamper(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET at_ms = 0",
        "DELETE FROM audit_log",
        "UPDATE tree_heads SET at_ms = 0",
        "DELETE FROM tree_heads",
    ],
)
def test_the_database_refuses_to_rewrite_the_audit_log(relay, sql):
    setup_channel(relay, {"delhi": "principal"})  # at least a few entries and a tree head
    with relay.client() as c:
        assert c.get("/v1/audit/tree-head").status_code == 200
    if relay.backend == "sqlite":
        db = sqlite3.connect(relay.data_dir / "relay.db")
        try:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(sql)
        finally:
            db.close()
    else:
        import asyncpg

        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            asyncio.run(_pg_tamper(relay.db_url, sql))
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            asyncio.run(_pg_tamper(relay.db_url, "TRUNCATE audit_log CASCADE"))


# --- the entry encoding itself (hotline/protocol/audit.py, pure) -------------------------------------


def _sealed():
    import os

    from hotline.protocol import DeviceKeys, Intent, Precedence, seal_envelope
    from hotline.protocol.model import DeviceAddress

    alice = DeviceKeys.generate(DeviceAddress("delhi", "laptop"), os.urandom, 1_700_000_000_000)
    bob = DeviceKeys.generate(DeviceAddress("islamabad", "laptop"), os.urandom, 1_700_000_000_000)
    envelope = seal_envelope(
        alice,
        channel="c",
        seq={"islamabad": 1},
        recipients=[bob.current_prekey(1_700_000_000_000)],
        precedence=Precedence.FLASH,
        intent=Intent.REASSURANCE,
        text="secret words",
        now_ms=1_700_000_000_000,
        rng=os.urandom,
    )
    return alice, bob, envelope


def test_an_envelope_entry_verifies_offline_and_detects_tampering():
    import json as _json

    from hotline.protocol import audit
    from hotline.protocol.encoding import dump_json
    from hotline.protocol.errors import BadSignatureError, MalformedError

    alice, bob, envelope = _sealed()
    raw = audit.envelope_accepted(at_ms=5, envelope=envelope)
    entry = parse_entry(raw)
    verify_envelope_entry(entry, alice.signing_public_key)
    with pytest.raises(BadSignatureError):
        verify_envelope_entry(entry, bob.signing_public_key)
    assert b"secret words" not in raw and b64e(envelope.body).encode() not in raw
    # Rewriting a copied field (here: precedence) is caught against the signed header.
    fields = _json.loads(raw)
    fields["precedence"] = "ROUTINE"
    with pytest.raises(MalformedError):
        verify_envelope_entry(parse_entry(dump_json(fields)), alice.signing_public_key)
    # So is a wrong envelope hash.
    fields = _json.loads(raw)
    fields["envelope_hash"] = b64e(bytes(32))
    with pytest.raises(MalformedError):
        verify_envelope_entry(parse_entry(dump_json(fields)), alice.signing_public_key)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f.update(extra=1),
        lambda f: f.pop("at_ms"),
        lambda f: f.update(type="shredded"),
        lambda f: f.update(v=2),
        lambda f: f.update(v=True),
    ],
    ids=["unknown-field", "missing-field", "unknown-type", "version", "bool-version"],
)
def test_parse_entry_is_strict(mutate):
    import json as _json

    from hotline.protocol import audit
    from hotline.protocol.encoding import dump_json
    from hotline.protocol.errors import ProtocolError

    fields = _json.loads(audit.member_added(at_ms=1, channel="c", member="m", role="principal"))
    mutate(fields)
    with pytest.raises(ProtocolError):
        parse_entry(dump_json(fields))


def test_parse_entry_refuses_non_canonical_bytes():
    from hotline.protocol import audit
    from hotline.protocol.errors import MalformedError

    raw = audit.member_added(at_ms=1, channel="c", member="m", role="principal")
    assert parse_entry(raw).fields == {"member": "m", "role": "principal"}
    with pytest.raises(MalformedError):
        parse_entry(raw.replace(b",", b", ", 1))
