"""Offline verification of an exported audit log: the checks behind ``hotline audit verify``.

Theory of operation
-------------------
An export (docs/AUDITING.md, "The export file") is JSON Lines. Entry lines carry the exact bytes the
relay logged, verbatim, so the Merkle tree is recomputed from the file without re-serializing anything:

* ``{"index":N,"entry":<entry>}`` — an entry (its bytes are the leaf, PROTOCOL.md §12.1);
* ``{"index":N,"leaf_hash":"<b64u>"}`` — an entry of another channel, withheld from this auditor, of
  which only the leaf hash is given, so the tree still closes;
* ``{"record":"…",…}`` — everything else: the ``header`` (first line; the relay's public key), the
  relay's signed ``tree-head`` statements, its signed ``accepted`` receipts (each names the log index of
  an envelope), ``key-event`` summaries and the ``end`` line.

:class:`AuditLogVerifier` is fed the lines in order and keeps only what it needs (32 bytes per leaf, the
channels' keys and message index). It checks, and reports with the index and a kind (:class:`Kind`):

1. **Structure**: every line parses; indexes run 0, 1, 2, … without holes or repeats (a hole is a
   deleted entry, a repeat an inserted one); the header comes first and the end line last.
2. **The tree**: leaf hashes are recomputed and every signed tree head must match the root of the
   entries up to its size. A mismatch is narrowed down to the window between the last head that matches
   and the first that does not; inside it, what-if trees (one entry removed, two swapped) tell an
   inserted or reordered entry from an edited one.
3. **Signatures against the keys the log itself records**: each envelope and receipt is checked against
   the signing key of its sender or issuer as enrolled by an earlier ``device-enrolled`` entry and not
   revoked before it; every published prekey against its device's key; every tree head against the
   relay's key. The expensive checks are :data:`SignatureJob` tuples handed to a
   :class:`SignatureChecker`, so a caller can spread them over processes.
4. **History**: what the relay could not have logged honestly — a receipt before its envelope (or
   without one), a second enrollment of one device, a sender that is not enrolled, numbering gaps in a
   sender's ``seq`` stream (a message is missing) — and the relay's own ``relay-accepted`` receipts,
   whose ``log_index`` pins an envelope to its place.

Pure code: no I/O, no clock. The CLI reads the file and runs the signature jobs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from hotline.protocol import crypto
from hotline.protocol.audit import AuditEntry, EntryType, parse_entry
from hotline.protocol.encoding import b64d, b64e, dump_json, frame, load_json_object
from hotline.protocol.envelope import envelope_hash, envelope_signed_bytes
from hotline.protocol.errors import ErrorCode, MalformedError, ProtocolError
from hotline.protocol.fingerprints import fingerprint
from hotline.protocol.keys import SignedPrekey
from hotline.protocol.merkle import (
    HASH_SIZE,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
)
from hotline.protocol.model import DEFAULT_LIMITS, MAX_SIGNATURE_BYTES, DeviceAddress, Suite
from hotline.protocol.notices import DS_ACT, DS_NOTICE, Act, Notice
from hotline.protocol.receipts import DS_RECEIPT, Receipt, ReceiptKind
from hotline.protocol.statements import TreeHead

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "AuditLogVerifier",
    "AuditReport",
    "EntryLine",
    "ExportLineError",
    "InlineSignatureChecker",
    "Kind",
    "Problem",
    "RecordLine",
    "SignatureChecker",
    "SignatureFailure",
    "SignatureJob",
    "check_signature_jobs",
    "entry_line",
    "key_events",
    "parse_line",
    "record_line",
    "redacted_line",
    "relay_id_for_key",
]

EXPORT_FORMAT = "hotline-audit-export"
EXPORT_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024
"""Largest non-entry line (a tree head, a receipt, a key event); entries have their own limit."""

RELAY_ID_PREFIX = "hotline-relay:"

_ENTRY_PREFIX = b'{"index":'
_RECORD_PREFIX = b'{"record":'
_ENTRY_INFIX = b',"entry":'
_LEAF_INFIX = b',"leaf_hash":"'
_ACCEPTED_PREFIX = b'{"record":"accepted",'


def relay_id_for_key(public_key: bytes) -> str:
    """The relay id a relay with this key publishes (docs/API.md): prefix and the key's fingerprint."""
    return RELAY_ID_PREFIX + fingerprint(public_key).replace(" ", "")


# --- lines ---------------------------------------------------------------------------------------


class ExportLineError(ValueError):
    """A line of an export file that is not one of the forms above."""


@dataclass(frozen=True)
class EntryLine:
    """An entry line: ``entry`` is the logged bytes, or None when only ``leaf`` (its hash) was given."""

    index: int
    entry: bytes | None
    leaf: bytes


@dataclass(frozen=True)
class RecordLine:
    record: str
    fields: dict[str, Any]


def entry_line(index: int, entry: bytes) -> bytes:
    """The export line of an entry: its bytes verbatim, so the file hashes to the relay's tree."""
    return b'{"index":%d,"entry":%s}\n' % (index, entry)


def redacted_line(index: int, leaf: bytes) -> bytes:
    """The export line of an entry withheld from this auditor: only its leaf hash."""
    return b'{"index":%d,"leaf_hash":"%s"}\n' % (index, b64e(leaf).encode("ascii"))


def record_line(record: str, fields: Mapping[str, Any]) -> bytes:
    """``{"record":…,…}``: the record name first (so it never looks like an entry), then sorted fields."""
    body = dump_json(dict(fields))
    return b'{"record":' + dump_json(record) + (b"," + body[1:] if len(body) > 2 else b"}") + b"\n"


def _index(digits: bytes) -> int:
    if not digits.isdigit() or not digits.isascii() or (len(digits) > 1 and digits[0:1] == b"0"):
        raise ExportLineError("the index is not a plain decimal number")
    if len(digits) > 16:
        raise ExportLineError("the index is too large")
    return int(digits)


