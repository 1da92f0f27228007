"""A synthetic, genuinely signed audit log for ``hotline audit bench`` and for tests of the verifier.

The log is what a relay would have logged for a channel of two desks exchanging messages: the channel,
its invites, two enrollments with signed prekeys, then for every message a sealed, signed envelope
(``envelope-accepted``), the recipient's signed ``delivered`` and ``acknowledged`` receipts, the relay's
signed ``relay-accepted`` receipt (an ``accepted`` record) and a signed tree head every ``head_every``
entries. Every key comes from a deterministic source, so two runs write the same file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hotline.protocol import DeviceKeys, Intent, Precedence, ReceiptKind, crypto, seal_envelope
from hotline.protocol import audit as entries
from hotline.protocol.auditlog import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    entry_line,
    key_events,
    record_line,
    relay_id_for_key,
)
from hotline.protocol.encoding import b64e
from hotline.protocol.ids import uuid7
from hotline.protocol.merkle import MerkleTree
from hotline.protocol.model import DeviceAddress, Suite
from hotline.protocol.notices import ActKind, NoticeKind, sign_act, sign_notice
from hotline.protocol.receipts import issue_device_receipt, issue_relay_accepted
from hotline.protocol.statements import sign_tree_head

CHANNEL = "bench-delhi-islamabad"
START_MS = 1_746_057_600_000


class DeterministicRng:
    """``rng(n)``: block ``i`` is SHA-256(label ‖ i); public, so for benchmarks and tests only."""

    def __init__(self, label: str) -> None:
        self.label = label.encode()
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += hashlib.sha256(self.label + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


@dataclass(frozen=True)
class SyntheticLog:
    path: Path
    entries: int
    messages: int
    tree_heads: int
    relay_public_key: bytes


def synthesize(
    path: Path, *, messages: int, head_every: int = 1000, label: str = "hotline-audit-bench"
) -> SyntheticLog:
    """Write an export file of ``7 + 3 × messages + 3`` entries to ``path`` (with 3 messages or more:
    a crisis declared by a signed act and its relay notice, and one escalation notice)."""
    rng = DeterministicRng(label)
    relay = crypto.signing_key(Suite.CLASSIC, rng(32))
    now = START_MS
    delhi = DeviceKeys.generate(DeviceAddress("delhi", "laptop"), rng, now)
    islamabad = DeviceKeys.generate(DeviceAddress("islamabad", "desk"), rng, now)
    desks = [delhi, islamabad]
    tree = MerkleTree()
    body: list[bytes] = []
    heads: list[bytes] = []
    accepted: list[bytes] = []
    events: list[bytes] = []

    def log(entry: bytes, *, key_event: bool = False) -> int:
        index = tree.append(entry)
        body.append(entry_line(index, entry))
        if key_event:
            events.extend(
                record_line("key-event", ev) for ev in key_events(entries.parse_entry(entry), index)
            )
        if tree.size % head_every == 0:
            head = sign_tree_head(relay, size=tree.size, root=tree.root(), at_ms=now)
            heads.append(record_line("tree-head", {"tree_head": head.to_json()}))
        return index

    log(
        entries.channel_created(
            at_ms=now,
            channel=CHANNEL,
            title="Benchmark",
            suite=Suite.CLASSIC.value,
            members=[("delhi", "principal"), ("islamabad", "principal")],
        )
    )
    for keys in desks:
        member = keys.address.member
        log(
            entries.invite_created(
                at_ms=now,
                channel=CHANNEL,
                member=member,
                role="principal",
                code_hash=hashlib.sha256(member.encode()).digest(),
                expires_ms=now + 86_400_000,
            )
        )
    for keys in desks:
        now += 1000
        log(
            entries.device_enrolled(
                at_ms=now,
                channel=CHANNEL,
                address=keys.address,
                role="principal",
                signing_key=keys.signing_public_key,
            ),
            key_event=True,
        )
        log(
            entries.prekeys_published(
                at_ms=now,
                channel=CHANNEL,
                address=keys.address,
                prekeys=[p.signed for p in keys.prekeys.values()],
            ),
            key_event=True,
        )
    seq = {0: 0, 1: 0}
    prekeys = [desk.current_prekey(now) for desk in desks]
    for k in range(messages):
        sender, recipient = desks[k % 2], desks[1 - k % 2]
        seq[k % 2] += 1
        now += 10
        envelope = seal_envelope(
            sender,
            channel=CHANNEL,
            seq={recipient.address.member: seq[k % 2]},
            recipients=[p for p in [prekeys[1 - k % 2]] if p is not None],
            precedence=Precedence.IMMEDIATE if k % 5 == 0 else Precedence.ROUTINE,
            intent=Intent.CLARIFICATION_REQUEST,
            text=f"Message {k}: please confirm the status of the exercise area.",
            now_ms=now,
            rng=rng,
        )
        index = log(entries.envelope_accepted(at_ms=now, envelope=envelope))
        relay_receipt = issue_relay_accepted(
            relay,
            channel=CHANNEL,
            message_id=envelope.header.message_id,
            envelope_hash=envelope.hash,
            log_index=index,
            at_ms=now,
        )
        accepted.append(record_line("accepted", {"index": index, "receipt": relay_receipt.to_json()}))
        if k == 1:  # the first FLASH of the exercise: a desk declares crisis mode, the relay says so
            act = sign_act(
                sender.signing,
                sender.address,
                ActKind.CRISIS_DECLARE,
                act_id=uuid7(now, rng),
                channel=CHANNEL,
                at_ms=now,
                epoch=1,
                reason="Exercise: reported troop movement near the border.",
            )
            log(
                entries.act_logged(
                    at_ms=now, channel=CHANNEL, kind=act.kind.value, issuer=act.issuer, act=act.to_json()
                )
            )
            notice = sign_notice(
                relay,
                NoticeKind.CRISIS,
                notice_id=uuid7(now, rng),
                channel=CHANNEL,
                at_ms=now,
                on=True,
                epoch=1,
                trigger="act",
                by=str(sender.address),
                reason=act.reason,
                act=act.to_json(),
            )
            log(
                entries.notice_logged(
                    at_ms=now, channel=CHANNEL, kind=notice.kind.value, notice=notice.to_json()
                )
            )
        if k == 2:  # a deadline passed: the relay escalates
            notice = sign_notice(
                relay,
                NoticeKind.ESCALATION,
                notice_id=uuid7(now, rng),
                channel=CHANNEL,
                at_ms=now,
                reason="ack_overdue",
                desk=recipient.address.member,
                state="silent",
                deadline_ms=now,
                attempt=1,
                mode="crisis",
                message_id=envelope.header.message_id,
                sender=sender.address.member,
                precedence=envelope.header.precedence.value,
                checkin=None,
            )
            log(
                entries.notice_logged(
                    at_ms=now, channel=CHANNEL, kind=notice.kind.value, notice=notice.to_json()
                )
            )
        for kind in (ReceiptKind.DELIVERED, ReceiptKind.ACKNOWLEDGED):
            now += 5
            receipt = issue_device_receipt(
                recipient.signing,
                recipient.address,
                kind,
                channel=CHANNEL,
                message_id=envelope.header.message_id,
                envelope_hash=envelope.hash,
                at_ms=now,
            )
            log(entries.receipt_logged(at_ms=now, receipt=receipt))
    if tree.size % head_every:
        head = sign_tree_head(relay, size=tree.size, root=tree.root(), at_ms=now)
        heads.append(record_line("tree-head", {"tree_head": head.to_json()}))
    header = record_line(
        "header",
        {
            "format": EXPORT_FORMAT,
            "v": EXPORT_VERSION,
            "relay_id": relay_id_for_key(relay.public_bytes),
            "relay_public_key": b64e(relay.public_bytes),
            "channel": None,
            "exported_at_ms": now,
            "size": tree.size,
            "source": "synthetic",
        },
    )
    end = record_line(
        "end",
        {
            "entries": tree.size,
            "tree_heads": len(heads),
            "accepted": len(accepted),
            "key_events": len(events),
        },
    )
    with path.open("wb") as out:
        out.write(header)
        out.writelines(body)
        out.writelines(heads)
        out.writelines(accepted)
        out.writelines(events)
        out.write(end)
    return SyntheticLog(path, tree.size, messages, len(heads), relay.public_bytes)
