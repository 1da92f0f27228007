"""The one module that calls into ``cryptography.hazmat``; everything else uses these few recipes.

Two suites (docs/PROTOCOL.md §2, ADR 0006): ``hotline-c1`` signs with Ed25519 and wraps keys with HPKE
over X25519; ``hotline-pq1`` signs with Ed25519 *and* ML-DSA-65 (both must verify) and wraps keys with
HPKE over the MLKEM768-X25519 hybrid KEM. A signer's public key says which suite it belongs to (its
length differs), so :func:`verify_signature` needs no other hint.

Keys are generated from bytes supplied by the caller (a random source is a parameter everywhere in the
protocol core), so every result is reproducible in tests. Two exceptions, because pyca/cryptography
offers no way to pass randomness in: HPKE's ephemeral key (both suites), and ML-DSA's per-signature
randomness (FIPS 204 "hedged" signing), so a ``hotline-pq1`` signature differs on every call even though
its Ed25519 half does not.

Failures are opaque on purpose: a bad signature is :class:`BadSignatureError`, any failure to open a
ciphertext is :class:`DecryptionFailedError`, with no detail that could serve as an oracle.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from hotline.protocol.encoding import frame
from hotline.protocol.errors import (
    BadSignatureError,
    DecryptionFailedError,
    MalformedError,
    UnsupportedSuiteError,
)
from hotline.protocol.model import Suite

ED25519_PUBLIC_LEN = 32
ED25519_SEED_LEN = 32
ED25519_SIGNATURE_LEN = 64
X25519_KEY_LEN = 32
AES_KEY_LEN = 32
AES_NONCE_LEN = 12
AES_TAG_LEN = 16
HPKE_ENC_LEN = 32

MLDSA65_SEED_LEN = 32  # FIPS 204 key-generation seed xi
MLDSA65_PUBLIC_LEN = 1952
MLDSA65_SIGNATURE_LEN = 3309
MLKEM768_SEED_LEN = 64  # FIPS 203 d ‖ z
MLKEM768_PUBLIC_LEN = 1184
MLKEM768_CIPHERTEXT_LEN = 1088

HYBRID_SEED_LEN = ED25519_SEED_LEN + MLDSA65_SEED_LEN  # 64
HYBRID_PUBLIC_LEN = ED25519_PUBLIC_LEN + MLDSA65_PUBLIC_LEN  # 1984
HYBRID_SIGNATURE_LEN = ED25519_SIGNATURE_LEN + MLDSA65_SIGNATURE_LEN  # 3373
XWING_SEED_LEN = 32  # an MLKEM768-X25519 private key is a 32-byte seed (draft-ietf-hpke-pq)
XWING_PUBLIC_LEN = MLKEM768_PUBLIC_LEN + X25519_KEY_LEN  # 1216
XWING_ENC_LEN = MLKEM768_CIPHERTEXT_LEN + X25519_KEY_LEN  # 1120

# Both halves of a hotline-pq1 signature sign frame(DS_HYBRID_SIGNATURE, message), never the message
# itself: an Ed25519 half cut from a hybrid signature is then a signature over bytes that no hotline-c1
# verifier ever checks, so stripping the ML-DSA half cannot turn it into a valid classic signature.
DS_HYBRID_SIGNATURE = b"hotline/v1/hotline-pq1/signature"

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw
_NO_ENC = serialization.NoEncryption()

# RFC 9180 suite: DHKEM(X25519, HKDF-SHA256) 0x0020 / HKDF-SHA256 0x0001 / AES-256-GCM 0x0002.
_HPKE_X25519 = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
# MLKEM768-X25519 0x647a (X-Wing combiner; draft-ietf-hpke-pq) / HKDF-SHA256 0x0001 / AES-256-GCM 0x0002.
_HPKE_XWING = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


class Signer(Protocol):
    """A device's or the relay's private signing key, of either suite."""

    @property
    def suite(self) -> Suite: ...

    @property
    def public_bytes(self) -> bytes: ...

    def seed(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


class KemSecret(Protocol):
    """A prekey's private HPKE key, of either suite."""

    @property
    def suite(self) -> Suite: ...

    @property
    def public_bytes(self) -> bytes: ...

    def secret(self) -> bytes: ...

    def open(self, sealed: bytes, info: bytes) -> bytes: ...


class SigningKey:
    """An Ed25519 private key (suite ``hotline-c1``), kept as its 32-byte seed."""

    __slots__ = ("_key", "_public")

    suite = Suite.CLASSIC

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


