"""The sans-I/O protocol core of hotline.

No I/O, no clock and no randomness of its own: ``now_ms`` and a random source (``rng(n) -> bytes``)
are parameters, so every result can be reproduced. The relay, the client library, the CLI, the
exercise engine and the tests all build on this package. ``tests/protocol/test_boundary.py`` enforces
that it imports nothing that does I/O. The wire format is specified in docs/PROTOCOL.md.
"""

from hotline.protocol.content import Content, word_count
from hotline.protocol.envelope import Envelope, Header, OpenedMessage, Recipient, open_envelope, seal_envelope
from hotline.protocol.errors import ErrorCode, ProtocolError
from hotline.protocol.fingerprints import fingerprint, safety_number
from hotline.protocol.ids import RandomSource, uuid7
from hotline.protocol.keys import DeviceKeys, SignedPrekey
from hotline.protocol.model import DEFAULT_LIMITS, DeviceAddress, Intent, Limits, Precedence, Suite
from hotline.protocol.receipts import Receipt, ReceiptKind, issue_device_receipt, issue_relay_accepted
from hotline.protocol.receiver import Accepted, Duplicate, GapDetected, ReceiverState, Replay
from hotline.protocol.statements import TreeHead, sign_tree_head

__all__ = [
    "DEFAULT_LIMITS",
    "Accepted",
    "Content",
    "DeviceAddress",
    "DeviceKeys",
    "Duplicate",
    "Envelope",
    "ErrorCode",
    "GapDetected",
    "Header",
    "Intent",
    "Limits",
    "OpenedMessage",
    "Precedence",
    "ProtocolError",
    "RandomSource",
    "Receipt",
    "ReceiptKind",
    "ReceiverState",
    "Recipient",
    "Replay",
    "SignedPrekey",
    "Suite",
    "TreeHead",
    "fingerprint",
    "issue_device_receipt",
    "issue_relay_accepted",
    "open_envelope",
    "safety_number",
    "seal_envelope",
    "sign_tree_head",
    "uuid7",
    "word_count",
]
