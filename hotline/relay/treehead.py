"""Signs tree heads of the audit log while entries arrive, and checks the log against old ones.

The signer keeps the log's Merkle tree in memory (32 bytes a leaf plus cached subtrees), loaded from
the database at start and extended with new leaf hashes. Because appenders hold the log lock until
they commit, committed indexes have no holes; the signer still checks that the leaves it reads are
contiguous. At start it recomputes the root of the newest stored tree head: a mismatch means the log
was altered under the relay, which it reports loudly and refuses to paper over with a new head.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hotline.protocol import crypto
from hotline.protocol.merkle import MerkleTree
from hotline.protocol.statements import sign_tree_head
from hotline.relay.store import Store, TreeHeadRow

log = logging.getLogger(__name__)

_PAGE = 10_000


class LogCorruptedError(RuntimeError):
    """The audit log does not match a tree head this relay signed earlier."""


class TreeHeadSigner:
    def __init__(self, store: Store, key: crypto.SigningKey, now_ms: Callable[[], int]) -> None:
        self._store = store
        self._key = key
        self._now_ms = now_ms
        self._tree = MerkleTree()
        self._lock = asyncio.Lock()

    async def _catch_up(self) -> None:
        while True:
            async with self._store.read() as tx:
                leaves = await tx.leaf_hashes(self._tree.size, _PAGE)
            for index, leaf in leaves:
                if index != self._tree.size:
                    raise LogCorruptedError(f"audit log has a hole at index {self._tree.size}")
                self._tree.append_leaf_hash(leaf)
            if len(leaves) < _PAGE:
                return

    async def start(self) -> None:
        """Load the log, check it against the newest stored tree head, and sign one if it grew."""
        async with self._lock:
            await self._catch_up()
            async with self._store.read() as tx:
                latest = await tx.latest_tree_head()
            if latest is not None and (
                latest.size > self._tree.size or self._tree.root(latest.size) != latest.root
            ):
                raise LogCorruptedError(
                    f"audit log does not match the signed tree head of size {latest.size}"
                )
        await self.sign_if_grown()

    async def tree(self, size: int) -> MerkleTree:
        """The log's Merkle tree, holding at least ``size`` leaves if the log has them (for proofs).

        Read-only for callers: proofs and roots for any size up to ``tree.size``.
        """
        if size > self._tree.size:
            async with self._lock:
                await self._catch_up()
        return self._tree

    async def sign_if_grown(self) -> TreeHeadRow | None:
        """Sign and store a tree head if the log grew since the last one (or none exists)."""
        async with self._lock:
            await self._catch_up()
            async with self._store.read() as tx:
                latest = await tx.latest_tree_head()
            if latest is not None and latest.size >= self._tree.size:
                return None
            size = self._tree.size
            head = sign_tree_head(self._key, size=size, root=self._tree.root(size), at_ms=self._now_ms())
            row = TreeHeadRow(
                size=head.size, root=head.root, at_ms=head.at_ms, body=head.body, sig=head.signature
            )
            async with self._store.write() as tx:
                await tx.insert_tree_head(row)
            return row

    async def run(self, interval_s: float) -> None:
        """Sign every ``interval_s`` while entries arrive; survives database outages."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sign_if_grown()
            except LogCorruptedError:
                log.critical("audit log is corrupted; tree heads are no longer signed")
                raise
            except Exception:
                log.exception("could not sign a tree head; will retry")