class HybridSigningKey:
    """An Ed25519 + ML-DSA-65 key pair (suite ``hotline-pq1``), kept as its 64-byte seed.

    seed = Ed25519 seed (32) ‖ ML-DSA-65 seed xi (32); public key = Ed25519 (32) ‖ ML-DSA-65 (1952);
    signature = Ed25519 (64) ‖ ML-DSA-65 (3309), both over ``frame(DS_HYBRID_SIGNATURE, message)``;
    ML-DSA signs with an empty context, hedged (randomized by pyca/cryptography).
    """

    __slots__ = ("_ed", "_ml", "_public")

    suite = Suite.PQ_HYBRID

    def __init__(self, seed: bytes) -> None:
        if len(seed) != HYBRID_SEED_LEN:
            raise MalformedError("a hotline-pq1 signing seed is 64 bytes")
        self._ed = Ed25519PrivateKey.from_private_bytes(seed[:ED25519_SEED_LEN])
        self._ml = MLDSA65PrivateKey.from_seed_bytes(seed[ED25519_SEED_LEN:])
        self._public = self._ed.public_key().public_bytes(
            _RAW, _RAW_PUB
        ) + self._ml.public_key().public_bytes(_RAW, _RAW_PUB)

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def seed(self) -> bytes:
        return self._ed.private_bytes(_RAW, _RAW_PRIV, _NO_ENC) + self._ml.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        prefixed = frame(DS_HYBRID_SIGNATURE, message)
        return self._ed.sign(prefixed) + self._ml.sign(prefixed)


def signing_key(suite: Suite, seed: bytes) -> Signer:
    """The signing key of ``suite`` made from ``seed`` (``suite.sizes.signing_seed`` bytes)."""
    if suite is Suite.PQ_HYBRID:
        return HybridSigningKey(seed)
    return SigningKey(seed)


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


def _load_mldsa_key(public: bytes) -> MLDSA65PublicKey:
    if len(public) != MLDSA65_PUBLIC_LEN:
        raise MalformedError("an ML-DSA-65 public key is 1952 bytes")
    try:
        return MLDSA65PublicKey.from_public_bytes(public)
    except ValueError as exc:
        raise MalformedError("not an ML-DSA-65 public key") from exc


def suite_of_signing_key(public: bytes) -> Suite:
    """The suite a signing public key belongs to, told by its length; ``malformed`` if it fits none.

    A hybrid key's Ed25519 half gets the same weak-key checks as a classic key.
    """
    if len(public) == HYBRID_PUBLIC_LEN:
        load_verify_key(public[:ED25519_PUBLIC_LEN])
        _load_mldsa_key(public[ED25519_PUBLIC_LEN:])
        return Suite.PQ_HYBRID
    if len(public) == ED25519_PUBLIC_LEN:
        load_verify_key(public)
        return Suite.CLASSIC
    raise MalformedError("a signing public key is 32 (hotline-c1) or 1984 (hotline-pq1) bytes")


def require_signing_key_suite(public: bytes, suite: Suite, *, who: str = "the signer") -> None:
    """Raise :class:`UnsupportedSuiteError` unless ``public`` is a signing key of ``suite``.

    For verifiers that know which suite applies (a channel's policy, an envelope header): a classic key
    in a ``hotline-pq1`` channel, or the reverse, is refused by name instead of as a bad signature.
    """
    actual = suite_of_signing_key(public)
    if actual is not suite:
        raise UnsupportedSuiteError(f"{who} signs with a {actual.value} key, not {suite.value}")


def verify_signature(public: bytes, signature: bytes, message: bytes) -> None:
    """Raise :class:`BadSignatureError` unless ``signature`` is valid for ``message`` under ``public``.

    The public key picks the algorithm: 32 bytes is Ed25519 (``hotline-c1``), 1984 bytes is the
    ``hotline-pq1`` hybrid, whose Ed25519 and ML-DSA-65 halves must *both* verify. A signature of the
    other suite's length is simply a bad signature.
    """
    if len(public) == HYBRID_PUBLIC_LEN:
        _verify_hybrid(public, signature, message)
        return
    if len(signature) != ED25519_SIGNATURE_LEN:
        raise BadSignatureError("signature does not verify")
    key = load_verify_key(public)
    try:
        key.verify(signature, message)
    except InvalidSignature as exc:
        raise BadSignatureError("signature does not verify") from exc


