"""The one module that calls into ``cryptography.hazmat``; everything else uses these few recipes.

Keys are generated from bytes supplied by the caller (a random source is a parameter everywhere in the
protocol core), so every result is reproducible in tests. The one exception is HPKE's ephemeral key,
which pyca/cryptography draws itself.

Failures are opaque on purpose: a bad signature is :class:`BadSignatureError`, any failure to open a
ciphertext is :class:`DecryptionFailedError`, with no detail that could serve as an oracle.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from hotline.protocol.errors import BadSignatureError, DecryptionFailedError, MalformedError

ED25519_PUBLIC_LEN = 32
ED25519_SEED_LEN = 32
ED25519_SIGNATURE_LEN = 64
X25519_KEY_LEN = 32
AES_KEY_LEN = 32
AES_NONCE_LEN = 12
AES_TAG_LEN = 16
HPKE_ENC_LEN = 32

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw
_NO_ENC = serialization.NoEncryption()

# RFC 9180 suite: DHKEM(X25519, HKDF-SHA256) 0x0020 / HKDF-SHA256 0x0001 / AES-256-GCM 0x0002.
_HPKE_X25519 = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


class SigningKey:
    """An Ed25519 private key, kept as its 32-byte seed."""

    __slots__ = ("_key", "_public")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != ED25519_SEED_LEN:
            raise MalformedError("an Ed25519 seed is 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._public = self._key.public_key().public_bytes(_RAW, _RAW_PUB)

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def seed(self) -> bytes:
        return self._key.private_bytes(_RAW, _RAW_PRIV, _NO_ENC)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


_P25519 = 2**255 - 19

# Encodings (sign bit cleared) of the points of order 1, 2, 4 and 8 on edwards25519. For such a key
# the signature (R = the key, S = 0) verifies for every message, so a device that enrolled one could
# later deny anything "it" signed. Non-canonical encodings (y >= p) are refused separately.
_SMALL_ORDER_ED25519 = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
        "0100000000000000000000000000000000000000000000000000000000000000",  # identity
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    )
)


def is_weak_ed25519_public_key(public: bytes) -> bool:
    """True for small-order points and non-canonical encodings, which no honest key generator makes."""
    masked = public[:31] + bytes([public[31] & 0x7F])
    y = int.from_bytes(masked, "little")
    return masked in _SMALL_ORDER_ED25519 or y >= _P25519


def load_verify_key(public: bytes) -> Ed25519PublicKey:
    if len(public) != ED25519_PUBLIC_LEN:
        raise MalformedError("an Ed25519 public key is 32 bytes")
    if is_weak_ed25519_public_key(public):
        raise MalformedError("a weak (small-order or non-canonical) Ed25519 public key is refused")
    try:
        return Ed25519PublicKey.from_public_bytes(public)
    except ValueError as exc:
        raise MalformedError("not an Ed25519 public key") from exc


def verify_signature(public: bytes, signature: bytes, message: bytes) -> None:
    """Raise :class:`BadSignatureError` unless ``signature`` is a valid Ed25519 signature."""
    if len(signature) != ED25519_SIGNATURE_LEN:
        raise BadSignatureError("signature does not verify")
    key = load_verify_key(public)
    try:
        key.verify(signature, message)
    except InvalidSignature as exc:
        raise BadSignatureError("signature does not verify") from exc


class KemKey:
    """An X25519 private key for HPKE, kept as its 32 raw bytes."""

    __slots__ = ("_key", "_public")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != X25519_KEY_LEN:
            raise MalformedError("an X25519 private key is 32 bytes")
        self._key = X25519PrivateKey.from_private_bytes(secret)
        self._public = self._key.public_key().public_bytes(_RAW, _RAW_PUB)

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def secret(self) -> bytes:
        return self._key.private_bytes(_RAW, _RAW_PRIV, _NO_ENC)

    def open(self, sealed: bytes, info: bytes) -> bytes:
        """HPKE Base-mode open of ``enc ‖ ciphertext``."""
        try:
            return _HPKE_X25519.decrypt(sealed, self._key, info=info)
        except (InvalidTag, ValueError) as exc:
            raise DecryptionFailedError("could not open") from exc


def hpke_seal(recipient_public: bytes, plaintext: bytes, info: bytes) -> bytes:
    """HPKE Base-mode single-shot seal; returns ``enc ‖ ciphertext``."""
    if len(recipient_public) != X25519_KEY_LEN:
        raise MalformedError("an X25519 public key is 32 bytes")
    try:
        public = X25519PublicKey.from_public_bytes(recipient_public)
        return _HPKE_X25519.encrypt(plaintext, public, info=info)
    except ValueError as exc:
        raise MalformedError("not a usable X25519 public key") from exc


def aead_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM; returns ciphertext ‖ 16-byte tag."""
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_open(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    if len(key) != AES_KEY_LEN or len(nonce) != AES_NONCE_LEN:
        raise DecryptionFailedError("could not open")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailedError("could not open") from exc


def scrypt_derive(passphrase: bytes, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    """scrypt (RFC 7914) to a 32-byte key for passphrase-protected key files."""
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)
