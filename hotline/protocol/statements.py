"""Other signed statements of the protocol: relay tree heads and device authentication.

* A *tree head* is the relay's signed statement of its audit log's size and Merkle root at a time.
* An *auth proof* is a device's signature over a relay challenge, proving it holds its signing key.

Like receipts, neither names a suite: the signer's key decides how the signature is checked (Ed25519 for
a ``hotline-c1`` key, both halves of the hybrid for a ``hotline-pq1`` key). A verifier that knows which
suite it requires passes ``suite``, and a key of another suite is ``unsupported_suite``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotline.protocol import crypto
from hotline.protocol.encoding import b64d, b64e, dump_json, frame, load_json_object
from hotline.protocol.errors import MalformedError, UnsupportedVersionError
from hotline.protocol.model import (
    MAX_SIGNATURE_BYTES,
    PROTOCOL_VERSION,
    DeviceAddress,
    Suite,
    is_protocol_version,
    require_int,
    require_object,
    require_str,
)

DS_TREE_HEAD = b"hotline/v1/tree-head"
DS_AUTH = b"hotline/v1/auth"
MAX_TREE_HEAD_BYTES = 1024


@dataclass(frozen=True)
class TreeHead:
    body: bytes
    signature: bytes
    size: int
    root: bytes
    at_ms: int

    def verify(self, relay_public_key: bytes, *, suite: Suite | None = None) -> None:
        if suite is not None:
            crypto.require_signing_key_suite(relay_public_key, suite, who="the relay")
        crypto.verify_signature(relay_public_key, self.signature, frame(DS_TREE_HEAD, self.body))

    def to_json(self) -> dict[str, str]:
        return {"body": b64e(self.body), "sig": b64e(self.signature)}

    @classmethod
    def from_json(cls, obj: object) -> TreeHead:
        f = require_object(obj, field="tree_head", keys={"body", "sig"})
        body = b64d(f["body"], field="tree_head.body", max_bytes=MAX_TREE_HEAD_BYTES)
        sig = b64d(f["sig"], field="tree_head.sig", max_bytes=MAX_SIGNATURE_BYTES)
        return cls.parse(body, sig)

    @classmethod
    def parse(cls, body: bytes, signature: bytes) -> TreeHead:
        obj = load_json_object(body, what="tree head", max_bytes=MAX_TREE_HEAD_BYTES)
        f = require_object(obj, field="tree_head", keys={"v", "type", "size", "root", "at_ms"})
        if not is_protocol_version(f["v"]):
            raise UnsupportedVersionError("tree head version is not supported")
        if f["type"] != "tree-head":
            raise MalformedError("tree_head.type: expected 'tree-head'")
        root = b64d(f["root"], field="tree_head.root", max_bytes=32)
        if len(root) != 32:
            raise MalformedError("tree_head.root: a SHA-256 hash is 32 bytes")
        return cls(
            body=body,
            signature=signature,
            size=require_int(f["size"], field="tree_head.size"),
            root=root,
            at_ms=require_int(f["at_ms"], field="tree_head.at_ms"),
        )


def sign_tree_head(relay_key: crypto.Signer, *, size: int, root: bytes, at_ms: int) -> TreeHead:
    body = dump_json(
        {
            "v": PROTOCOL_VERSION,
            "type": "tree-head",
            "size": size,
            "root": b64e(root),
            "at_ms": at_ms,
        }
    )
    return TreeHead.parse(body, relay_key.sign(frame(DS_TREE_HEAD, body)))


def auth_message(relay_id: str, challenge: bytes, device: DeviceAddress) -> bytes:
    """The bytes a device signs to log in: bound to the relay, the challenge and the device."""
    require_str(relay_id, field="relay_id", max_len=128)
    return frame(DS_AUTH, relay_id.encode(), challenge, device.member.encode(), device.device.encode())


def sign_auth_challenge(
    signing: crypto.Signer, relay_id: str, challenge: bytes, device: DeviceAddress
) -> bytes:
    return signing.sign(auth_message(relay_id, challenge, device))


def verify_auth_proof(
    public_key: bytes,
    signature: bytes,
    relay_id: str,
    challenge: bytes,
    device: DeviceAddress,
    *,
    suite: Suite | None = None,
) -> None:
    if suite is not None:
        crypto.require_signing_key_suite(public_key, suite, who=str(device))
    crypto.verify_signature(public_key, signature, auth_message(relay_id, challenge, device))
