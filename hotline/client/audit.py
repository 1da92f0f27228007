"""AuditMonitor: a desk's watch on the relay's audit log — tree heads, consistency, inclusion, split views.

Theory of operation
-------------------
A desk cannot see the relay's database, but the relay signs tree heads (size, Merkle root, time) with its
key, and every tree head it ever signs must extend every earlier one. The monitor keeps, in the profile
state (``extra["audit"]``), the **newest tree head it has verified**, and:

* for every newer head the relay shows it, asks for a consistency proof from the one it holds and checks
  it (RFC 9162 §2.1.4); a head of the same size with another root, a proof that does not verify, or a
  relay whose newest head is *older* than one already verified (a rollback) is an alarm;
* checks that its **own messages and receipts** are in the log where the relay said: the relay-accepted
  receipt of each sent message names a log index, and so does the answer to each receipt it posts; the
  monitor fetches the entry and its inclusion proof, checks the entry is that envelope or that receipt,
  and checks the proof against its verified head;
* **exchanges heads with the other desks inside signed traffic**: a ``link_test`` message with the
  ``tree_head`` template (PROTOCOL.md §12.3) carries the sender's newest verified head. It is end-to-end
  encrypted and signed, so the relay can neither read nor alter it. The receiving desk checks that head
  against its own (consistency proof in whichever direction); a relay that shows the two desks two
  different histories cannot produce that proof, and the desk raises a :class:`SplitViewAlarm`. The
  receiver answers an unsolicited head with its own, so the other desk makes the same check and the
  alarm goes off at both desks.

An alarm is an event (a :class:`~hotline.client.desk.RelayAlarm` subclass, so every client that shows
relay alarms shows it) and a sticky entry in the profile state, with the conflicting signed heads as
evidence anyone can check with the relay's public key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hotline.client.desk import RelayAlarm
from hotline.client.errors import ClientError, RelayError, RelayUnreachableError
from hotline.protocol import Intent, Precedence, Receipt, TreeHead
from hotline.protocol.audit import MAX_ENTRY_BYTES, EntryType, parse_entry
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.errors import ProtocolError
from hotline.protocol.merkle import MerkleProofError, leaf_hash, verify_consistency, verify_inclusion
from hotline.protocol.model import DeviceAddress

if TYPE_CHECKING:
    from hotline.client.desk import DeskClient, SentMessage
    from hotline.client.state import ProfileState

STATE_KEY = "audit"
TREE_HEAD_TEMPLATE = "tree_head"
CHECK_INTERVAL_MS = 10_000
"""``sync()`` asks the relay for its newest tree head at most this often."""
INCLUSION_CHECKS_PER_ROUND = 50
"""Own messages and receipts checked for inclusion per check, oldest first."""


@dataclass(frozen=True)
class AuditAlarm(RelayAlarm):
    """The relay's audit log does not check out. ``kind``: ``bad_tree_head`` (a head not signed by the
    relay), ``inclusion`` (an own message or receipt is not where the relay said), ``refused`` (the relay
    will not prove what it must); :class:`SplitViewAlarm` for two histories."""

    kind: str = "audit"
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SplitViewAlarm(AuditAlarm):
    """Two histories: ``fork`` (two signed roots for one size), ``inconsistent`` (no valid consistency
    proof between two signed heads), ``rollback`` (the relay's newest head is older than one verified)."""


def _head_json(head: TreeHead) -> dict[str, Any]:
    return {**head.to_json(), "size": head.size, "at_ms": head.at_ms}


def _head_from_json(obj: dict[str, Any]) -> TreeHead:
    return TreeHead.from_json({"body": obj["body"], "sig": obj["sig"]})


def checkpoint_fields(head: TreeHead) -> dict[str, Any]:
    """The content ``fields`` of a tree-head link test (the ``tree_head`` template)."""
    return {"template": TREE_HEAD_TEMPLATE, "tree_head": head.to_json()}


class AuditMonitor:
    """One desk's audit checks. Built by :class:`~hotline.client.desk.DeskClient` as ``desk.audit``."""

    def __init__(self, desk: DeskClient, *, auto_reply: bool = True) -> None:
        self.desk = desk
        self.auto_reply = auto_reply
        self.check_interval_ms = CHECK_INTERVAL_MS
        self._last_check_ms = 0

    # --- state ---

    @staticmethod
    def _state(st: ProfileState) -> dict[str, Any]:
        audit: dict[str, Any] = st.extra.setdefault(STATE_KEY, {})
        audit.setdefault("head", None)
        audit.setdefault("included", [])
        audit.setdefault("receipts", {})
        audit.setdefault("peers", {})
        audit.setdefault("alarms", [])
        return audit

    def verified_head(self) -> TreeHead | None:
        """The newest tree head this desk has verified (signature and consistency), if any."""
        head = self.desk.state.extra.get(STATE_KEY, {}).get("head")
        return _head_from_json(head) if head else None

    def alarms(self) -> list[dict[str, Any]]:
        return list(self.desk.state.extra.get(STATE_KEY, {}).get("alarms", []))

    def summary(self) -> dict[str, Any]:
        audit = self.desk.state.extra.get(STATE_KEY, {})
        return {
            "tree_head": audit.get("head"),
            "included": len(audit.get("included", [])),
            "pending": len(self._pending(self.desk.state)),
            "peers": audit.get("peers", {}),
            "alarms": audit.get("alarms", []),
        }

    def note_receipt(self, st: ProfileState, receipt_key: str, answer: Any) -> None:
        """Remember where the relay logged a receipt this desk posted (called by the desk)."""
        if isinstance(answer, dict) and isinstance(answer.get("log_index"), int):
            self._state(st)["receipts"][receipt_key] = answer["log_index"]

    def _alarm(self, alarm: AuditAlarm) -> AuditAlarm:
        now = self.desk.clock()
        with self.desk._edit() as st:
            record = {"kind": alarm.kind, "reason": alarm.reason, "at_ms": now, "evidence": alarm.evidence}
            self._state(st)["alarms"].append(record)
            st.alarms.append({"kind": "audit", "alarm": alarm.kind, "text": alarm.reason, "at_ms": now})
        return alarm

    # --- relay calls ---

    def _relay_key(self) -> bytes:
        return b64d(self.desk.state.relay_public_key, field="relay_public_key", max_bytes=4096)

    async def fetch_latest(self) -> TreeHead | None:
        """The relay's newest signed tree head, unverified; None if it has none yet."""
        try:
            body = await self.desk.api.request("GET", "/v1/audit/tree-head", auth=None)
        except RelayError as exc:
            if exc.code == "unavailable":
                return None
            raise
        return TreeHead.from_json(body["tree_head"])

    async def _consistency(self, old_size: int, new_size: int) -> list[bytes]:
        body = await self.desk._call(
            "GET", "/audit/consistency", params={"old_size": old_size, "new_size": new_size}
        )
        return [b64d(p, field="proof", max_bytes=32) for p in body["proof"]]

    # --- checking heads ---

    async def check(self) -> list[AuditAlarm]:
        """Check the relay's newest head against the verified one, then own messages' inclusion."""
        self._last_check_ms = self.desk.clock()
        try:
            head = await self.fetch_latest()
            if head is None:
                return []
            events = await self.observe(head, source="the relay's newest tree head", latest=True)
            if not events:
                events += await self.check_inclusion()
        except (RelayUnreachableError, RelayError):
            return []  # down or busy now; the next check catches up (a refused proof is an alarm above)
        return events

    async def maybe_check(self) -> list[AuditAlarm]:
        """:meth:`check` if the last one is older than ``check_interval_ms`` (called by ``sync()``)."""
        if self.desk.clock() - self._last_check_ms < self.check_interval_ms:
            return []
        return await self.check()

    async def observe(self, head: TreeHead, *, source: str, latest: bool = False) -> list[AuditAlarm]:
        """Check one signed head against the verified one; adopt it if it extends it.

        ``latest``: the head is what the relay calls its newest, so one older than the verified head is
        a rollback (a head a peer saw may simply be older).
        """
        try:
            head.verify(self._relay_key())
        except ProtocolError:
            return [
                self._alarm(
                    AuditAlarm(
                        f"{source} (size {head.size}) is not signed by the relay's key",
                        kind="bad_tree_head",
                        evidence={"head": _head_json(head)},
                    )
                )
            ]
        old = self.verified_head()
        if old is None:
            self._adopt(head)
            return []
        evidence = {"verified": _head_json(old), "shown": _head_json(head), "source": source}
        if head.size == old.size:
            if head.root != old.root:
                return [
                    self._alarm(
                        SplitViewAlarm(
                            f"SPLIT VIEW: the relay signed two different logs of {head.size} entries "
                            f"({source} and the one this desk verified)",
                            kind="fork",
                            evidence=evidence,
                        )
                    )
                ]
            return []
        small, big = (old, head) if head.size > old.size else (head, old)
        try:
            proof = await self._consistency(small.size, big.size)
            verify_consistency(small.size, big.size, small.root, big.root, proof)
        except (MerkleProofError, ProtocolError) as exc:
            return [
                self._alarm(
                    SplitViewAlarm(
                        f"SPLIT VIEW: {source} (size {head.size}) and the head this desk verified "
                        f"(size {old.size}) are not one history: {exc}",
                        kind="inconsistent",
                        evidence=evidence,
                    )
                )
            ]
        except RelayError as exc:
            if exc.code in {"unavailable", "rate_limited"}:
                return []
            return [
                self._alarm(
                    SplitViewAlarm(
                        f"the relay will not prove that {source} (size {head.size}) and the verified head "
                        f"(size {old.size}) are one history ({exc.code})",
                        kind="inconsistent",
                        evidence=evidence,
                    )
                )
            ]
        if head.size > old.size:
            self._adopt(head)
            return []
        if latest:
            return [
                self._alarm(
                    SplitViewAlarm(
                        f"ROLLBACK: the relay's newest tree head has {head.size} entries; this desk already "
                        f"verified one with {old.size}",
                        kind="rollback",
                        evidence=evidence,
                    )
                )
            ]
        return []

    def _adopt(self, head: TreeHead) -> None:
        with self.desk._edit() as st:
            self._state(st)["head"] = _head_json(head)

    # --- inclusion of own messages and receipts ---

    def _pending(self, st: ProfileState) -> list[tuple[str, int, str]]:
        """(key, log index, expected hash) of own entries not yet proven included, oldest first."""
        audit = st.extra.get(STATE_KEY, {})
        done = set(audit.get("included", []))
        out: list[tuple[str, int, str]] = []
        for message_id, sent in st.sent.items():
            if f"m:{message_id}" not in done and isinstance(sent.get("log_index"), int):
                out.append((f"m:{message_id}", sent["log_index"], sent["envelope_hash"]))
        for message_id, got in st.received.items():
            if f"m:{message_id}" not in done and isinstance(got.get("log_index"), int):
                out.append((f"m:{message_id}", got["log_index"], got["envelope_hash"]))
        for receipt_hash, index in audit.get("receipts", {}).items():
            if f"r:{receipt_hash}" not in done:
                out.append((f"r:{receipt_hash}", index, receipt_hash))
        return sorted(out, key=lambda item: item[1])

    async def check_inclusion(self, limit: int = INCLUSION_CHECKS_PER_ROUND) -> list[AuditAlarm]:
        """Prove that own messages and receipts are in the log the verified head commits to."""
        head = self.verified_head()
        if head is None:
            return []
        events: list[AuditAlarm] = []
        done: list[str] = []
        for key, index, expected in self._pending(self.desk.state)[:limit]:
            if index >= head.size:
                break
            try:
                body = await self.desk._call(
                    "GET", "/audit/inclusion", params={"index": index, "size": head.size}
                )
                problem = self._check_included(key, index, expected, head, body)
            except RelayError as exc:
                if exc.code in {"unavailable", "rate_limited"}:
                    break
                problem = f"the relay will not prove it ({exc.code})"
            except (ProtocolError, MerkleProofError, KeyError, TypeError) as exc:
                problem = f"the proof does not check out: {exc}"
            if problem is None:
                done.append(key)
                continue
            what = f"message {key[2:]}" if key.startswith("m:") else f"receipt {key[2:]}"
            events.append(
                self._alarm(
                    AuditAlarm(
                        f"{what} is not in the relay's log at index {index} as the relay said: {problem}",
                        kind="inclusion",
                        evidence={"index": index, "key": key, "tree_head": _head_json(head)},
                    )
                )
            )
            done.append(key)  # alarmed once; not again every round
        if done:
            with self.desk._edit() as st:
                self._state(st)["included"].extend(done)
        return events

    @staticmethod
    def _check_included(
        key: str, index: int, expected: str, head: TreeHead, body: dict[str, Any]
    ) -> str | None:
        raw = b64d(body["entry"], field="entry", max_bytes=MAX_ENTRY_BYTES)
        entry = parse_entry(raw)
        if key.startswith("m:"):
            if entry.type is not EntryType.ENVELOPE_ACCEPTED or entry.fields["envelope_hash"] != expected:
                return f"entry {index} is not this envelope"
        else:
            if (
                entry.type is not EntryType.RECEIPT
                or b64e(Receipt.from_json(entry.fields["receipt"]).hash) != expected
            ):
                return f"entry {index} is not this receipt"
        proof = [b64d(p, field="proof", max_bytes=32) for p in body["proof"]]
        verify_inclusion(leaf_hash(raw), index, head.size, proof, head.root)
        return None

    # --- exchanging heads with the other desks ---

    async def send_tree_head(self, to: Sequence[str], *, in_reply_to: str | None = None) -> SentMessage:
        """Send this desk's newest verified head to ``to`` in a link test (checking the relay first)."""
        await self.check()
        head = self.verified_head()
        if head is None:
            raise ClientError("the relay has no tree head to share yet", code="unavailable")
        return await self.desk.send(
            list(to),
            f"audit checkpoint: this desk has verified the relay's log up to {head.size} entries",
            precedence=Precedence.ROUTINE,
            intent=Intent.LINK_TEST,
            fields=checkpoint_fields(head),
            in_reply_to=in_reply_to,
        )

    async def on_message(
        self,
        sender: DeviceAddress,
        intent: Intent,
        fields: dict[str, Any],
        message_id: str,
        in_reply_to: str | None,
    ) -> list[AuditAlarm]:
        """A received message; if it carries a tree head, check it (called by the desk)."""
        if intent is not Intent.LINK_TEST or fields.get("template") != TREE_HEAD_TEMPLATE:
            return []
        head = TreeHead.from_json(fields["tree_head"])
        events: list[AuditAlarm] = []
        try:
            mine = self.verified_head()
            if mine is None or head.size > mine.size:
                latest = await self.fetch_latest()
                if latest is not None:
                    events += await self.observe(latest, source="the relay's newest tree head", latest=True)
            events += await self.observe(head, source=f"the tree head {sender} verified")
        except ClientError:
            pass  # the relay is unreachable or busy: the head is checked again with the next one
        status = "consistent" if not events else "alarm"
        with self.desk._edit() as st:
            self._state(st)["peers"][str(sender)] = {
                "tree_head": _head_json(head),
                "at_ms": self.desk.clock(),
                "status": status,
            }
        if self.auto_reply and in_reply_to is None and sender.member != self.desk.state.member:
            # The answer is a courtesy; its absence is visible to the sender as silence.
            with contextlib.suppress(ClientError):
                await self.send_tree_head([sender.member], in_reply_to=message_id)
        return events
