"""The conformance probe: check from outside that a running relay keeps the guarantees of the protocol.

``hotline conformance --relay URL --admin-token-file F`` (see :mod:`hotline.cli.conformance`) runs
:func:`run_conformance`. With the admin token it creates a throwaway channel (``conformance-<hex>``,
three principals ``alice``, ``bob`` and ``carol``, one device each, keys made here and never sent), and
then checks, one guarantee at a time, what docs/PROTOCOL.md and docs/API.md promise: tampered, forged
and replayed envelopes and receipts are refused, a retry is idempotent, a dropped socket resumes, the
ladder of signed receipts completes, challenges are single-use, a revoked device is shut out, and the
audit log the relay signs matches its entries. Each check passes, fails, or is skipped with the
reason (for example when the relay has no proof API); a check never passes by default.

The channel stays on the relay afterwards (the API has no way to delete one); its name is random.

The audit-log helpers (:func:`fetch_log`, :func:`verify_log`) are also what the test suite uses to
verify a relay's log after crashes and faults.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
import websockets

from hotline.client import AdminClient, DeskClient, MemoryProfileStore, MessageReceived
from hotline.protocol import (
    DeviceAddress,
    DeviceKeys,
    Envelope,
    Intent,
    Precedence,
    Receipt,
    ReceiptKind,
    SignedPrekey,
    issue_device_receipt,
    seal_envelope,
)
from hotline.protocol.audit import EntryType, parse_entry, verify_envelope_entry
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.errors import ProtocolError
from hotline.protocol.fingerprints import fingerprint
from hotline.protocol.merkle import (
    MerkleProofError,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from hotline.protocol.statements import TreeHead, sign_auth_challenge

Status = Literal["pass", "fail", "skip"]
TREE_HEAD_WAIT_S = 15.0
AUDIT_PAGE = 1000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the audit log, checked from its entries ----------------------------------------------------------


class AuditCheckError(Exception):
    """The relay's log does not check out; the message names the first bad index and why."""


@dataclass(frozen=True)
class LogEntry:
    index: int
    raw: bytes
    leaf_hash: bytes


@dataclass
class LogSummary:
    size: int
    envelopes: dict[str, int]  # message id -> log index of its envelope-accepted entry
    receipts: int
    devices: int
    tree_head: TreeHead | None


async def fetch_log(http: httpx.AsyncClient, admin_token: str) -> list[LogEntry]:
    """Every entry of the relay's log, through the admin API (``GET /v1/admin/audit``)."""
    entries: list[LogEntry] = []
    headers = {"Authorization": f"Bearer {admin_token}"}
    while True:
        r = await http.get(
            "/v1/admin/audit", params={"start": len(entries), "limit": AUDIT_PAGE}, headers=headers
        )
        if r.status_code != 200:
            raise AuditCheckError(f"GET /v1/admin/audit answered {r.status_code}: {r.text[:200]}")
        page = r.json()
        for e in page["entries"]:
            if e["index"] != len(entries):
                raise AuditCheckError(f"entry {len(entries)}: the relay returned index {e['index']}")
            entries.append(
                LogEntry(e["index"], b64d(e["entry"], field="entry"), b64d(e["leaf_hash"], field="leaf_hash"))
            )
        if not page["entries"] or len(entries) >= page["size"]:
            return entries


