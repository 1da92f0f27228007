"""The audit API's service layer: tree heads, inclusion and consistency proofs, entries for auditors.

Proofs come from the tree-head signer's in-memory Merkle tree (:meth:`TreeHeadSigner.tree`), which is
the tree the relay signs, so a proof served here verifies against the relay's own tree heads with the
plain RFC 9162 code (``hotline.protocol.merkle``).

Who may read what (docs/API.md, "Audit"):

* tree heads are public: desks compare them;
* consistency proofs: any authenticated device, and the admin — they reveal only hashes;
* inclusion proofs: the admin for any entry; an operator for any entry of its channel; any other device
  for entries about its own member (its messages sent or received, receipts it issued or received,
  its key events) — anything else is ``not_found``, so its existence does not leak;
* entries: the admin (all channels, or one) and operators (their channel; entries of other channels
  are given as leaf hashes only, so the tree still closes). Entries hold metadata, never content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.errors import ProtocolError
from hotline.protocol.merkle import MerkleTree
from hotline.relay.access import SENDING_ROLES, Principal
from hotline.relay.errors import RelayError, RelayErrorCode, forbidden, malformed, not_found
from hotline.relay.store import Role, Store, TreeHeadRow, Tx
from hotline.relay.treehead import TreeHeadSigner

MAX_AUDIT_PAGE = 1000
"""Largest ``limit`` of the entries and tree-head listings."""


@dataclass(frozen=True)
class AuditReader:
    """Who asks: the admin (``device`` None, every channel) or an authenticated device."""

    device: Principal | None = None

    @property
    def is_admin(self) -> bool:
        return self.device is None

    @property
    def channel(self) -> str | None:
        return None if self.device is None else self.device.channel


def head_json(row: TreeHeadRow) -> dict[str, Any]:
    return {
        "tree_head": {"body": b64e(row.body), "sig": b64e(row.sig)},
        "size": row.size,
        "root": b64e(row.root),
        "at_ms": row.at_ms,
    }


def _entry_fields(raw: bytes) -> dict[str, Any]:
    """The logged JSON object (the relay wrote it; a row that does not parse is not anyone's)."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _member_of(value: object) -> str | None:
    return value.get("member") if isinstance(value, dict) and isinstance(value.get("member"), str) else None


class AuditService:
    def __init__(self, store: Store, signer: TreeHeadSigner) -> None:
        self.store = store
        self.signer = signer

    # --- tree heads (public) ---

    async def tree_heads(self, start_size: int, limit: int) -> dict[str, Any]:
        if start_size < 0 or not 1 <= limit <= MAX_AUDIT_PAGE:
            raise malformed(f"start_size must be >= 0 and limit between 1 and {MAX_AUDIT_PAGE}")
        async with self.store.read() as tx:
            rows = await tx.tree_heads(start_size, limit)
        return {"tree_heads": [head_json(r) for r in rows]}

    async def tree_head_at(self, size: int) -> dict[str, Any]:
        async with self.store.read() as tx:
            rows = await tx.tree_heads(size, 1)
        if not rows or rows[0].size != size:
            raise not_found(f"the relay has not signed a tree head of size {size}")
        return head_json(rows[0])

    async def _latest_size(self, tx: Tx) -> int:
        row = await tx.latest_tree_head()
        if row is None:
            raise RelayError(RelayErrorCode.UNAVAILABLE, "no tree head has been signed yet", status=503)
        return row.size

    async def _tree(self, size: int) -> MerkleTree:
        tree = await self.signer.tree(size)
        if size > tree.size:
            raise not_found(f"the log has {tree.size} entries, fewer than {size}")
        return tree

    # --- proofs ---

    async def consistency(self, old_size: int, new_size: int | None) -> dict[str, Any]:
        if new_size is None:
            async with self.store.read() as tx:
                new_size = await self._latest_size(tx)
        if not 0 <= old_size <= new_size:
            raise malformed("need 0 <= old_size <= new_size")
        tree = await self._tree(new_size)
        proof = tree.consistency_proof(old_size, new_size)
        return {"old_size": old_size, "new_size": new_size, "proof": [b64e(p) for p in proof]}

    async def inclusion(
        self,
        who: AuditReader,
        *,
        index: int | None,
        message_id: str | None,
        receipt_hash: str | None,
        channel: str | None,
        size: int | None,
    ) -> dict[str, Any]:
        if sum(x is not None for x in (index, message_id, receipt_hash)) != 1:
            raise malformed("give exactly one of index, message_id and receipt_hash")
        channel = who.channel or channel
        async with self.store.read() as tx:
            if message_id is not None:
                index = await self._message_index(tx, channel, message_id)
            elif receipt_hash is not None:
                index = await self._receipt_index(tx, receipt_hash)
            assert index is not None
            if size is None:
                size = await self._latest_size(tx)
            if not 0 <= index < size:
                raise malformed(f"need 0 <= index < size, got index {index} and size {size}")
            rows = await tx.audit_rows(index, 1)
            if not rows or rows[0].index != index:
                raise not_found(f"no entry {index}")
            row = rows[0]
            fields = _entry_fields(row.entry)
            if not await self._may_see(tx, who, fields):
                raise not_found(f"no entry {index} for this device")
            signed = await tx.tree_heads(size, 1)
        tree = await self._tree(size)
        proof = tree.inclusion_proof(index, size)
        head = signed[0] if signed and signed[0].size == size else None
        return {
            "index": index,
            "size": size,
            "entry": b64e(row.entry),
            "leaf_hash": b64e(row.leaf_hash),
            "proof": [b64e(p) for p in proof],
            "tree_head": head_json(head)["tree_head"] if head else None,
        }

    async def _message_index(self, tx: Tx, channel: str | None, message_id: str) -> int:
        if channel is None:
            raise malformed("give the channel with a message_id")
        ch = await tx.get_channel(channel)
        row = await tx.get_envelope(ch.id, message_id) if ch else None
        if row is None:
            raise not_found(f"no message {message_id}")
        return row.log_index

    async def _receipt_index(self, tx: Tx, receipt_hash: str) -> int:
        try:
            digest = b64d(receipt_hash, field="receipt_hash", max_bytes=32)
        except ProtocolError as exc:
            raise malformed(exc.message) from exc
        row = await tx.get_receipt_by_hash(digest)
        if row is None:
            raise not_found("no such receipt")
        return row.log_index

    async def _may_see(self, tx: Tx, who: AuditReader, fields: dict[str, Any]) -> bool:
        """The access rule for one entry (module docstring)."""
        if who.device is None:
            return True
        device = who.device
        if fields.get("channel") != device.channel:
            return False
        if device.role is Role.OPERATOR:
            return True
        own = device.device.member
        kind = fields.get("type")
        if kind == "channel-created":
            return True
        if kind == "envelope-accepted":
            return _member_of(fields.get("sender")) == own or any(
                _member_of(r) == own for r in fields.get("recipients") or []
            )
        if kind == "receipt":
            if _member_of(fields.get("issuer")) == own:
                return True
            ch = await tx.get_channel(device.channel)
            message_id = fields.get("message_id")
            env = await tx.get_envelope(ch.id, message_id) if ch and isinstance(message_id, str) else None
            sender = await tx.get_device_by_id(env.sender_device_id) if env else None
            return sender is not None and sender.member == own
        return fields.get("member") == own

    # --- entries (admin, operators) ---

    async def entries(self, who: AuditReader, start: int, limit: int, channel: str | None) -> dict[str, Any]:
        if start < 0 or not 1 <= limit <= MAX_AUDIT_PAGE:
            raise malformed(f"start must be >= 0 and limit between 1 and {MAX_AUDIT_PAGE}")
        if who.device is not None:
            if who.device.role is not Role.OPERATOR:
                raise forbidden(f"a {who.device.role.value} may not read the audit log")
            channel = who.device.channel
        async with self.store.read() as tx:
            if channel is not None and await tx.get_channel(channel) is None:
                raise not_found(f"no channel {channel}")
            rows = await tx.audit_rows(start, limit)
            size = await tx.log_size()
            accepted = (
                {
                    i: (body, sig)
                    for i, body, sig in await tx.accepted_receipts(rows[0].index, rows[-1].index + 1)
                }
                if rows
                else {}
            )
        out = []
        for row in rows:
            item: dict[str, Any] = {"index": row.index, "leaf_hash": b64e(row.leaf_hash)}
            if channel is None or _entry_fields(row.entry).get("channel") == channel:
                item["entry"] = b64e(row.entry)
                if row.index in accepted:
                    body, sig = accepted[row.index]
                    item["accepted"] = {"body": b64e(body), "sig": b64e(sig)}
            out.append(item)
        return {"size": size, "channel": channel, "entries": out}


def require_audit_role(who: Principal) -> None:
    """Every device role may ask for proofs (the rule for each entry is in ``_may_see``)."""
    if who.role not in SENDING_ROLES | {Role.OPERATOR}:  # pragma: no cover - every role is one of these
        raise forbidden(f"a {who.role.value} may not read audit proofs")