def _verify_hybrid(public: bytes, signature: bytes, message: bytes) -> None:
    if len(signature) != HYBRID_SIGNATURE_LEN:
        raise BadSignatureError("signature does not verify")
    ed_key = load_verify_key(public[:ED25519_PUBLIC_LEN])
    ml_key = _load_mldsa_key(public[ED25519_PUBLIC_LEN:])
    prefixed = frame(DS_HYBRID_SIGNATURE, message)
    valid = 0
    try:
        ed_key.verify(signature[:ED25519_SIGNATURE_LEN], prefixed)
        valid += 1
    except InvalidSignature:
        pass
    try:
        ml_key.verify(signature[ED25519_SIGNATURE_LEN:], prefixed)
        valid += 1
    except InvalidSignature:
        pass
    # Both halves are always checked, and which one failed is not said: either failing is the same error.
    if valid != 2:
        raise BadSignatureError("signature does not verify")


class KemKey:
    """An X25519 private key for HPKE (suite ``hotline-c1``), kept as its 32 raw bytes."""

    __slots__ = ("_key", "_public")

    suite = Suite.CLASSIC

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


class HybridKemKey:
    """An MLKEM768-X25519 private key for HPKE (suite ``hotline-pq1``), kept as its 32-byte seed.

    As in draft-ietf-hpke-pq (and X-Wing): SHAKE256(seed, 96 bytes) = ML-KEM-768 seed d ‖ z (64) ‖
    X25519 private key (32); the public key is the ML-KEM-768 encapsulation key (1184) ‖ the X25519
    public key (32). So any implementation of that KEM can load the same seed.
    """

    __slots__ = ("_key", "_public", "_seed")

    suite = Suite.PQ_HYBRID

    def __init__(self, seed: bytes) -> None:
        if len(seed) != XWING_SEED_LEN:
            raise MalformedError("an MLKEM768-X25519 private key is a 32-byte seed")
        expanded = hashlib.shake_256(seed).digest(MLKEM768_SEED_LEN + X25519_KEY_LEN)
        mlkem = MLKEM768PrivateKey.from_seed_bytes(expanded[:MLKEM768_SEED_LEN])
        x25519 = X25519PrivateKey.from_private_bytes(expanded[MLKEM768_SEED_LEN:])
        self._seed = bytes(seed)
        self._key = hpke.MLKEM768X25519PrivateKey(mlkem, x25519)
        self._public = mlkem.public_key().public_bytes(_RAW, _RAW_PUB) + x25519.public_key().public_bytes(
            _RAW, _RAW_PUB
        )

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def secret(self) -> bytes:
        return self._seed

    def open(self, sealed: bytes, info: bytes) -> bytes:
        """HPKE Base-mode open of ``enc (1120) ‖ ciphertext``."""
        try:
            return _HPKE_XWING.decrypt(sealed, self._key, info=info)
        except (InvalidTag, ValueError) as exc:
            raise DecryptionFailedError("could not open") from exc


def kem_key(suite: Suite, secret: bytes) -> KemSecret:
    """The prekey secret of ``suite`` made from ``secret`` (``suite.sizes.prekey_secret`` bytes)."""
    if suite is Suite.PQ_HYBRID:
        return HybridKemKey(secret)
    return KemKey(secret)


def hpke_seal(
    recipient_public: bytes, plaintext: bytes, info: bytes, *, suite: Suite = Suite.CLASSIC
) -> bytes:
    """HPKE Base-mode single-shot seal with ``suite``'s KEM; returns ``enc ‖ ciphertext``."""
    if suite is Suite.PQ_HYBRID:
        return _hpke_seal_hybrid(recipient_public, plaintext, info)
    if len(recipient_public) != X25519_KEY_LEN:
        raise MalformedError("an X25519 public key is 32 bytes")
    try:
        public = X25519PublicKey.from_public_bytes(recipient_public)
        return _HPKE_X25519.encrypt(plaintext, public, info=info)
    except ValueError as exc:
        raise MalformedError("not a usable X25519 public key") from exc


def _hpke_seal_hybrid(recipient_public: bytes, plaintext: bytes, info: bytes) -> bytes:
    if len(recipient_public) != XWING_PUBLIC_LEN:
        raise MalformedError("an MLKEM768-X25519 public key is 1216 bytes")
    try:
        public = hpke.MLKEM768X25519PublicKey(
            MLKEM768PublicKey.from_public_bytes(recipient_public[:MLKEM768_PUBLIC_LEN]),
            X25519PublicKey.from_public_bytes(recipient_public[MLKEM768_PUBLIC_LEN:]),
        )
        return _HPKE_XWING.encrypt(plaintext, public, info=info)
    except ValueError as exc:
        raise MalformedError("not a usable MLKEM768-X25519 public key") from exc


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