def verify_log(entries: Sequence[LogEntry], tree_heads: Sequence[TreeHead] = ()) -> LogSummary:
    """Check every entry and every given (already signature-checked) tree head against the entries.

    Each leaf hash is recomputed; each entry is parsed strictly; every ``envelope-accepted`` entry is
    verified against the sender's key from its ``device-enrolled`` entry, every device receipt against
    its issuer's; a message id is accepted once; and each tree head's root equals the root of the first
    ``size`` entries (so the log only ever grew: the tree heads are consistent with each other).
    """
    keys: dict[tuple[str, str, str], bytes] = {}
    envelopes: dict[str, int] = {}
    receipts = 0
    for e in entries:
        if leaf_hash(e.raw) != e.leaf_hash:
            raise AuditCheckError(f"entry {e.index}: its leaf hash does not match its bytes")
        try:
            entry = parse_entry(e.raw)
        except ProtocolError as exc:
            raise AuditCheckError(f"entry {e.index}: does not parse: {exc}") from exc
        f = entry.fields
        try:
            if entry.type is EntryType.DEVICE_ENROLLED:
                keys[(entry.channel, f["member"], f["device"])] = b64d(f["signing_key"], field="signing_key")
            elif entry.type is EntryType.ENVELOPE_ACCEPTED:
                sender = f["sender"]
                key = keys.get((entry.channel, sender["member"], sender["device"]))
                if key is None:
                    raise AuditCheckError(f"entry {e.index}: envelope from a device the log never enrolled")
                verify_envelope_entry(entry, key)
                if f["message_id"] in envelopes:
                    raise AuditCheckError(
                        f"entry {e.index}: message {f['message_id']} was already accepted at "
                        f"{envelopes[f['message_id']]}"
                    )
                envelopes[f["message_id"]] = e.index
            elif entry.type is EntryType.RECEIPT:
                receipt = Receipt.from_json(f["receipt"])
                issuer = receipt.issuer
                if issuer is None:
                    raise AuditCheckError(f"entry {e.index}: a logged receipt without an issuer")
                key = keys.get((entry.channel, issuer.member, issuer.device))
                if key is None:
                    raise AuditCheckError(f"entry {e.index}: receipt from a device the log never enrolled")
                receipt.verify(key)
                if receipt.message_id not in envelopes:
                    raise AuditCheckError(f"entry {e.index}: receipt about a message the log never accepted")
                receipts += 1
        except ProtocolError as exc:
            raise AuditCheckError(f"entry {e.index} ({entry.type.value}): {exc}") from exc
    leaves = [e.leaf_hash for e in entries]
    for head in tree_heads:
        if head.size > len(leaves):
            raise AuditCheckError(f"a tree head of size {head.size} is ahead of the {len(leaves)} entries")
        if root_from_leaf_hashes(leaves[: head.size]) != head.root:
            raise AuditCheckError(f"the tree head of size {head.size} does not match the first entries")
    newest = max(tree_heads, key=lambda h: h.size, default=None)
    return LogSummary(len(entries), envelopes, receipts, len(keys), newest)


async def signed_tree_head(http: httpx.AsyncClient, relay_public_key: bytes) -> TreeHead:
    r = await http.get("/v1/audit/tree-head")
    if r.status_code != 200:
        raise AuditCheckError(f"GET /v1/audit/tree-head answered {r.status_code}")
    head = TreeHead.from_json(r.json()["tree_head"])
    head.verify(relay_public_key)
    return head


async def tree_head_covering(
    http: httpx.AsyncClient, relay_public_key: bytes, size: int, timeout_s: float = TREE_HEAD_WAIT_S
) -> TreeHead:
    """Wait for a signed tree head of at least ``size`` entries (the relay signs one every few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            head = await signed_tree_head(http, relay_public_key)
            if head.size >= size:
                return head
        except AuditCheckError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AuditCheckError(f"no tree head covered {size} entries within {timeout_s:.0f} s")
        await asyncio.sleep(0.25)


# --- the report --------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    name: str
    guarantee: str
    status: Status
    detail: str = ""
    reference: str = ""


@dataclass
class ConformanceReport:
    relay_url: str
    relay_id: str = ""
    channel: str = ""
    results: list[CheckResult] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and not any(r.status == "fail" for r in self.results)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    def to_json(self) -> dict[str, Any]:
        return {
            "relay": self.relay_url,
            "relay_id": self.relay_id,
            "channel": self.channel,
            "ok": self.ok,
            "passed": self.count("pass"),
            "failed": self.count("fail"),
            "skipped": self.count("skip"),
            "duration_s": round(self.duration_s, 2),
            "results": [asdict(r) for r in self.results],
        }


class _Failed(Exception):
    """A check found the relay in breach of a guarantee."""


class _Skipped(Exception):
    """A check cannot run against this relay; the message says why."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _Failed(message)


# --- the probe ---------------------------------------------------------------------------------------


@dataclass
class _World:
    channel: str
    relay_public_key: bytes
    relay_id: str
    alice: DeskClient
    bob: DeskClient
    carol: DeskClient
    message_id: str = ""
    log_index: int = -1
    early_head: TreeHead | None = None


