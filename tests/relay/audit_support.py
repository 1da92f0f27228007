"""Helpers for the audit tests: waiting for tree heads, reading the whole log, checking proofs."""

from __future__ import annotations

import time
from typing import Any

from hotline.protocol.encoding import b64d
from hotline.protocol.merkle import leaf_hash, verify_consistency, verify_inclusion
from hotline.protocol.statements import TreeHead
from tests.relay.support import RelayProcess


def relay_key(relay: RelayProcess) -> bytes:
    return b64d(relay.info()["public_key"], field="public_key")


def log_size(relay: RelayProcess) -> int:
    return int(relay.admin.get("/v1/admin/audit", params={"start": 0, "limit": 1}).json()["size"])


def wait_for_head(relay: RelayProcess, size: int | None = None, timeout: float = 15) -> TreeHead:
    """The newest signed tree head once it covers ``size`` entries (default: the whole log now)."""
    want = log_size(relay) if size is None else size
    deadline = time.monotonic() + timeout
    while True:
        with relay.client() as c:
            r = c.get("/v1/audit/tree-head")
        if r.status_code == 200:
            head = TreeHead.from_json(r.json()["tree_head"])
            if head.size >= want:
                head.verify(relay_key(relay))
                return head
        if time.monotonic() > deadline:
            raise AssertionError(f"no tree head of size {want} within {timeout} s")
        time.sleep(0.05)


def all_rows(relay: RelayProcess) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = relay.admin.get("/v1/admin/audit/entries", params={"start": len(rows), "limit": 1000}).json()
        rows += page["entries"]
        if len(rows) >= page["size"]:
            return rows


def check_inclusion(answer: dict[str, Any], head: TreeHead) -> bytes:
    """Check a served inclusion proof with the RFC 9162 code against a signed head; return the entry."""
    raw = b64d(answer["entry"], field="entry")
    assert b64d(answer["leaf_hash"], field="leaf_hash") == leaf_hash(raw)
    proof = [b64d(p, field="proof") for p in answer["proof"]]
    assert answer["size"] == head.size
    verify_inclusion(leaf_hash(raw), answer["index"], head.size, proof, head.root)
    return raw


def check_consistency(answer: dict[str, Any], old: TreeHead, new: TreeHead) -> None:
    proof = [b64d(p, field="proof") for p in answer["proof"]]
    verify_consistency(old.size, new.size, old.root, new.root, proof)
