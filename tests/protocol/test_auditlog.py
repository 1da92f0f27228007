"""The offline audit-log verifier (hotline/protocol/auditlog.py) on a genuinely signed synthetic log,
and on copies of it tampered with the way an attacker holding the file would: each change is caught and
named — edited, deleted, inserted, reordered, forged signature, inconsistent tree heads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hotline.cli.audit_bench import DeterministicRng, synthesize
from hotline.protocol import audit, crypto
from hotline.protocol.auditlog import (
    AuditLogVerifier,
    AuditReport,
    EntryLine,
    ExportLineError,
    InlineSignatureChecker,
    Kind,
    RecordLine,
    entry_line,
    parse_line,
    record_line,
    redacted_line,
    relay_id_for_key,
)
from hotline.protocol.encoding import b64e, dump_json
from hotline.protocol.merkle import MerkleTree, leaf_hash, root_from_leaf_hashes
from hotline.protocol.model import DeviceAddress, Suite
from hotline.protocol.statements import sign_tree_head

LABEL = "test-auditlog"
MESSAGES = 30  # 100 entries: 7 of setup, 3 a message, a crisis act, its notice and an escalation
HEAD_EVERY = 10


@pytest.fixture(scope="module")
def log_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = Path(tmp_path_factory.mktemp("auditlog")) / "log.jsonl"
    synthesize(path, messages=MESSAGES, head_every=HEAD_EVERY, label=LABEL)
    return path.read_bytes().splitlines(keepends=True)


def relay_key() -> crypto.Signer:
    """The synthetic relay's key: the first 32 bytes of the generator's deterministic source."""
    return crypto.signing_key(Suite.CLASSIC, DeterministicRng(LABEL)(32))


def verify(lines: list[bytes], **kw: object) -> AuditReport:
    v = AuditLogVerifier(**kw)  # type: ignore[arg-type]
    for line in lines:
        v.feed(line)
    return v.finish()


def entry_positions(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(b'{"index":')]


def entry_of(line: bytes) -> dict:
    return json.loads(line)["entry"]


def with_entry(line: bytes, entry: dict) -> bytes:
    return entry_line(json.loads(line)["index"], dump_json(entry))


def renumber(lines: list[bytes]) -> list[bytes]:
    """What a careful attacker does after removing or adding an entry: close the numbering again."""
    out, k = [], 0
    for line in lines:
        if line.startswith(b'{"index":'):
            line = b'{"index":%d,' % k + line.split(b",", 1)[1]
            k += 1
        out.append(line)
    return out


def first_index_of(lines: list[bytes], kind: str, after: int = 20) -> int:
    """The log index of the first entry of ``kind`` at or after index ``after``."""
    for pos in entry_positions(lines)[after:]:
        if entry_of(lines[pos])["type"] == kind:
            return int(json.loads(lines[pos])["index"])
    raise AssertionError(kind)


def first_problem(report: AuditReport) -> tuple[str, int | None]:
    assert not report.ok
    p = report.problems[0]
    return p.kind.value, p.index


# --- the untouched log ---------------------------------------------------------------------------


def test_a_genuine_log_verifies_with_every_signature_checked(log_lines):
    report = verify(log_lines)
    assert report.ok, report.problems
    assert report.entries == 7 + 3 * MESSAGES + 3
    assert report.covered == report.entries and report.newest_tree_head is not None
    assert report.signatures == {
        "envelope": MESSAGES,
        "receipt": 2 * MESSAGES,
        "prekey": 2,
        "act": 1,
        "notice": 2,
        "tree_head": report.tree_heads,
    }
    assert report.escalations == 1
    assert report.types["notice:crisis"] == report.types["act:crisis-declare"] == 1
    members = report.channels["bench-delhi-islamabad"]
    assert members["delhi"].sent == members["islamabad"].sent == MESSAGES // 2
    assert members["islamabad"].receipts["delivered"] == MESSAGES // 2
    assert members["delhi"].receipts["acknowledged"] == MESSAGES // 2
    assert report.first_at_ms is not None and report.last_at_ms is not None
    assert report.first_at_ms < report.last_at_ms
    assert report.to_json()["first_problem"] is None


def test_the_tree_only_check_reads_the_same_file(log_lines):
    report = verify(log_lines, check_entries=False)
    assert report.ok and report.entries == 7 + 3 * MESSAGES + 3 and not report.signatures.get("envelope")


def test_lines_have_one_form():
    raw = audit.member_added(at_ms=1, channel="c", member="m", role="principal")
    parsed = parse_line(entry_line(7, raw))
    assert parsed == EntryLine(7, raw, leaf_hash(raw))
    assert parse_line(redacted_line(8, leaf_hash(raw))) == EntryLine(8, None, leaf_hash(raw))
    rec = parse_line(record_line("end", {"entries": 1}))
    assert rec == RecordLine("end", {"entries": 1})
    for bad in (
        b'{"index":07,"entry":{}}',
        b'{"index": 7,"entry":{}}',
        b'{"entry":{},"index":7}',
        b'{"index":7,"leaf_hash":"AA"}',
        b'{"record":"x","record":"y"}',
        b"[]",
    ):
        with pytest.raises(ExportLineError):
            parse_line(bad)


# --- tampering with the file -----------------------------------------------------------------------


def test_an_edited_envelope_is_named_at_its_index(log_lines):
    lines = list(log_lines)
    index = first_index_of(lines, "envelope-accepted")
    pos = entry_positions(lines)[index]
    entry = entry_of(lines[pos])
    entry["precedence"] = "FLASH"  # the copy no longer matches what the sender signed
    lines[pos] = with_entry(lines[pos], entry)
    assert first_problem(verify(lines)) == ("edited", index)


def test_a_rewritten_envelope_header_is_a_forged_signature(log_lines):
    lines = list(log_lines)
    index = first_index_of(lines, "envelope-accepted")
    pos = entry_positions(lines)[index]
    entry = entry_of(lines[pos])
    entry["body_hash"] = b64e(bytes(32))
    lines[pos] = with_entry(lines[pos], entry)
    assert first_problem(verify(lines)) == ("forged_signature", index)


def test_an_edit_no_signature_covers_is_caught_by_the_tree_heads(log_lines):
    lines = list(log_lines)
    index = first_index_of(lines, "receipt", after=40)
    pos = entry_positions(lines)[index]
    entry = entry_of(lines[pos])
    entry["at_ms"] += 1  # the relay's time of logging: only the Merkle tree covers it
    lines[pos] = with_entry(lines[pos], entry)
    report = verify(lines)
    problem = report.problems[0]
    assert problem.kind is Kind.EDITED
    assert problem.index is not None and problem.last_index is not None
    assert problem.index <= index <= problem.last_index
    assert problem.last_index - problem.index < HEAD_EVERY  # narrowed to the window between two heads


def test_a_deleted_entry_leaves_a_hole_in_the_numbering(log_lines):
    lines = list(log_lines)
    del lines[entry_positions(lines)[50]]
    assert first_problem(verify(lines)) == ("deleted", 50)


def test_a_deleted_and_renumbered_entry_is_named_by_the_relays_receipts(log_lines):
    lines = list(log_lines)
    del lines[entry_positions(lines)[50]]
    report = verify(renumber(lines))
    problem = report.problems[0]
    assert problem.kind is Kind.DELETED and "removed" in problem.reason
    assert problem.index is not None and problem.index <= 50 <= (problem.last_index or problem.index)


def test_an_inserted_entry_is_named(log_lines):
    lines = list(log_lines)
    pos = entry_positions(lines)[60]
    lines.insert(pos + 1, lines[pos])  # a copy of entry 60
    kind, index = first_problem(verify(renumber(lines)))
    assert kind == "inserted" and index in (60, 61)


@pytest.mark.parametrize("first", [70, 69], ids=["inside-a-window", "across-a-tree-head"])
def test_reordered_entries_are_named(log_lines, first):
    lines = list(log_lines)
    a, b = entry_positions(lines)[first], entry_positions(lines)[first + 1]
    ia, ib = lines[a].split(b",", 1), lines[b].split(b",", 1)
    lines[a], lines[b] = ia[0] + b"," + ib[1], ib[0] + b"," + ia[1]  # contents swapped, numbers kept
    report = verify(lines)
    assert first_problem(report) == ("reordered", first)


def test_a_cut_off_log_is_deleted_at_its_end(log_lines):
    lines = [ln for ln in log_lines if not ln.startswith(b'{"record":"end"')]
    assert first_problem(verify(lines))[0] == "deleted"
    positions = entry_positions(log_lines)
    last = set(positions[-5:])
    lines = [ln for i, ln in enumerate(log_lines) if i not in last]
    kind, index = first_problem(verify(lines))
    assert kind == "deleted" and index == len(positions) - 5


def test_a_tree_head_not_signed_by_the_relay_is_a_forged_signature(log_lines):
    lines = list(log_lines)
    pos = next(i for i, ln in enumerate(lines) if ln.startswith(b'{"record":"tree-head"'))
    forger = crypto.signing_key(Suite.CLASSIC, bytes(32))
    fake = sign_tree_head(forger, size=3, root=bytes(32), at_ms=1)
    lines[pos] = record_line("tree-head", {"tree_head": fake.to_json()})
    report = verify(lines)
    assert [p.kind for p in report.problems] == [Kind.FORGED_SIGNATURE]


def test_two_signed_heads_for_one_size_are_inconsistent_tree_heads(log_lines):
    lines = list(log_lines)
    other = sign_tree_head(relay_key(), size=HEAD_EVERY, root=bytes(32), at_ms=1)
    lines.insert(-1, record_line("tree-head", {"tree_head": other.to_json()}))
    report = verify(lines)
    assert report.problems[0].kind is Kind.INCONSISTENT_TREE_HEADS


def test_a_head_a_desk_verified_must_agree_with_the_file(log_lines):
    leaves = [parse_line(ln).leaf for ln in log_lines if ln.startswith(b'{"index":')]  # type: ignore[union-attr]
    good = sign_tree_head(relay_key(), size=50, root=root_from_leaf_hashes(leaves[:50]), at_ms=1)
    assert verify(log_lines, extra_tree_heads=[("from delhi", good)]).ok
    # The relay showed delhi another history of 50 entries than the one in this file.
    forked = [*leaves[:50]]
    forked[20] = leaf_hash(b"another entry")
    other = sign_tree_head(relay_key(), size=50, root=root_from_leaf_hashes(forked), at_ms=1)
    report = verify(log_lines, extra_tree_heads=[("from delhi", other)])
    assert report.problems[0].kind is Kind.INCONSISTENT_TREE_HEADS
    # A desk saw more entries than the file holds: the file was cut.
    longer = sign_tree_head(relay_key(), size=500, root=bytes(32), at_ms=1)
    assert first_problem(verify(log_lines, extra_tree_heads=[("from delhi", longer)]))[0] == "deleted"


def test_a_log_rewritten_and_resigned_by_the_relay_key_holder_still_shows_the_missing_message(log_lines):
    """Someone with the relay's key drops a message and re-signs every tree head: the sender's signed
    numbering still has a hole (seq), and the drop is named at the next message of that stream."""
    entries = [ln for ln in log_lines if ln.startswith(b'{"index":')]
    index = first_index_of(log_lines, "envelope-accepted", after=30)
    keep = [
        ln
        for i, ln in enumerate(entries)
        if i not in (index, index + 1, index + 2)  # the envelope and its two receipts
    ]
    keep = renumber(keep)
    tree = MerkleTree(parse_line(ln).leaf for ln in keep)  # type: ignore[union-attr]
    head = sign_tree_head(relay_key(), size=tree.size, root=tree.root(), at_ms=2)
    header = json.loads(log_lines[0])
    header.pop("record")
    header["size"] = tree.size
    lines = [
        record_line("header", header),
        *keep,
        record_line("tree-head", {"tree_head": head.to_json()}),
        record_line("end", {"entries": tree.size, "tree_heads": 1, "accepted": 0, "key_events": 0}),
    ]
    report = verify(lines)
    kind, where = first_problem(report)
    assert kind == "deleted" and "seq" in report.problems[0].reason
    assert where is not None and where >= index
    # Re-signed by a forger's own key instead, the file is refused by a verifier told the relay's key.
    forger = crypto.signing_key(Suite.CLASSIC, bytes(range(32)))
    forged_header = {
        **header,
        "relay_public_key": b64e(forger.public_bytes),
        "relay_id": relay_id_for_key(forger.public_bytes),
    }
    forged_head = sign_tree_head(forger, size=tree.size, root=tree.root(), at_ms=2)
    forged = [record_line("header", forged_header), *lines[1:]]
    forged[-2] = record_line("tree-head", {"tree_head": forged_head.to_json()})
    # The seq hole is still there (and the relay's notices no longer verify with the forger's key).
    assert any(p.kind is Kind.DELETED and "seq" in p.reason for p in verify(forged).problems)
    report = verify(forged, expected_relay_key=relay_key().public_bytes)
    assert Kind.FORGED_SIGNATURE in {p.kind for p in report.problems}


@pytest.mark.parametrize("kind", ["notice", "act"])
def test_a_notice_or_act_not_signed_by_its_signer_is_a_forged_signature(log_lines, kind):
    lines = list(log_lines)
    pos = next(p for p in entry_positions(lines) if entry_of(lines[p])["type"] == kind)
    index = json.loads(lines[pos])["index"]
    entry = entry_of(lines[pos])
    sig = entry[kind]["sig"]
    entry[kind]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    lines[pos] = with_entry(lines[pos], entry)
    assert first_problem(verify(lines)) == ("forged_signature", index)


def test_history_that_could_not_have_happened_is_named(log_lines):
    lines = list(log_lines)
    # A receipt moved before its envelope.
    env = first_index_of(lines, "envelope-accepted", after=40)
    positions = entry_positions(lines)
    rcpt_pos, env_pos = positions[env + 1], positions[env]
    lines[env_pos], lines[rcpt_pos] = (
        entry_line(env, dump_json(entry_of(lines[rcpt_pos]))),
        entry_line(env + 1, dump_json(entry_of(lines[env_pos]))),
    )
    kinds = {p.kind for p in verify(lines).problems}
    assert Kind.REORDERED in kinds


def test_entries_withheld_as_leaf_hashes_still_close_the_tree(log_lines):
    lines = list(log_lines)
    for pos in entry_positions(lines)[10:20]:
        parsed = parse_line(lines[pos])
        assert isinstance(parsed, EntryLine)
        lines[pos] = redacted_line(parsed.index, parsed.leaf)
    report = verify(lines)
    assert report.withheld == 10
    # The withheld entries were messages and receipts: their references now dangle, which the verifier
    # reports, but the tree still matches every signed head.
    assert all(p.kind is not Kind.EDITED for p in report.problems)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update(type="shredded"),
        lambda e: e.update(v=2),
        lambda e: e.pop("channel"),
    ],
    ids=["unknown-type", "version", "missing-field"],
)
def test_an_entry_that_is_not_an_entry_is_edited(log_lines, mutate: Callable[[dict], object]):
    lines = list(log_lines)
    pos = entry_positions(lines)[30]
    entry = entry_of(lines[pos])
    mutate(entry)
    lines[pos] = with_entry(lines[pos], entry)
    assert first_problem(verify(lines)) == ("edited", 30)


def test_signature_jobs_report_failures_by_index():
    signer = crypto.signing_key(Suite.CLASSIC, bytes(range(32)))
    from hotline.protocol.receipts import ReceiptKind, issue_device_receipt

    receipt = issue_device_receipt(
        signer,
        DeviceAddress("a", "b"),
        ReceiptKind.DELIVERED,
        channel="c",
        message_id="01968924-9c00-7012-8567-89abcdef0123",
        envelope_hash=bytes(32),
        at_ms=1,
    )
    checker = InlineSignatureChecker()
    checker.submit(
        [
            ("receipt", 1, signer.public_bytes, receipt.body, receipt.signature),
            ("receipt", 2, signer.public_bytes, receipt.body + b" ", receipt.signature),
        ]
    )
    assert [(i, code) for i, _, code, _ in checker.failures()] == [(2, "bad_signature")]