def _flip(b64: str, at: int = -1) -> str:
    """The base64url text of the same bytes with one bit flipped."""
    raw = bytearray(b64d(b64, field="value"))
    raw[at] ^= 0x01
    return b64e(bytes(raw))


class _Probe:
    def __init__(self, relay_url: str, admin_token: str, *, verify_tls: bool | str, timeout_s: float) -> None:
        self.url = relay_url.rstrip("/")
        self.admin_token = admin_token
        self.verify_tls = verify_tls
        self.timeout_s = timeout_s
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, verify=verify_tls)
        self.report = ConformanceReport(self.url)
        self.world: _World | None = None

    async def aclose(self) -> None:
        if self.world is not None:
            for desk in (self.world.alice, self.world.bob, self.world.carol):
                await desk.aclose()
        await self.http.aclose()

    # helpers

    async def raw(self, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await self.http.request(method, path, json=body, headers=headers)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, None

    @staticmethod
    def code(body: Any) -> str:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"].get("code"))
        return f"(no error body: {str(body)[:80]})"

    async def token(self, desk: DeskClient) -> str:
        await desk.login()
        assert desk.api.token is not None
        return desk.api.token

    def path(self, suffix: str) -> str:
        assert self.world is not None
        return f"/v1/channels/{self.world.channel}{suffix}"

    def seal_from(
        self, keys: DeviceKeys, to: DeskClient, *, channel: str | None = None, seq: int = 1
    ) -> Envelope:
        """An envelope with ``keys`` to every device of ``to``'s member (prekeys from the directory)."""
        w = self.world
        assert w is not None
        member = to.address.member
        prekeys: list[SignedPrekey] = []
        for dev in w.alice.directory[member].active_devices():
            valid = [p for p in dev.prekeys if p.is_valid_at(now_ms())]
            prekeys.append(max(valid, key=lambda p: p.expires_ms))
        return seal_envelope(
            keys,
            channel=channel or w.channel,
            seq={member: seq},
            recipients=prekeys,
            precedence=Precedence.ROUTINE,
            intent=Intent.LINK_TEST,
            text="conformance probe",
            now_ms=now_ms(),
            rng=os.urandom,
        )

    async def expect_refused(
        self, body: Any, token: str, status: int, code: str, path: str = "/envelopes"
    ) -> None:
        got_status, got = await self.raw("POST", self.path(path), token, body)
        _expect(
            (got_status, self.code(got)) == (status, code),
            f"expected {status} {code}, got {got_status} {self.code(got)}",
        )

    # running

    async def check(
        self, name: str, guarantee: str, reference: str, fn: Callable[[], Awaitable[str | None]]
    ) -> None:
        try:
            if self.world is None and name != "setup":
                raise _Failed("the probe's channel could not be set up (see 'setup')")
            detail = await asyncio.wait_for(fn(), self.timeout_s * 3)
            result = CheckResult(name, guarantee, "pass", detail or "", reference)
        except _Skipped as exc:
            result = CheckResult(name, guarantee, "skip", str(exc), reference)
        except _Failed as exc:
            result = CheckResult(name, guarantee, "fail", str(exc), reference)
        except Exception as exc:  # a check that crashes has not shown the guarantee: it fails
            result = CheckResult(name, guarantee, "fail", f"{type(exc).__name__}: {exc}", reference)
        self.report.results.append(result)

    async def run(self) -> ConformanceReport:
        started = time.monotonic()
        checks: list[tuple[str, str, str, Callable[[], Awaitable[str | None]]]] = [
            (
                "setup",
                "a throwaway channel with three enrolled devices",
                "API.md Admin, Enrollment",
                self.setup,
            ),
            (
                "relay-identity",
                "relay_id names the relay's key",
                "API.md Service endpoints",
                self.relay_identity,
            ),
            (
                "relay-receipt",
                "an accepted envelope gets a relay-accepted receipt signed by the relay key, "
                "naming its hash and log index",
                "PROTOCOL.md 5; API.md Sending",
                self.relay_receipt,
            ),
            (
                "idempotent-retry",
                "a retried envelope gets the same receipt and is queued once",
                "API.md Sending (idempotency)",
                self.idempotent_retry,
            ),
            (
                "replayed-id",
                "a message id reused for another envelope is refused (conflict)",
                "API.md Sending (idempotency)",
                self.replayed_id,
            ),
            (
                "tampered-envelope",
                "a changed header, body, wrapped key or signature is refused",
                "PROTOCOL.md 4.6, 10.1",
                self.tampered_envelope,
            ),
            (
                "forged-signature",
                "an envelope signed by a key that is not the sender's is refused",
                "PROTOCOL.md 4.9 step 9",
                self.forged_signature,
            ),
            (
                "forged-sender",
                "a device cannot send in another device's name",
                "API.md Sending (sender_mismatch)",
                self.forged_sender,
            ),
            (
                "replayed-elsewhere",
                "an envelope replayed into another channel is refused",
                "PROTOCOL.md 10.5",
                self.replayed_elsewhere,
            ),
            (
                "forged-receipt",
                "receipts are refused unless issued and signed by a recipient device",
                "API.md Receipts",
                self.forged_receipt,
            ),
            (
                "ladder",
                "delivered and acknowledged receipts reach the sender, signed by the recipient",
                "PROTOCOL.md 5; CLIENT.md",
                self.ladder,
            ),
            (
                "socket-resume",
                "after a dropped socket every unacknowledged item is sent again, acknowledged ones never",
                "API.md Inbox items and the live socket",
                self.socket_resume,
            ),
            (
                "challenge-single-use",
                "an auth challenge works once",
                "API.md Device authentication",
                self.challenge_single_use,
            ),
            (
                "auth-bound-to-relay",
                "an auth proof made for another relay is refused",
                "PROTOCOL.md 6.2",
                self.auth_bound_to_relay,
            ),
            (
                "revoked-device",
                "a revoked device's token, log-ins and envelopes are refused",
                "API.md Device authentication",
                self.revoked_device,
            ),
            (
                "tree-head",
                "a signed tree head covers the accepted message within seconds",
                "PROTOCOL.md 6.1, 12",
                self.tree_head,
            ),
            (
                "log-matches-tree-head",
                "the log's entries hash to the signed roots, the envelope entry "
                "verifies offline, and older tree heads are prefixes of newer ones",
                "PROTOCOL.md 12",
                self.log_matches,
            ),
            (
                "inclusion-proof",
                "the relay proves a message's inclusion in its signed log",
                "PROTOCOL.md 12 (inclusion)",
                self.inclusion_proof,
            ),
            (
                "consistency-proof",
                "the relay proves an older tree head is a prefix of a newer one",
                "PROTOCOL.md 12 (consistency)",
                self.consistency_proof,
            ),
        ]
        try:
            await self.http.get("/v1/relay")  # an unreachable relay is an error, not a failed check
            for name, guarantee, reference, fn in checks:
                await self.check(name, guarantee, reference, fn)
        finally:
            self.report.duration_s = time.monotonic() - started
            await self.aclose()
        return self.report

    # --- the checks ---

    async def setup(self) -> str:
        info = (await self.http.get("/v1/relay")).json()
        relay_public_key = b64d(info["public_key"], field="public_key")
        self.report.relay_id = str(info["relay_id"])
        channel = f"conformance-{uuid.uuid4().hex[:12]}"
        async with AdminClient(self.url, self.admin_token, verify_tls=self.verify_tls) as admin:
            created = await admin.create_channel(
                channel,
                {"alice": "principal", "bob": "principal", "carol": "principal"},
                title="conformance probe (throwaway)",
                invite_ttl_s=600,
            )
        invites = {i["member"]: i["code"] for i in created["invites"]}
        desks = {
            m: await DeskClient.enroll(
                self.url, invites[m], "probe", MemoryProfileStore(), verify_tls=self.verify_tls
            )
            for m in ("alice", "bob", "carol")
        }
        for desk in desks.values():
            await desk.refresh_directory()
            await desk.sync()
        self.world = _World(
            channel, relay_public_key, str(info["relay_id"]), desks["alice"], desks["bob"], desks["carol"]
        )
        self.report.channel = channel
        with_head = await self.http.get("/v1/audit/tree-head")
        if with_head.status_code == 200:
            self.world.early_head = TreeHead.from_json(with_head.json()["tree_head"])
        return f"channel {channel}"

    async def relay_identity(self) -> str:
        w = self.world
        assert w is not None
        expected = "hotline-relay:" + fingerprint(w.relay_public_key).replace(" ", "")
        _expect(w.relay_id == expected, f"relay_id {w.relay_id} is not derived from the relay key")
        return w.relay_id

    async def relay_receipt(self) -> str:
        w = self.world
        assert w is not None
        sent = await w.alice.send(["bob"], "conformance: first message", intent=Intent.LINK_TEST)
        receipt = sent.receipt
        receipt.verify(w.relay_public_key)
        _expect(receipt.kind is ReceiptKind.RELAY_ACCEPTED, f"receipt kind {receipt.kind}")
        _expect(receipt.message_id == sent.message_id, "the receipt names another message")
        _expect(receipt.log_index is not None and receipt.log_index >= 0, "the receipt has no log index")
        w.message_id, w.log_index = sent.message_id, sent.log_index
        return f"message {sent.message_id} at log index {sent.log_index}"

    async def _accepted_wire(self) -> tuple[dict[str, Any], dict[str, Any]]:
        w = self.world
        assert w is not None and w.message_id
        status, body = await self.raw(
            "GET", self.path(f"/envelopes/{w.message_id}"), await self.token(w.alice)
        )
        _expect(status == 200, f"the sender cannot read back its envelope: {status} {self.code(body)}")
        return dict(body["envelope"]), dict(body["accepted"])

    async def idempotent_retry(self) -> str:
        w = self.world
        assert w is not None
        wire, accepted = await self._accepted_wire()
        status, body = await self.raw("POST", self.path("/envelopes"), await self.token(w.alice), wire)
        _expect(status == 200, f"a retry answered {status} {self.code(body)}, not 200")
        _expect(body.get("duplicate") is True, "a retry is not marked duplicate")
        _expect(body.get("receipt") == accepted, "a retry got a different receipt")
        _expect(body.get("log_index") == w.log_index, "a retry got a different log index")
        status, page = await self.raw("GET", self.path("/inbox?limit=500"), await self.token(w.bob))
        _expect(status == 200, f"bob's inbox answered {status}")
        copies = [i for i in page["items"] if i["kind"] == "envelope" and i["accepted"] == accepted]
        _expect(len(copies) == 1, f"the recipient has {len(copies)} copies of the message queued")
        return "same receipt, one queue item"

    async def replayed_id(self) -> str:
        w = self.world
        assert w is not None
        wire, _ = await self._accepted_wire()
        changed = {**wire, "body": _flip(wire["body"])}
        await self.expect_refused(changed, await self.token(w.alice), 409, "conflict")
        return "409 conflict"

    async def tampered_envelope(self) -> str:
        w = self.world
        assert w is not None
        token = await self.token(w.alice)
        base = self.seal_from(w.alice.keys, w.bob).to_json()
        header = json.loads(b64d(base["header"], field="header"))
        header["precedence"] = "FLASH"
        tampered_header = b64e(json.dumps(header, separators=(",", ":")).encode())
        variants = {
            "header": {**base, "header": tampered_header},
            "body": {**base, "body": _flip(base["body"])},
            "wrapped key": {**base, "keys": [_flip(base["keys"][0]), *base["keys"][1:]]},
            "signature": {**base, "sig": _flip(base["sig"], 0)},
        }
        for what, body in variants.items():
            status, got = await self.raw("POST", self.path("/envelopes"), token, body)
            _expect(
                (status, self.code(got)) == (400, "bad_signature"),
                f"a changed {what} answered {status} {self.code(got)}, not 400 bad_signature",
            )
        return "header, body, wrapped key and signature changes: 400 bad_signature"

    async def forged_signature(self) -> str:
        w = self.world
        assert w is not None
        forger = DeviceKeys.generate(w.alice.address, os.urandom, now_ms())
        await self.expect_refused(
            self.seal_from(forger, w.bob).to_json(), await self.token(w.alice), 400, "bad_signature"
        )
        return "400 bad_signature"

    async def forged_sender(self) -> str:
        w = self.world
        assert w is not None
        # Carol's token, an envelope that names bob as its sender (signed with a key made here).
        pretender = DeviceKeys.generate(w.bob.address, os.urandom, now_ms())
        await self.expect_refused(
            self.seal_from(pretender, w.alice).to_json(), await self.token(w.carol), 403, "sender_mismatch"
        )
        return "403 sender_mismatch"

    async def replayed_elsewhere(self) -> str:
        w = self.world
        assert w is not None
        other = self.seal_from(w.alice.keys, w.bob, channel=f"{w.channel}-elsewhere").to_json()
        await self.expect_refused(other, await self.token(w.alice), 400, "wrong_channel")
        return "400 wrong_channel"

    async def forged_receipt(self) -> str:
        w = self.world
        assert w is not None
        wire, _ = await self._accepted_wire()
        envelope = Envelope.from_json(wire)

        def receipt(keys: DeviceKeys, issuer: DeviceAddress) -> dict[str, Any]:
            r = issue_device_receipt(
                keys.signing,
                issuer,
                ReceiptKind.DELIVERED,
                channel=w.channel,
                message_id=envelope.header.message_id,
                envelope_hash=envelope.hash,
                at_ms=now_ms(),
            )
            return {"receipt": r.to_json()}

        # Carol claims bob delivered it; then bob's token with a receipt signed by a key not bob's.
        await self.expect_refused(
            receipt(w.carol.keys, w.bob.address),
            await self.token(w.carol),
            403,
            "sender_mismatch",
            "/receipts",
        )
        stranger = DeviceKeys.generate(w.bob.address, os.urandom, now_ms())
        await self.expect_refused(
            receipt(stranger, w.bob.address), await self.token(w.bob), 400, "bad_signature", "/receipts"
        )
        # Carol was not a recipient: even signed by her own key, her receipt is refused.
        await self.expect_refused(
            receipt(w.carol.keys, w.carol.address), await self.token(w.carol), 403, "forbidden", "/receipts"
        )
        return "issuer mismatch 403, wrong key 400, non-recipient 403"

    async def ladder(self) -> str:
        w = self.world
        assert w is not None
        events = await w.bob.sync()
        got = [e for e in events if isinstance(e, MessageReceived) and e.message_id == w.message_id]
        _expect(len(got) == 1, f"bob received the message {len(got)} times")
        _expect(got[0].text == "conformance: first message", "bob read another text")
        await w.bob.acknowledge(w.message_id)
        deadline = time.monotonic() + self.timeout_s
        steps: dict[str, Any] = {}
        while time.monotonic() < deadline:
            await w.alice.sync()
            steps = w.alice.ladder(w.message_id)["recipients"].get(str(w.bob.address), {})
            if "delivered" in steps and "acknowledged" in steps:
                break
            await asyncio.sleep(0.2)
        _expect("delivered" in steps, "no delivered receipt reached the sender")
        _expect("acknowledged" in steps, "no acknowledged receipt reached the sender")
        status, body = await self.raw(
            "GET", self.path(f"/messages/{w.message_id}/receipts"), await self.token(w.alice)
        )
        _expect(status == 200, f"receipts answered {status}")
        kinds = [Receipt.from_json(r).kind for r in body["receipts"]]
        _expect(
            kinds[:1] == [ReceiptKind.RELAY_ACCEPTED]
            and {ReceiptKind.DELIVERED, ReceiptKind.ACKNOWLEDGED} <= set(kinds),
            f"the relay's receipt list is {[k.value for k in kinds]}",
        )
        return "relay-accepted → delivered → acknowledged"

    async def socket_resume(self) -> str:
        w = self.world
        assert w is not None
        await w.bob.sync()  # nothing pending before we start
        ids = [(await w.alice.send(["bob"], f"conformance: resume {n}")).message_id for n in range(2)]
        url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + self.path("/socket")
        ssl_arg: Any = None
        if url.startswith("wss://") and self.verify_tls is False:
            import ssl

            ssl_arg = ssl.create_default_context()
            ssl_arg.check_hostname = False
            ssl_arg.verify_mode = ssl.CERT_NONE

        async def items(ws: Any, count: int) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            while len(out) < count:
                frame = json.loads(await asyncio.wait_for(ws.recv(), self.timeout_s))
                if frame.get("type") == "item":
                    out.append(frame["item"])
                elif frame.get("type") == "error":
                    raise _Failed(f"socket error {frame}")
            return out

        def message_of(item: dict[str, Any]) -> str:
            return Envelope.from_json(item["envelope"]).header.message_id

        token = await self.token(w.bob)
        async with websockets.connect(url, ssl=ssl_arg) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            _expect(json.loads(await ws.recv()) == {"type": "ready"}, "no ready frame")
            first = await items(ws, 2)
            _expect(sorted(message_of(i) for i in first) == sorted(ids), "the socket sent other items")
            await ws.send(json.dumps({"type": "ack", "ids": [first[0]["id"]]}))
            await ws.send(json.dumps({"type": "ping"}))
            while json.loads(await asyncio.wait_for(ws.recv(), self.timeout_s)).get("type") != "pong":
                pass
        # The connection is gone with the second item unacknowledged: it must come again, alone.
        async with websockets.connect(url, ssl=ssl_arg) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            _expect(json.loads(await ws.recv()) == {"type": "ready"}, "no ready frame")
            again = await items(ws, 1)
            _expect(message_of(again[0]) == message_of(first[1]), "the resent item is not the unacked one")
            await ws.send(json.dumps({"type": "ack", "ids": [again[0]["id"]]}))
            await ws.send(json.dumps({"type": "ping"}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), self.timeout_s))
            _expect(frame == {"type": "pong"}, f"an acknowledged item came again: {str(frame)[:120]}")
        return "unacked item resent once; acked item never"

    async def challenge_single_use(self) -> str:
        w = self.world
        assert w is not None
        who = {"channel": w.channel, "member": "carol", "device": "probe"}
        status, challenge = await self.raw("POST", "/v1/auth/challenge", None, who)
        _expect(status == 200, f"challenge answered {status}")
        raw = b64d(challenge["challenge"], field="challenge")
        sig = b64e(sign_auth_challenge(w.carol.keys.signing, w.relay_id, raw, w.carol.address))
        body = {**who, "challenge": challenge["challenge"], "signature": sig}
        status, first = await self.raw("POST", "/v1/auth/token", None, body)
        _expect(status == 200, f"a good proof answered {status} {self.code(first)}")
        status, second = await self.raw("POST", "/v1/auth/token", None, body)
        _expect(
            (status, self.code(second)) == (401, "challenge_invalid"),
            f"a replayed challenge answered {status} {self.code(second)}",
        )
        return "second use: 401 challenge_invalid"

    async def auth_bound_to_relay(self) -> str:
        w = self.world
        assert w is not None
        who = {"channel": w.channel, "member": "carol", "device": "probe"}
        status, challenge = await self.raw("POST", "/v1/auth/challenge", None, who)
        _expect(status == 200, f"challenge answered {status}")
        raw = b64d(challenge["challenge"], field="challenge")
        sig = b64e(
            sign_auth_challenge(w.carol.keys.signing, "hotline-relay:" + "0" * 32, raw, w.carol.address)
        )
        status, got = await self.raw(
            "POST", "/v1/auth/token", None, {**who, "challenge": challenge["challenge"], "signature": sig}
        )
        _expect(
            (status, self.code(got)) == (400, "bad_signature"),
            f"a proof for another relay answered {status} {self.code(got)}",
        )
        return "400 bad_signature"

    async def revoked_device(self) -> str:
        w = self.world
        assert w is not None
        token = await self.token(w.carol)
        envelope = self.seal_from(w.carol.keys, w.bob).to_json()
        async with AdminClient(self.url, self.admin_token, verify_tls=self.verify_tls) as admin:
            await admin.revoke_device(w.channel, "carol", "probe")
        status, got = await self.raw("GET", self.path("/directory"), token)
        _expect((status, self.code(got)) == (403, "device_revoked"), f"old token: {status} {self.code(got)}")
        status, got = await self.raw("POST", self.path("/envelopes"), token, envelope)
        _expect((status, self.code(got)) == (403, "device_revoked"), f"envelope: {status} {self.code(got)}")
        who = {"channel": w.channel, "member": "carol", "device": "probe"}
        status, got = await self.raw("POST", "/v1/auth/challenge", None, who)
        _expect((status, self.code(got)) == (403, "device_revoked"), f"new log-in: {status} {self.code(got)}")
        return "token, envelope and log-in: 403 device_revoked"

    async def tree_head(self) -> str:
        w = self.world
        assert w is not None
        _expect(w.log_index >= 0, "no message was accepted earlier")
        head = await tree_head_covering(self.http, w.relay_public_key, w.log_index + 1)
        return f"size {head.size}"

    async def log_matches(self) -> str:
        w = self.world
        assert w is not None
        head = await tree_head_covering(self.http, w.relay_public_key, w.log_index + 1)
        try:
            entries = await fetch_log(self.http, self.admin_token)
            heads = [head] + ([w.early_head] if w.early_head is not None else [])
            for h in heads:
                h.verify(w.relay_public_key)
            summary = verify_log(entries, heads)
        except AuditCheckError as exc:
            raise _Failed(str(exc)) from exc
        _expect(summary.envelopes.get(w.message_id) == w.log_index, "the message is not logged at its index")
        return f"{summary.size} entries, {len(heads)} tree heads"

    async def _proof_paths(self) -> list[str]:
        r = await self.http.get("/openapi.json")
        if r.status_code != 200:
            return []
        paths = [
            p for p in r.json().get("paths", {}) if "{" not in p and ("consistency" in p or "inclusion" in p)
        ]
        return sorted(
            paths, key=lambda p: not p.startswith("/v1/admin/")
        )  # the admin's view of the whole log

    async def inclusion_proof(self) -> str:
        paths = [p for p in await self._proof_paths() if "inclusion" in p]
        if not paths:
            raise _Skipped("relay has no proof API")
        w = self.world
        assert w is not None
        head = await tree_head_covering(self.http, w.relay_public_key, w.log_index + 1)
        proof = await self._fetch_proof(paths[0], {"index": w.log_index, "size": head.size})
        entries = await fetch_log(self.http, self.admin_token)
        try:
            verify_inclusion(entries[w.log_index].leaf_hash, w.log_index, head.size, proof, head.root)
        except MerkleProofError as exc:
            raise _Failed(f"the inclusion proof does not verify: {exc}") from exc
        return f"index {w.log_index} in size {head.size} via {paths[0]}"

    async def consistency_proof(self) -> str:
        paths = [p for p in await self._proof_paths() if "consistency" in p]
        if not paths:
            raise _Skipped("relay has no proof API")
        w = self.world
        assert w is not None
        old = await tree_head_covering(self.http, w.relay_public_key, w.log_index + 1)
        await w.alice.send(["bob"], "conformance: grow the log")
        head = await tree_head_covering(self.http, w.relay_public_key, old.size + 1)
        proof = await self._fetch_proof(paths[0], {"old_size": old.size, "new_size": head.size})
        try:
            verify_consistency(old.size, head.size, old.root, head.root, proof)
        except MerkleProofError as exc:
            raise _Failed(f"the consistency proof does not verify: {exc}") from exc
        return f"{old.size} → {head.size} via {paths[0]}"

    async def _fetch_proof(self, path: str, params: dict[str, int]) -> list[bytes]:
        """Fetch a proof from the relay's audit API; its shape is read loosely (a list of b64 hashes)."""
        r = await self.http.get(path, params=params, headers={"Authorization": f"Bearer {self.admin_token}"})
        if r.status_code != 200:
            raise _Skipped(
                f"{path} answered {r.status_code} to {params}; this probe does not know its format"
            )
        body = r.json()
        for key in ("proof", "audit_path", "path", "hashes"):
            if isinstance(body, dict) and isinstance(body.get(key), list):
                return [base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)) for h in body[key]]
        raise _Skipped(f"{path} answered a proof in a format this probe does not know")


async def run_conformance(
    relay_url: str, admin_token: str, *, verify_tls: bool | str = True, timeout_s: float = 15.0
) -> ConformanceReport:
    """Run every check against the relay at ``relay_url``; never raises for a relay's misbehaviour."""
    probe = _Probe(relay_url, admin_token, verify_tls=verify_tls, timeout_s=timeout_s)
    return await probe.run()
