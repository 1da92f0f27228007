"""Audit-log verification rates, on the log the benchmark itself just wrote.

The log is exported over the admin API (``GET /v1/admin/audit``) with the newest signed tree head.
Two figures, in entries per second:

* **Merkle work alone**: hash every entry into its RFC 9162 leaf, rebuild the tree and compare its
  root at the tree head's size with the signed root.
* **Everything**: the above, plus the tree head's signature, a strict parse of every entry, the
  sender's signature of every ``envelope-accepted`` entry (with the key from the log's own
  ``device-enrolled`` entry, :func:`hotline.protocol.audit.verify_envelope_entry`) and the issuer's
  signature of every logged receipt.

When the ``hotline audit`` commands exist (they do since the audit issue), :func:`measure_cli` also
exports the log with ``hotline audit export`` and times ``hotline audit verify`` on it, ``--tree-only``
(Merkle work and tree heads) and in full: the figures a user of the command sees, from the command's
own ``seconds`` and from the wall clock around the process (which adds interpreter start-up).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hotline.protocol import audit
from hotline.protocol.encoding import b64d
from hotline.protocol.merkle import MerkleTree, leaf_hash
from hotline.protocol.receipts import Receipt
from hotline.protocol.statements import TreeHead

PAGE = 1000


@dataclass(frozen=True)
class ExportedLog:
    entries: list[bytes]
    tree_head: TreeHead
    relay_public_key: bytes


async def export_log(relay_url: str, admin_token: str) -> ExportedLog:
    """Every entry of the relay's audit log and its newest signed tree head."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    entries: list[bytes] = []
    async with httpx.AsyncClient(base_url=relay_url, timeout=60) as http:
        while True:
            r = await http.get(
                "/v1/admin/audit", params={"start": len(entries), "limit": PAGE}, headers=headers
            )
            r.raise_for_status()
            page = r.json()["entries"]
            entries.extend(b64d(e["entry"], field="entry") for e in page)
            if len(page) < PAGE:
                break
        head = (await http.get("/v1/audit/tree-head")).raise_for_status().json()
        info = (await http.get("/v1/relay")).raise_for_status().json()
    return ExportedLog(
        entries=entries,
        tree_head=TreeHead.from_json(head["tree_head"]),
        relay_public_key=b64d(info["public_key"], field="public_key"),
    )


def verify_merkle(log: ExportedLog) -> None:
    """Leaf hashes, the tree, and its root at the tree head's size against the signed root."""
    tree = MerkleTree(leaf_hash(e) for e in log.entries)
    if tree.root(log.tree_head.size) != log.tree_head.root:
        raise ValueError("the log does not match its signed tree head")


def verify_everything(log: ExportedLog) -> dict[str, int]:
    """Tree head signature, Merkle root, strict parse, and every sender's and issuer's signature."""
    log.tree_head.verify(log.relay_public_key)
    verify_merkle(log)
    keys: dict[tuple[str, str, str], bytes] = {}
    counts = {"entries": 0, "envelope_signatures": 0, "receipt_signatures": 0}
    for raw in log.entries:
        entry = audit.parse_entry(raw)
        counts["entries"] += 1
        f = entry.fields
        if entry.type is audit.EntryType.DEVICE_ENROLLED:
            keys[(entry.channel, f["member"], f["device"])] = b64d(f["signing_key"], field="key")
        elif entry.type is audit.EntryType.ENVELOPE_ACCEPTED:
            sender = f["sender"]
            audit.verify_envelope_entry(entry, keys[(entry.channel, sender["member"], sender["device"])])
            counts["envelope_signatures"] += 1
        elif entry.type is audit.EntryType.RECEIPT:
            receipt = Receipt.from_json(f["receipt"])
            issuer = receipt.issuer
            assert issuer is not None
            receipt.verify(keys[(entry.channel, issuer.member, issuer.device)])
            counts["receipt_signatures"] += 1
    return counts


def audit_cli_available() -> bool:
    """True once another module provides ``hotline audit`` (the audit issue's command)."""
    return importlib.util.find_spec("hotline.cli.audit") is not None


@dataclass(frozen=True)
class AuditResult:
    entries: int
    tree_head_size: int
    bytes_total: int
    merkle_s: float
    merkle_per_s: float
    everything_s: float
    everything_per_s: float
    counts: dict[str, int]
    method: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def measure_audit(log: ExportedLog, *, repeat: int = 3) -> AuditResult:
    """Best of ``repeat`` timings of each kind of verification (the log is in memory)."""

    def best(fn: Any) -> float:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn(log)
            times.append(time.perf_counter() - t)
        return min(times)

    merkle_s = best(verify_merkle)
    counts = verify_everything(log)
    everything_s = best(verify_everything)
    n = len(log.entries)
    return AuditResult(
        entries=n,
        tree_head_size=log.tree_head.size,
        bytes_total=sum(len(e) for e in log.entries),
        merkle_s=round(merkle_s, 4),
        merkle_per_s=round(n / merkle_s, 1) if merkle_s > 0 else 0.0,
        everything_s=round(everything_s, 4),
        everything_per_s=round(n / everything_s, 1) if everything_s > 0 else 0.0,
        counts=counts,
        method="direct: hotline.protocol.merkle and hotline.protocol.audit on the log in memory, "
        "best of a few runs, one process",
    )


def _hotline(*args: str, timeout_s: float = 600.0) -> tuple[dict[str, Any], float]:
    """Run ``hotline <args> --json``; returns its JSON answer and the wall seconds the process took."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "hotline.cli", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"hotline {args[0]} {args[1]} failed ({done.returncode}): {done.stderr[-500:]}")
    return json.loads(done.stdout), wall


def measure_cli(relay_url: str, admin_token_file: Path, workdir: Path) -> dict[str, Any]:
    """``hotline audit export`` of the whole log, then ``hotline audit verify`` (tree only, and all)."""
    out = workdir / "audit-export.jsonl"
    exported, export_wall = _hotline(
        "audit",
        "export",
        "--admin-token-file",
        str(admin_token_file),
        "--relay",
        relay_url,
        "--out",
        str(out),
        "--no-progress",
    )
    tree, tree_wall = _hotline("audit", "verify", str(out), "--tree-only", "--no-progress")
    full, full_wall = _hotline("audit", "verify", str(out), "--no-progress")
    entries = _entries(full) or _entries(tree) or _entries(exported) or 0

    def rate(seconds: Any) -> float | None:
        return round(entries / seconds, 1) if isinstance(seconds, int | float) and seconds > 0 else None

    return {
        "method": "hotline audit export, then hotline audit verify (--tree-only, and in full)",
        "entries": entries,
        "export_bytes": out.stat().st_size,
        "export_wall_s": round(export_wall, 3),
        "tree_only_s": tree.get("seconds"),
        "tree_only_wall_s": round(tree_wall, 3),
        "tree_only_per_s": rate(tree.get("seconds")),
        "full_s": full.get("seconds"),
        "full_wall_s": round(full_wall, 3),
        "full_per_s": rate(full.get("seconds")),
        "full_report": {k: v for k, v in full.items() if not isinstance(v, list | dict)},
    }


def _entries(report: dict[str, Any]) -> int | None:
    for key in ("entries", "size", "checked", "count"):
        value = report.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