def parse_line(line: bytes) -> EntryLine | RecordLine:
    """Parse one line (without or with its ``\\n``); raises :class:`ExportLineError`.

    Entry lines are taken apart by position, not by a JSON parser, so that the entry's bytes are exactly
    the bytes in the file; whether they are a valid entry is :func:`~hotline.protocol.audit.parse_entry`'s
    business.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.startswith(_ENTRY_PREFIX):
        comma = line.find(b",", len(_ENTRY_PREFIX))
        if comma < 0:
            raise ExportLineError("an entry line needs an entry or a leaf_hash")
        index = _index(line[len(_ENTRY_PREFIX) : comma])
        if line.startswith(_ENTRY_INFIX, comma) and line.endswith(b"}"):
            entry = line[comma + len(_ENTRY_INFIX) : -1]
            return EntryLine(index, entry, leaf_hash(entry))
        if line.startswith(_LEAF_INFIX, comma) and line.endswith(b'"}'):
            try:
                leaf = b64d(
                    line[comma + len(_LEAF_INFIX) : -2].decode("ascii"),
                    field="leaf_hash",
                    max_bytes=HASH_SIZE,
                )
            except (ProtocolError, UnicodeDecodeError) as exc:
                raise ExportLineError("leaf_hash is not base64url") from exc
            if len(leaf) != HASH_SIZE:
                raise ExportLineError("a leaf hash is 32 bytes")
            return EntryLine(index, None, leaf)
        raise ExportLineError('an entry line is {"index":N,"entry":{…}} or {"index":N,"leaf_hash":"…"}')
    if line.startswith(_RECORD_PREFIX):
        try:
            obj = load_json_object(line, what="record", max_bytes=MAX_RECORD_BYTES)
        except ProtocolError as exc:
            raise ExportLineError(exc.message) from exc
        name = obj.pop("record")
        if not isinstance(name, str):
            raise ExportLineError("record: expected a string")
        return RecordLine(name, obj)
    raise ExportLineError('a line starts with {"index": or {"record":')


# --- signature jobs (run where the caller likes: inline or in worker processes) -------------------

SignatureJob = tuple[str, int, bytes, Any, Any]
"""``(kind, index, signer key, a, b)``: ``("envelope", i, key, suite, (header, hashes, sig, hash))``,
``("receipt", i, key, body, sig)`` or ``("prekey", i, key, signed prekey wire form, None)``."""

SignatureFailure = tuple[int, str, str, str]
"""``(index, job kind, error code, message)`` of a job that did not check out."""


def check_signature_jobs(jobs: Sequence[SignatureJob]) -> list[SignatureFailure]:
    """Run signature jobs; returns the failures only (a picklable function for worker processes)."""
    failures: list[SignatureFailure] = []
    for kind, index, key, a, b in jobs:
        try:
            if kind == "envelope":
                _check_envelope(key, a, *b)
            elif kind == "receipt":
                crypto.verify_signature(key, b, frame(DS_RECEIPT, a))
            elif kind == "prekey":
                SignedPrekey.from_json(a).verify(key)
            elif kind == "notice":
                crypto.verify_signature(key, b, frame(DS_NOTICE, a))
            elif kind == "act":
                crypto.verify_signature(key, b, frame(DS_ACT, a))
            else:
                failures.append((index, kind, ErrorCode.MALFORMED.value, f"unknown job kind {kind!r}"))
        except ProtocolError as exc:
            failures.append((index, kind, exc.code.value, exc.message))
    return failures


def _envelope_job(f: Mapping[str, Any], header: bytes) -> tuple[bytes, str, str, str, str]:
    return (header, f["body_hash"], f["keys_hash"], f["sig"], f["envelope_hash"])


def _check_envelope(
    key: bytes, suite: Any, header: bytes, body_hash: str, keys_hash: str, sig: str, claimed: str
) -> None:
    """The sender's signature over an envelope-accepted entry's header and hashes, and its hash."""
    if not isinstance(suite, str) or suite not in {s.value for s in Suite}:
        raise MalformedError("the header names no known suite")
    crypto.require_signing_key_suite(key, Suite(suite), who="the sender")
    body_digest = b64d(body_hash, field="body_hash", max_bytes=32)
    keys_digest = b64d(keys_hash, field="keys_hash", max_bytes=32)
    signature = b64d(sig, field="sig", max_bytes=MAX_SIGNATURE_BYTES)
    if len(body_digest) != 32 or len(keys_digest) != 32:
        raise MalformedError("a SHA-256 hash is 32 bytes")
    crypto.verify_signature(key, signature, envelope_signed_bytes(header, body_digest, keys_digest))
    if b64e(envelope_hash(header, body_digest, keys_digest, signature)) != claimed:
        raise MalformedError("envelope_hash does not match the header, hashes and signature")


class SignatureChecker(Protocol):
    """Where :class:`AuditLogVerifier` sends signature jobs; ``failures()`` waits for all of them."""

    def submit(self, jobs: list[SignatureJob]) -> None: ...

    def failures(self) -> list[SignatureFailure]: ...


class InlineSignatureChecker:
    """Checks each batch at once, in this process."""

    def __init__(self) -> None:
        self._failures: list[SignatureFailure] = []

    def submit(self, jobs: list[SignatureJob]) -> None:
        self._failures.extend(check_signature_jobs(jobs))

    def failures(self) -> list[SignatureFailure]:
        return self._failures


# --- findings ------------------------------------------------------------------------------------


class Kind(StrEnum):
    """What is wrong. The first four name what happened to entries; the others name the evidence."""

    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    FORGED_SIGNATURE = "forged_signature"
    UNKNOWN_KEY = "unknown_key"
    INCONSISTENT_TREE_HEADS = "inconsistent_tree_heads"
    INVALID = "invalid"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Problem:
    """One finding. ``index`` is the first entry it concerns (None if none); when the evidence only
    bounds the entry, ``last_index`` closes the range ``index…last_index``."""

    kind: Kind
    reason: str
    index: int | None = None
    last_index: int | None = None
    line: int | None = None

    @property
    def exact(self) -> bool:
        return self.index is not None and self.last_index is None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "reason": self.reason,
            "index": self.index,
            "last_index": self.last_index,
            "line": self.line,
        }

    def __str__(self) -> str:
        where = ""
        if self.index is not None:
            where = f"index {self.index}" + (f"–{self.last_index}" if self.last_index is not None else "")
        elif self.line is not None:
            where = f"line {self.line}"
        return f"{where}: {self.kind.value}: {self.reason}" if where else f"{self.kind.value}: {self.reason}"


@dataclass
class MemberSummary:
    role: str
    devices: list[str] = field(default_factory=list)
    sent: int = 0
    sent_by_precedence: Counter[str] = field(default_factory=Counter)
    received: int = 0
    receipts: Counter[str] = field(default_factory=Counter)
    auth_refused: int = 0
    revoked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "devices": self.devices,
            "sent": self.sent,
            "sent_by_precedence": dict(sorted(self.sent_by_precedence.items())),
            "received": self.received,
            "receipts_issued": dict(sorted(self.receipts.items())),
            "auth_refused": self.auth_refused,
            "revoked": self.revoked,
        }


@dataclass(frozen=True)
class AuditReport:
    ok: bool
    relay_id: str | None
    relay_public_key: bytes | None
    channel: str | None
    entries: int
    withheld: int
    first_at_ms: int | None
    last_at_ms: int | None
    tree_heads: int
    covered: int
    newest_tree_head: TreeHead | None
    signatures: Mapping[str, int]
    types: Mapping[str, int]
    escalations: int
    channels: Mapping[str, Mapping[str, MemberSummary]]
    problems: tuple[Problem, ...]
    more_problems: int
    warnings: tuple[str, ...]
    checked_entries: bool
    checked_signatures: bool

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_json(self) -> dict[str, Any]:
        head = self.newest_tree_head
        return {
            "ok": self.ok,
            "relay_id": self.relay_id,
            "relay_public_key": b64e(self.relay_public_key) if self.relay_public_key else None,
            "channel": self.channel,
            "entries": self.entries,
            "withheld": self.withheld,
            "first_at_ms": self.first_at_ms,
            "last_at_ms": self.last_at_ms,
            "tree_heads": self.tree_heads,
            "covered": self.covered,
            "newest_tree_head": (
                {"size": head.size, "root": b64e(head.root), "at_ms": head.at_ms, **head.to_json()}
                if head
                else None
            ),
            "signatures": dict(sorted(self.signatures.items())),
            "types": dict(sorted(self.types.items())),
            "escalations": self.escalations,
            "channels": {
                ch: {m: s.to_json() for m, s in sorted(members.items())}
                for ch, members in sorted(self.channels.items())
            },
            "first_problem": self.problems[0].to_json() if self.problems else None,
            "problems": [p.to_json() for p in self.problems],
            "more_problems": self.more_problems,
            "warnings": list(self.warnings),
            "checked_entries": self.checked_entries,
            "checked_signatures": self.checked_signatures,
        }


# --- the history the entries describe ------------------------------------------------------------


@dataclass
class _Device:
    key: bytes
    enrolled: int
    revoked: int | None = None
    prekeys: set[str] = field(default_factory=set)

    def active_at(self, index: int) -> bool:
        return self.enrolled < index and (self.revoked is None or index < self.revoked)


@dataclass
class _Member:
    added: int
    summary: MemberSummary
    revoked: int | None = None
    devices: dict[str, _Device] = field(default_factory=dict)


@dataclass(frozen=True)
class _Message:
    index: int
    envelope_hash: str
    at_ms: int
    sender: tuple[str, str]
    recipients: frozenset[tuple[str, str]]


@dataclass
class _Channel:
    created: int
    suite: str
    members: dict[str, _Member] = field(default_factory=dict)
    messages: dict[str, _Message] = field(default_factory=dict)
    receipts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    code_hashes: set[str] = field(default_factory=set)
    signing_keys: set[bytes] = field(default_factory=set)


def key_events(entry: AuditEntry, index: int) -> list[dict[str, Any]]:
    """The key events an entry records (enrollment, prekeys, revocation), as ``key-event`` records."""
    f = entry.fields
    base = {"index": index, "at_ms": entry.at_ms, "channel": entry.channel}
    if entry.type is EntryType.DEVICE_ENROLLED:
        return [
            {
                **base,
                "change": "enrolled",
                "member": f["member"],
                "device": f["device"],
                "key": f["signing_key"],
            }
        ]
    if entry.type is EntryType.PREKEYS_PUBLISHED:
        ids: list[str | None] = []
        for p in f["prekeys"]:
            try:
                ids.append(SignedPrekey.from_json(p).id)
            except ProtocolError:
                ids.append(None)
        return [{**base, "change": "prekeys", "member": f["member"], "device": f["device"], "key": ids}]
    if entry.type is EntryType.DEVICE_REVOKED:
        return [{**base, "change": "revoked", "member": f["member"], "device": f["device"], "key": None}]
    if entry.type is EntryType.MEMBER_REVOKED:
        return [
            {**base, "change": "revoked", "member": f["member"], "device": d, "key": None}
            for d in f["devices"]
        ]
    return []


_KEY_EVENT_TYPES = frozenset(
    {
        EntryType.DEVICE_ENROLLED,
        EntryType.PREKEYS_PUBLISHED,
        EntryType.DEVICE_REVOKED,
        EntryType.MEMBER_REVOKED,
    }
)
_SENDING_ROLES = frozenset({"principal", "facilitator", "controller"})


class AuditLogVerifier:
    """Feed an export's lines with :meth:`feed`, then :meth:`finish` for the report.

    ``check_entries=False`` only recomputes the tree (structure and tree heads): the fast path.
    ``expected_relay_key`` refuses a file whose header names another relay key (a file rewritten and
    re-signed with a key of the forger's own). ``extra_tree_heads`` are heads obtained elsewhere — from a
    desk (``hotline audit head``) or an earlier export — that this log must agree with.
    """

    def __init__(
        self,
        *,
        check_entries: bool = True,
        check_signatures: bool = True,
        signature_checker: SignatureChecker | None = None,
        expected_relay_key: bytes | None = None,
        extra_tree_heads: Sequence[tuple[str, TreeHead]] = (),
        batch_size: int = 256,
        time_tolerance_ms: int = 300_000,
        max_problems: int = 50,
        max_window_for_what_if: int = 1024,
    ) -> None:
        self.check_entries = check_entries
        self.check_signatures = check_signatures and check_entries
        self._checker = signature_checker or InlineSignatureChecker()
        self._expected_key = expected_relay_key
        self._extra_heads = list(extra_tree_heads)
        self._batch_size = batch_size
        self._time_tolerance_ms = time_tolerance_ms
        self._max_problems = max_problems
        self._max_window = max_window_for_what_if

        self._line = 0
        self._header: dict[str, Any] | None = None
        self._relay_key: bytes | None = None
        self._end: dict[str, Any] | None = None
        self._leaves: list[bytes] = []
        self._withheld = 0
        self._heads: list[tuple[int, TreeHead]] = []  # (line, head)
        self._accepted: list[tuple[int, int, Any]] = []  # (line, index, receipt wire form), parsed late
        self._exported_key_events: list[tuple[int, dict[str, Any]]] = []
        self._key_events: list[dict[str, Any]] = []
        self._problems: list[Problem] = []
        self._primary: set[int] = set()  # ids of problems that explain others (sorted first)
        self._next_index = 0  # the index the next entry line should carry
        self._more_problems = 0
        self._warnings: list[str] = []
        self._jobs: list[SignatureJob] = []
        self._signatures: Counter[str] = Counter()
        self._types: Counter[str] = Counter()
        self._channels: dict[str, _Channel] = {}
        self._refs: list[tuple[int, str, tuple[str, ...]]] = []  # (index, what, key) not yet defined
        self._streams: dict[tuple[str, str, str, str], list[tuple[int, int]]] = {}  # -> [(seq, index)]
        self._envelope_at: dict[int, tuple[str, str, str, int]] = {}  # index -> (hash, channel, id, at)
        self._envelope_index: dict[str, int] = {}  # envelope hash -> index
        self._first_at: int | None = None
        self._last_at: int | None = None
        self._max_at: int | None = None
        self._escalations = 0

    # --- findings ---

    def _problem(
        self,
        kind: Kind,
        reason: str,
        index: int | None = None,
        last_index: int | None = None,
        *,
        line: int | None = None,
        primary: bool = False,
    ) -> None:
        if len(self._problems) >= self._max_problems:
            self._more_problems += 1
            return
        if last_index is not None and index is not None and last_index <= index:
            last_index = None
        problem = Problem(kind, reason, index, last_index, line)
        self._problems.append(problem)
        if primary:
            self._primary.add(id(problem))

    def _warn(self, text: str) -> None:
        if len(self._warnings) < 100:
            self._warnings.append(text)

    # --- input ---

    def feed(self, line: bytes) -> None:
        """One line of the export, in file order."""
        self._line += 1
        if self._end is not None:
            self._problem(Kind.MALFORMED, "a line after the end record", line=self._line)
            return
        if line.startswith(_ACCEPTED_PREFIX) and self._header is not None:
            self._on_accepted_line(line)
            return
        try:
            parsed = parse_line(line)
        except ExportLineError as exc:
            self._problem(
                Kind.MALFORMED, f"not an export line ({exc})", len(self._leaves) or None, line=self._line
            )
            return
        if self._header is None and not (isinstance(parsed, RecordLine) and parsed.record == "header"):
            self._problem(Kind.MALFORMED, "the file does not start with a header record", line=self._line)
            self._header = {}
        if isinstance(parsed, EntryLine):
            self._on_entry_line(parsed)
        else:
            self._on_record(parsed)

    def _on_accepted_line(self, line: bytes) -> None:
        """The relay's receipts are many (one per envelope): read them without the strict JSON parser."""
        if not self.check_entries:
            return  # the tree-only check has nothing to compare them with
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or set(obj) != {"record", "index", "receipt"}:
                raise ExportLineError("expected the fields index and receipt")
            self._accepted.append((self._line, _int(obj["index"]), obj["receipt"]))
        except (ValueError, ExportLineError) as exc:
            self._problem(Kind.MALFORMED, f"accepted record: {exc}", line=self._line)

    def _on_entry_line(self, parsed: EntryLine) -> None:
        expected = self._next_index
        self._next_index = parsed.index + 1  # report each break in the numbering once
        if parsed.index != expected:
            if parsed.index > expected:
                self._problem(
                    Kind.DELETED,
                    f"entries {expected}–{parsed.index - 1} are missing (the next line has index "
                    f"{parsed.index})"
                    if parsed.index - 1 > expected
                    else f"entry {expected} is missing (the next line has index {parsed.index})",
                    expected,
                    line=self._line,
                )
            else:
                self._problem(
                    Kind.INSERTED,
                    f"a second entry with index {parsed.index} (entries must be numbered 0, 1, 2, …)",
                    parsed.index,
                    line=self._line,
                )
        index = expected  # the position in the file is what the tree is built from
        self._leaves.append(parsed.leaf)
        if parsed.entry is None:
            self._withheld += 1
            return
        if self.check_entries:
            self._check_entry(index, parsed.entry)

    def _on_record(self, rec: RecordLine) -> None:
        f = rec.fields
        try:
            if rec.record == "header":
                self._on_header(f)
            elif rec.record == "tree-head":
                _keys(f, {"tree_head"})
                self._heads.append((self._line, TreeHead.from_json(f["tree_head"])))
            elif rec.record == "accepted":
                _keys(f, {"index", "receipt"})
                self._accepted.append((self._line, _int(f["index"]), f["receipt"]))
            elif rec.record == "key-event":
                self._exported_key_events.append((self._line, f))
            elif rec.record == "end":
                _keys(f, {"entries", "tree_heads", "accepted", "key_events"})
                self._end = f
            else:
                raise ExportLineError(f"unknown record {rec.record!r}")
        except (ExportLineError, ProtocolError) as exc:
            message = exc.message if isinstance(exc, ProtocolError) else str(exc)
            self._problem(Kind.MALFORMED, f"{rec.record} record: {message}", line=self._line)

    def _on_header(self, f: dict[str, Any]) -> None:
        if self._header is not None:
            raise ExportLineError("a second header")
        _keys(
            f, {"format", "v", "relay_id", "relay_public_key", "channel", "exported_at_ms", "size", "source"}
        )
        if f["format"] != EXPORT_FORMAT or f["v"] != EXPORT_VERSION or isinstance(f["v"], bool):
            raise ExportLineError(f"not a {EXPORT_FORMAT} file of version {EXPORT_VERSION}")
        self._header = f
        key = b64d(f["relay_public_key"], field="relay_public_key", max_bytes=4096)
        crypto.suite_of_signing_key(key)
        if f["relay_id"] != relay_id_for_key(key):
            raise ExportLineError("relay_id does not belong to relay_public_key")
        if self._expected_key is not None and key != self._expected_key:
            self._problem(
                Kind.FORGED_SIGNATURE,
                "the file names a relay key other than the one expected: it was re-signed by someone else",
                line=self._line,
            )
        self._relay_key = key

    # --- entries ---

    def _check_entry(self, index: int, raw: bytes) -> None:
        try:
            entry = parse_entry(raw)
        except ProtocolError as exc:
            self._problem(Kind.EDITED, f"not a valid audit entry: {exc.message}", index, line=self._line)
            return
        self._types[entry.type.value] += 1
        if "escalat" in entry.type.value:
            self._escalations += 1
        at = entry.at_ms
        if self._first_at is None:
            self._first_at = at
        self._last_at = at
        if self._max_at is not None and at < self._max_at - self._time_tolerance_ms:
            self._warn(
                f"index {index}: logged {(self._max_at - at) / 1000:.1f} s before an earlier entry "
                "(the relay's clock went back, or entries were reordered)"
            )
        self._max_at = at if self._max_at is None else max(self._max_at, at)
        if entry.type in _KEY_EVENT_TYPES:
            self._key_events.extend(key_events(entry, index))
        try:
            handler = _HANDLERS.get(entry.type)
            if handler is not None:
                handler(self, index, entry)
            elif entry.channel not in self._channels:
                self._refs.append((index, "channel", (entry.channel,)))
        except (ProtocolError, KeyError, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, ProtocolError) else f"{type(exc).__name__}: {exc}"
            self._problem(Kind.EDITED, f"{entry.type.value} entry does not hold together: {message}", index)

    def _channel(self, index: int, name: str) -> _Channel | None:
        ch = self._channels.get(name)
        if ch is None:
            self._refs.append((index, "channel", (name,)))
        return ch

    def _member(self, index: int, ch: _Channel, channel: str, name: str) -> _Member | None:
        m = ch.members.get(name)
        if m is None:
            self._refs.append((index, "member", (channel, name)))
        return m

    def _device(self, index: int, ch: _Channel, channel: str, member: str, name: str) -> _Device | None:
        m = ch.members.get(member)
        d = m.devices.get(name) if m else None
        if d is None:
            self._refs.append((index, "device", (channel, member, name)))
        return d

    def _signer(
        self, index: int, ch: _Channel, channel: str, member: str, device: str, what: str
    ) -> bytes | None:
        """The key of ``member/device`` if it was enrolled and not revoked at ``index``."""
        d = self._device(index, ch, channel, member, device)
        if d is None:
            return None
        if not d.active_at(index):
            self._problem(
                Kind.UNKNOWN_KEY,
                f"{what} is signed by {member}/{device}, which was revoked at index {d.revoked}",
                index,
            )
            return None
        return d.key

    def _job(self, job: SignatureJob) -> None:
        if not self.check_signatures:
            return
        self._signatures[job[0]] += 1
        self._jobs.append(job)
        if len(self._jobs) >= self._batch_size:
            self._checker.submit(self._jobs)
            self._jobs = []

    def _on_channel_created(self, index: int, e: AuditEntry) -> None:
        f = e.fields
        if e.channel in self._channels:
            self._problem(
                Kind.INSERTED,
                f"a second channel-created for {e.channel} "
                f"(the first is at index {self._channels[e.channel].created})",
                index,
            )
            return
        ch = _Channel(created=index, suite=str(f["suite"]))
        for m in f["members"]:
            ch.members[m["member"]] = _Member(added=index, summary=MemberSummary(role=str(m["role"])))
        self._channels[e.channel] = ch

    def _on_member_added(self, index: int, e: AuditEntry) -> None:
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        name = e.fields["member"]
        if name in ch.members:
            self._problem(Kind.INSERTED, f"member {name} is added a second time", index)
            return
        ch.members[name] = _Member(added=index, summary=MemberSummary(role=str(e.fields["role"])))

    def _on_invite_created(self, index: int, e: AuditEntry) -> None:
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        f = e.fields
        m = self._member(index, ch, e.channel, f["member"])
        if m is not None and m.summary.role != f["role"]:
            self._problem(
                Kind.EDITED, f"the invite names role {f['role']}, the member is {m.summary.role}", index
            )
        if f["code_hash"] in ch.code_hashes:
            self._problem(Kind.INSERTED, "an invite code appears twice", index)
        ch.code_hashes.add(f["code_hash"])

    def _on_device_enrolled(self, index: int, e: AuditEntry) -> None:
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        f = e.fields
        m = self._member(index, ch, e.channel, f["member"])
        if m is None:
            return
        key = b64d(f["signing_key"], field="signing_key", max_bytes=4096)
        crypto.require_signing_key_suite(key, Suite(ch.suite), who=f"{f['member']}/{f['device']}")
        if f["device"] in m.devices:
            self._problem(
                Kind.INSERTED,
                f"device {f['member']}/{f['device']} is enrolled a second time "
                f"(first at index {m.devices[f['device']].enrolled})",
                index,
            )
            return
        if key in ch.signing_keys:
            self._problem(Kind.INSERTED, "a signing key is enrolled twice in the channel", index)
        if m.revoked is not None and m.revoked < index:
            self._problem(
                Kind.INVALID, f"{f['member']} was revoked at index {m.revoked} and cannot enroll", index
            )
        if f["role"] != m.summary.role:
            self._problem(
                Kind.EDITED, f"the enrollment names role {f['role']}, the member is {m.summary.role}", index
            )
        ch.signing_keys.add(key)
        m.devices[f["device"]] = _Device(key=key, enrolled=index)
        m.summary.devices.append(f["device"])

    def _on_prekeys(self, index: int, e: AuditEntry) -> None:
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        f = e.fields
        member, device = f["member"], f["device"]
        d = self._device(index, ch, e.channel, member, device)
        key = self._signer(index, ch, e.channel, member, device, "a prekey") if d else None
        for i, wire in enumerate(f["prekeys"]):
            prekey = SignedPrekey.from_json(wire)
            if prekey.owner != DeviceAddress(member, device):
                self._problem(
                    Kind.EDITED, f"prekeys[{i}] belongs to {prekey.owner}, not {member}/{device}", index
                )
                continue
            if d is not None:
                d.prekeys.add(prekey.id)
            if key is not None:
                self._job(("prekey", index, key, wire, None))

    def _on_device_revoked(self, index: int, e: AuditEntry) -> None:
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        f = e.fields
        d = self._device(index, ch, e.channel, f["member"], f["device"])
        if d is None:
            return
        if d.revoked is not None:
            self._problem(Kind.INSERTED, f"{f['member']}/{f['device']} is revoked a second time", index)
            return
        d.revoked = index

    def _on_member_revoked(self, index: int, e: AuditEntry) -> None:
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        f = e.fields
        m = self._member(index, ch, e.channel, f["member"])
        if m is None:
            return
        if m.revoked is not None:
            self._problem(Kind.INSERTED, f"member {f['member']} is revoked a second time", index)
            return
        active = sorted(n for n, d in m.devices.items() if d.revoked is None)
        if list(f["devices"]) != active:
            self._problem(
                Kind.EDITED,
                f"member {f['member']} is revoked with devices {f['devices']}, "
                f"but its active devices are {active}",
                index,
            )
        m.revoked = index
        m.summary.revoked = True
        for d in m.devices.values():
            if d.revoked is None:
                d.revoked = index

    def _on_envelope(self, index: int, e: AuditEntry) -> None:
        f = e.fields
        # What the log copies out of the header must be what the sender signed (the signature itself
        # is a job); the relay parsed the header strictly when it accepted the envelope.
        header_bytes = b64d(f["header"], field="audit.header", max_bytes=DEFAULT_LIMITS.max_header_bytes)
        header = json.loads(header_bytes)
        if not isinstance(header, dict) or any(
            header.get(k) != v
            for k, v in (
                ("id", f["message_id"]),
                ("channel", e.channel),
                ("sender", f["sender"]),
                ("recipients", f["recipients"]),
                ("seq", f["seq"]),
                ("precedence", f["precedence"]),
                ("exercise", f["exercise"]),
            )
        ):
            self._problem(Kind.EDITED, "the entry's fields do not match the header its sender signed", index)
        self._envelope_at[index] = (f["envelope_hash"], e.channel, f["message_id"], e.at_ms)
        self._envelope_index.setdefault(f["envelope_hash"], index)
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        sender = (f["sender"]["member"], f["sender"]["device"])
        message_id = f["message_id"]
        if message_id in ch.messages:
            self._problem(
                Kind.INSERTED,
                f"message {message_id} is logged a second time "
                f"(first at index {ch.messages[message_id].index})",
                index,
            )
            return
        recipients = frozenset((r["member"], r["device"]) for r in f["recipients"])
        ch.messages[message_id] = _Message(index, f["envelope_hash"], e.at_ms, sender, recipients)
        key = self._signer(index, ch, e.channel, *sender, "the envelope")
        sm = ch.members.get(sender[0])
        if sm is not None:
            if sm.summary.role not in _SENDING_ROLES:
                self._problem(Kind.INVALID, f"an envelope from {sender[0]}, a {sm.summary.role}", index)
            sm.summary.sent += 1
            sm.summary.sent_by_precedence[str(f["precedence"])] += 1
        for r in f["recipients"]:
            d = self._device(index, ch, e.channel, r["member"], r["device"])
            if d is not None:
                if not d.active_at(index):
                    self._problem(
                        Kind.INVALID,
                        f"addressed to {r['member']}/{r['device']}, which is not enrolled then",
                        index,
                    )
                elif r["prekey"] not in d.prekeys:
                    self._problem(
                        Kind.INVALID,
                        f"sealed to prekey {r['prekey']} of {r['member']}/{r['device']}, which its device "
                        "never published in this log",
                        index,
                    )
        for member in {r["member"] for r in f["recipients"]} - {sender[0]}:
            rm = ch.members.get(member)
            if rm is not None:
                rm.summary.received += 1
        for member, seq in f["seq"].items():
            self._streams.setdefault((e.channel, sender[0], sender[1], member), []).append((int(seq), index))
        if key is not None:
            self._job(("envelope", index, key, header.get("suite"), _envelope_job(f, header_bytes)))

    def _on_receipt(self, index: int, e: AuditEntry) -> None:
        f = e.fields
        # Read, not strictly parsed: the signature over these exact bytes is checked, and the fields
        # the log copies are compared; the relay parsed the receipt strictly when it accepted it.
        body = b64d(f["receipt"]["body"], field="receipt.body", max_bytes=MAX_RECORD_BYTES)
        sig = b64d(f["receipt"]["sig"], field="receipt.sig", max_bytes=MAX_SIGNATURE_BYTES)
        r = json.loads(body)
        kind, issuer_json, message_id = r["kind"], r.get("issuer"), r["message_id"]
        if kind == ReceiptKind.RELAY_ACCEPTED.value or not isinstance(issuer_json, dict):
            self._problem(Kind.INVALID, "a relay-accepted receipt is never logged as a receipt entry", index)
            return
        if (
            kind != f["kind"]
            or message_id != f["message_id"]
            or r["channel"] != e.channel
            or f["issuer"]
            != {
                "member": issuer_json["member"],
                "device": issuer_json["device"],
            }
        ):
            self._problem(Kind.EDITED, "the receipt entry's fields do not match the signed receipt", index)
            return
        issuer = (str(issuer_json["member"]), str(issuer_json["device"]))
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        msg = ch.messages.get(message_id)
        if msg is None:
            self._refs.append((index, "message", (e.channel, message_id)))
        elif msg.envelope_hash != r["envelope_hash"]:
            self._problem(Kind.EDITED, f"the receipt names another envelope of message {msg.index}", index)
        elif issuer not in msg.recipients:
            self._problem(
                Kind.INVALID,
                f"{issuer[0]}/{issuer[1]} issued a receipt for a message not addressed to it",
                index,
            )
        dedupe = (message_id, issuer[0], issuer[1], kind)
        if dedupe in ch.receipts:
            self._problem(
                Kind.INSERTED,
                f"a second {kind} receipt by {issuer[0]}/{issuer[1]} for message "
                f"{message_id} (first at index {ch.receipts[dedupe]})",
                index,
            )
            return
        ch.receipts[dedupe] = index
        im = ch.members.get(issuer[0])
        if im is not None:
            im.summary.receipts[str(kind)] += 1
        key = self._signer(index, ch, e.channel, *issuer, "the receipt")
        if key is not None:
            self._job(("receipt", index, key, body, sig))

    def _on_notice(self, index: int, e: AuditEntry) -> None:
        """A notice the relay signed (escalation, crisis change, …): checked with the relay's key."""
        notice = Notice.from_json(e.fields["notice"])
        if notice.kind.value != e.fields["kind"] or notice.channel != e.channel:
            self._problem(Kind.EDITED, "the notice entry's fields do not match the signed notice", index)
            return
        self._types[f"notice:{notice.kind.value}"] += 1
        if notice.kind.value == "escalation":
            self._escalations += 1
        if self._channel(index, e.channel) is not None and self._relay_key is not None:
            self._job(("notice", index, self._relay_key, notice.body, notice.signature))

    def _on_act(self, index: int, e: AuditEntry) -> None:
        """An act a device signed for its desk (crisis declared, check-in answered, …)."""
        act = Act.from_json(e.fields["act"])
        if (
            act.kind.value != e.fields["kind"]
            or act.channel != e.channel
            or act.issuer.to_json() != e.fields["issuer"]
        ):
            self._problem(Kind.EDITED, "the act entry's fields do not match the signed act", index)
            return
        self._types[f"act:{act.kind.value}"] += 1
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        key = self._signer(index, ch, e.channel, act.issuer.member, act.issuer.device, "the act")
        if key is not None:
            self._job(("act", index, key, act.body, act.signature))

    def _on_auth_refused(self, index: int, e: AuditEntry) -> None:
        ch = self._channel(index, e.channel)
        if ch is None:
            return
        f = e.fields
        if self._device(index, ch, e.channel, f["member"], f["device"]) is not None:
            ch.members[f["member"]].summary.auth_refused += 1

    # --- the end ---

    def finish(self) -> AuditReport:
        """Run what needs the whole file (tree heads, references, numbering) and build the report."""
        if self._jobs:
            self._checker.submit(self._jobs)
            self._jobs = []
        n = len(self._leaves)
        if self._header is None:
            self._problem(Kind.MALFORMED, "the file is empty")
        elif self._header and self._header.get("size") != n:
            size = self._header.get("size")
            if isinstance(size, int) and size > n:
                self._problem(
                    Kind.DELETED,
                    f"the header announces {size} entries; the file holds {n}: "
                    + (f"entries {n}–{size - 1} are missing" if size - 1 > n else f"entry {n} is missing"),
                    n,
                )
            else:
                self._problem(Kind.INSERTED, f"the header announces {size} entries; the file holds {n}", size)
        if self._end is None:
            self._problem(Kind.DELETED, "the file ends without its end record: it was cut short", n or None)
        elif self._end.get("entries") != n:
            self._problem(
                Kind.MALFORMED, f"the end record counts {self._end.get('entries')} entries, not {n}"
            )
        if self.check_entries:
            self._resolve_references()
            self._check_numbering()
            self._check_key_events()
        if self.check_signatures:
            self._collect_signature_failures()
        self._check_relay_receipts()
        newest, covered = self._check_tree_heads()
        problems = sorted(
            self._problems,
            # Exact evidence first: a range (index…last_index) only says that one of its entries is bad.
            key=lambda p: (
                p.index is None,
                0 if p.index is None else p.last_index if p.last_index is not None else p.index,
                id(p) not in self._primary,
                p.last_index is not None,
                p.line or 0,
            ),
        )
        channels = {
            name: {m: member.summary for m, member in ch.members.items()}
            for name, ch in self._channels.items()
        }
        header = self._header or {}
        return AuditReport(
            ok=not problems,
            relay_id=header.get("relay_id"),
            relay_public_key=self._relay_key,
            channel=header.get("channel"),
            entries=n,
            withheld=self._withheld,
            first_at_ms=self._first_at,
            last_at_ms=self._last_at,
            tree_heads=len(self._heads),
            covered=covered,
            newest_tree_head=newest,
            signatures=dict(self._signatures),
            types=dict(self._types),
            escalations=self._escalations,
            channels=channels,
            problems=tuple(problems),
            more_problems=self._more_problems,
            warnings=tuple(self._warnings),
            checked_entries=self.check_entries,
            checked_signatures=self.check_signatures,
        )

    def _resolve_references(self) -> None:
        for index, what, key in self._refs:
            defined: int | None = None
            ch = self._channels.get(key[0])
            if what == "channel":
                defined = ch.created if ch else None
                name = f"channel {key[0]}"
            elif what == "member":
                m = ch.members.get(key[1]) if ch else None
                defined = m.added if m else None
                name = f"member {key[1]}"
            elif what == "device":
                m = ch.members.get(key[1]) if ch else None
                d = m.devices.get(key[2]) if m else None
                defined = d.enrolled if d else None
                name = f"device {key[1]}/{key[2]}"
            else:
                msg = ch.messages.get(key[1]) if ch else None
                defined = msg.index if msg else None
                name = f"message {key[1]}"
            if defined is not None and defined > index:
                self._problem(
                    Kind.REORDERED,
                    f"this entry refers to {name}, which is logged only later, at index {defined}",
                    index,
                )
            elif defined is None:
                self._problem(
                    Kind.DELETED,
                    f"this entry refers to {name}, which is not in the log: its entry is missing",
                    index,
                )

    def _check_numbering(self) -> None:
        for (channel, member, device, to), seen in self._streams.items():
            numbers: dict[int, int] = {}
            previous = 0
            for seq, index in seen:
                if seq in numbers:
                    self._warn(
                        f"index {index}: {member}/{device} reused seq {seq} to {to} "
                        f"(first at index {numbers[seq]})"
                    )
                    continue
                if seq < previous:
                    self._warn(f"index {index}: {member}/{device} seq {seq} to {to} arrives after {previous}")
                numbers[seq] = index
                previous = max(previous, seq)
            missing = sorted(set(range(1, previous + 1)) - set(numbers))
            if missing:
                first = missing[0]
                after = min(index for seq, index in numbers.items() if seq > first)
                span = f"seq {first}" if len(missing) == 1 else f"seq {first} (and {len(missing) - 1} more)"
                self._problem(
                    Kind.DELETED,
                    f"{member}/{device} → {to} in {channel}: {span} is not in the log "
                    "though later numbers are; "
                    "an envelope-accepted entry is missing",
                    after,
                )

    def _check_key_events(self) -> None:
        if not self._exported_key_events:
            return
        derived = self._key_events
        for position, (line, record) in enumerate(self._exported_key_events):
            if position >= len(derived) or record != derived[position]:
                self._problem(
                    Kind.EDITED,
                    "the key-event records do not match the key changes the entries record",
                    record.get("index") if isinstance(record.get("index"), int) else None,
                    line=line,
                )
                return
        if len(self._exported_key_events) != len(derived):
            self._problem(Kind.DELETED, "key-event records are missing for key changes the entries record")

    def _collect_signature_failures(self) -> None:
        for index, kind, code, message in self._checker.failures():
            what = {"envelope": "envelope", "receipt": "receipt", "prekey": "prekey"}.get(kind, kind)
            if code == ErrorCode.BAD_SIGNATURE.value:
                self._problem(
                    Kind.FORGED_SIGNATURE,
                    f"the {what} signature does not verify with the key the log records for its signer: "
                    "the entry was edited or forged",
                    index,
                )
            elif code == ErrorCode.UNSUPPORTED_SUITE.value:
                self._problem(
                    Kind.UNKNOWN_KEY, f"the {what} is signed with a key of another suite: {message}", index
                )
            else:
                self._problem(
                    Kind.EDITED, f"the {what} entry does not match what was signed: {message}", index
                )

    def _check_relay_receipts(self) -> None:
        seen: set[int] = set()
        shift = 0  # entries found away from where the relay put them, by this much: reported once
        agreed = -1  # the last index where an envelope is where the relay's receipt puts it
        for line, index, wire in sorted(self._accepted, key=lambda a: a[1]):
            if not self.check_entries and index < len(self._leaves):
                continue  # nothing to compare it with
            try:
                receipt = _quick_receipt(wire)
            except (ProtocolError, ValueError, KeyError, TypeError):
                self._problem(Kind.MALFORMED, "an accepted record whose receipt does not parse", line=line)
                continue
            if receipt.kind is not ReceiptKind.RELAY_ACCEPTED or receipt.log_index != index:
                self._problem(
                    Kind.MALFORMED,
                    "an accepted record that is not the relay's receipt for its index",
                    line=line,
                )
                continue
            if index in seen:
                self._problem(Kind.INSERTED, f"two relay receipts for index {index}", line=line)
                continue
            seen.add(index)
            logged = self._envelope_at.get(index)
            mine = (b64e(receipt.envelope_hash), receipt.channel, receipt.message_id, receipt.at_ms)
            if logged == mine:
                shift, agreed = 0, index
                continue  # it agrees with the entry, so whether it is genuine changes nothing
            if self._relay_key is None:
                continue
            try:
                Receipt.from_json(wire).verify(self._relay_key)  # strictly, now that it is evidence
                self._signatures["relay_receipt"] += 1
            except ProtocolError:
                self._problem(
                    Kind.FORGED_SIGNATURE,
                    f"the relay receipt for index {index} is not signed by the relay: the file was edited",
                    line=line,
                )
                continue
            moved = self._envelope_index.get(mine[0])
            if moved is not None and moved != index:
                if moved - index == shift:
                    continue
                shift = moved - index
            if moved is None and index >= len(self._leaves):
                self._problem(
                    Kind.DELETED,
                    f"the relay accepted message {receipt.message_id} at index {index}; the log ends before",
                    index,
                )
            elif moved is None:
                self._problem(
                    Kind.DELETED,
                    f"the relay's signed receipt puts message {receipt.message_id} at index {index}; "
                    "that envelope is nowhere in the log",
                    index,
                    primary=True,
                )
                shift, agreed = shift - 1, index  # what follows moves down by one: not news
            elif moved > index:
                self._problem(
                    Kind.INSERTED,
                    f"the relay's signed receipt puts message {receipt.message_id} at index {index}, the log "
                    f"has it at {moved}: {moved - index} entr{'y was' if moved - index == 1 else 'ies were'} "
                    f"inserted before it, after index {agreed}",
                    agreed + 1,
                    moved - 1,
                )
            elif moved < index:
                self._problem(
                    Kind.DELETED,
                    f"the relay's signed receipt puts message {receipt.message_id} at index {index}, the log "
                    f"has it at {moved}: {index - moved} entr{'y was' if index - moved == 1 else 'ies were'} "
                    f"removed before it, after index {agreed}",
                    agreed + 1,
                    moved,
                )
            else:
                self._problem(
                    Kind.EDITED,
                    f"the entry at index {index} differs from what the relay's signed receipt says it logged "
                    "(time or message)",
                    index,
                )

    def _verified_heads(self) -> list[tuple[str, TreeHead]]:
        out: list[tuple[str, TreeHead]] = []
        if self._relay_key is None:
            return out
        for line, head in self._heads:
            try:
                head.verify(self._relay_key)
                self._signatures["tree_head"] += 1
            except ProtocolError:
                self._problem(
                    Kind.FORGED_SIGNATURE,
                    f"the tree head of size {head.size} is not signed by the relay: the file was edited",
                    line=line,
                )
                continue
            out.append(("relay", head))
        for source, head in self._extra_heads:
            try:
                head.verify(self._relay_key)
            except ProtocolError:
                self._problem(
                    Kind.INCONSISTENT_TREE_HEADS,
                    f"the tree head {source} (size {head.size}) is not signed by the relay key of this file: "
                    "the file was re-signed with another key, or the head is from another relay",
                )
                continue
            out.append((source, head))
        return out

    def _check_tree_heads(self) -> tuple[TreeHead | None, int]:
        heads = self._verified_heads()
        by_size: dict[int, tuple[str, TreeHead]] = {}
        for source, head in heads:
            other = by_size.get(head.size)
            if other is not None and other[1].root != head.root:
                self._problem(
                    Kind.INCONSISTENT_TREE_HEADS,
                    f"two tree heads of size {head.size} with different roots, both signed by the relay "
                    f"({other[0]} and {source}): the relay has shown two different histories",
                    min(head.size, len(self._leaves)) - 1 if head.size else None,
                )
            by_size.setdefault(head.size, (source, head))
        relay_heads = [h for s, h in heads if s == "relay"]
        newest = max(relay_heads, key=lambda h: h.size) if relay_heads else None
        n = len(self._leaves)
        if not heads:
            if n:
                self._problem(Kind.DELETED, "no tree head signed by the relay covers these entries", 0, n - 1)
            return newest, 0
        tree = MerkleTree(self._leaves)
        good = 0
        covered = 0
        for size in sorted(by_size):
            source, head = by_size[size]
            if size > n:
                self._problem(
                    Kind.DELETED,
                    f"the relay signed a tree head of size {size} ({source}), "
                    f"but the file holds {n} entries: "
                    f"entries {n}–{size - 1} are missing",
                    n,
                )
                break
            if tree.root(size) == head.root:
                good = size
                if source == "relay":
                    covered = size
                continue
            later = [by_size[s][1] for s in sorted(by_size) if size < s <= n][:1]
            self._explain_mismatch(tree, good, size, source, head, later)
            break
        if newest is not None and covered < n and not self._problems:
            self._warn(
                f"entries {covered}–{n - 1} are newer than the newest tree head and not yet covered by one"
            )
        return newest, covered

    def _explain_mismatch(
        self, tree: MerkleTree, good: int, size: int, source: str, head: TreeHead, later: list[TreeHead]
    ) -> None:
        """Name what happened between the last matching head (``good``) and this one.

        A what-if (an entry removed, two swapped) must match this head and the next one too, so that two
        entries swapped across a head are not taken for an insertion.
        """

        def fits(start: int, tail_for: Callable[[int], list[bytes]]) -> bool:
            return all(
                self._what_if_root(tree, h.size, start, tail_for(h.size)) == h.root for h in [head, *later]
            )

        external = source != "relay"
        what = f"the tree head of size {size}" + (f" ({source})" if external else "")
        leaves = self._leaves
        window = size - good
        if window <= self._max_window:
            # One entry inserted at p: the relay's tree is ours without leaf p.
            for p in range(good, min(size, len(leaves) - 1) + 1):
                if p >= len(leaves) - 1 and len(leaves) <= size:
                    break
                if fits(p, lambda end, p=p: leaves[p + 1 : end + 1]):  # type: ignore[misc]
                    self._problem(
                        Kind.INSERTED,
                        f"entry {p} is not in the log the relay signed ({what} matches the log without it)",
                        p,
                        primary=True,
                    )
                    return
            # Two entries swapped: both inside the window, or one in it and one later (an entry this
            # head covers, moved past its end). The relay's tree had leaf q where we have leaf p.
            pairs: list[tuple[int, int]]
            beyond = range(size, min(len(leaves), size + 64))
            if window <= 64:
                pairs = [(p, q) for p in range(good, size) for q in [*range(p + 1, size), *beyond]]
            else:
                pairs = [(p, p + 1) for p in range(good, size - 1)] + [(size - 1, q) for q in beyond]

            def swapped(p: int, q: int, end: int) -> list[bytes]:
                tail = leaves[p:end]
                if q < end:
                    tail[0], tail[q - p] = tail[q - p], tail[0]
                else:
                    tail[0] = leaves[q]
                return tail

            for p, q in pairs:
                if fits(p, lambda end, p=p, q=q: swapped(p, q, end)):  # type: ignore[misc]
                    self._problem(
                        Kind.REORDERED,
                        f"entries {p} and {q} are swapped "
                        f"({what} matches the log with them in the other order)",
                        p,
                        primary=True,
                    )
                    return
        if any(p.index is not None and good <= p.index < size for p in self._problems):
            return  # per-entry evidence already names the entry
        kind = Kind.INCONSISTENT_TREE_HEADS if external else Kind.EDITED
        self._problem(
            kind,
            f"{what} does not match the entries"
            + (f", while the one of size {good} does" if good else "")
            + (
                ": the relay showed its holder a different history, or this file was rewritten"
                if external
                else f": an entry in {good}–{size - 1} was edited or removed"
            ),
            good,
            size - 1 if size - 1 > good else None,
        )

    @staticmethod
    def _what_if_root(tree: MerkleTree, size: int, start: int, tail: Sequence[bytes]) -> bytes:
        """MTH of our leaves before ``start`` followed by ``tail``, cut to ``size``."""

        def root(lo: int, hi: int) -> bytes:
            if hi <= start:
                return tree.subtree_root(lo, hi)
            if lo >= start:
                return root_from_leaf_hashes(tail[lo - start : hi - start])
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            return node_hash(root(lo, lo + k), root(lo + k, hi))

        if len(tail) < size - start:
            return b""
        return root(0, size)


@dataclass(frozen=True)
class _QuickReceipt:
    kind: ReceiptKind
    log_index: int | None
    envelope_hash: bytes
    channel: str
    message_id: str
    at_ms: int


def _quick_receipt(wire: Any) -> _QuickReceipt:
    """The fields of a relay receipt, read without the strict parser: they are only compared with an
    entry, and the receipt is parsed strictly and its signature checked if they differ."""
    body = json.loads(b64d(wire["body"], field="receipt.body", max_bytes=4096))
    return _QuickReceipt(
        kind=ReceiptKind(body["kind"]),
        log_index=body.get("log_index"),
        envelope_hash=b64d(body["envelope_hash"], field="envelope_hash", max_bytes=32),
        channel=body["channel"],
        message_id=body["message_id"],
        at_ms=body["at_ms"],
    )


def _keys(f: Mapping[str, Any], keys: set[str]) -> None:
    if set(f) != keys:
        raise ExportLineError(f"expected the fields {sorted(keys)}, got {sorted(f)}")


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ExportLineError("expected a non-negative integer")
    return value


_HANDLERS = {
    EntryType.CHANNEL_CREATED: AuditLogVerifier._on_channel_created,
    EntryType.MEMBER_ADDED: AuditLogVerifier._on_member_added,
    EntryType.INVITE_CREATED: AuditLogVerifier._on_invite_created,
    EntryType.DEVICE_ENROLLED: AuditLogVerifier._on_device_enrolled,
    EntryType.PREKEYS_PUBLISHED: AuditLogVerifier._on_prekeys,
    EntryType.DEVICE_REVOKED: AuditLogVerifier._on_device_revoked,
    EntryType.MEMBER_REVOKED: AuditLogVerifier._on_member_revoked,
    EntryType.ENVELOPE_ACCEPTED: AuditLogVerifier._on_envelope,
    EntryType.RECEIPT: AuditLogVerifier._on_receipt,
    EntryType.AUTH_REFUSED: AuditLogVerifier._on_auth_refused,
    EntryType.NOTICE: AuditLogVerifier._on_notice,
    EntryType.ACT: AuditLogVerifier._on_act,
}
