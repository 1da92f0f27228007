"""Device keys: the identity signing key, signed HPKE prekeys, and the on-disk key file format.

A device owns two kinds of key, both of its one suite. Its *signing key* (Ed25519 in ``hotline-c1``,
Ed25519 + ML-DSA-65 in ``hotline-pq1``) is its identity: it signs envelopes, receipts, prekeys and
authentication challenges. Its *prekeys* (X25519 or MLKEM768-X25519, for HPKE) receive the content
keys of envelopes; each is published as a :class:`SignedPrekey` — suite, id, public key, validity
window — signed by the signing key, so the relay cannot substitute its own. Prekeys rotate; erasing an
old prekey's secret is what bounds how far back a stolen device can read.

Private keys exist only in :class:`DeviceKeys` and the key file, which may be sealed with a passphrase
(scrypt + AES-256-GCM).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hotline.protocol import crypto
from hotline.protocol.encoding import b64d, b64e, dump_json, frame, load_json_object
from hotline.protocol.errors import (
    BadPassphraseError,
    DecryptionFailedError,
    ExpiredPrekeyError,
    MalformedError,
    UnsupportedSuiteError,
    UnsupportedVersionError,
)
from hotline.protocol.ids import RandomSource
from hotline.protocol.model import (
    DEFAULT_LIMITS,
    PREKEY_ID_RE,
    PROTOCOL_VERSION,
    DeviceAddress,
    Limits,
    Suite,
    is_protocol_version,
    require_int,
    require_name,
    require_object,
    require_str,
)

DS_PREKEY = b"hotline/v1/prekey"
DS_KEYFILE = b"hotline/v1/keyfile"

DAY_MS = 24 * 60 * 60 * 1000
DEFAULT_PREKEY_LIFETIME_MS = 7 * DAY_MS

# scrypt cost for key files: N=2^15, r=8, p=1 (about 32 MiB and 0.1 s). Files claiming more are refused.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAX_N = 2**20
_SCRYPT_MAX_MEMORY = 256 * 1024 * 1024  # bytes (scrypt needs 128·N·r); a hostile file cannot ask for more


def prekey_id_for(public_key: bytes) -> str:
    """A prekey's id: the first 9 bytes of SHA-256 of its public key, base64url (12 characters)."""
    return b64e(crypto.sha256(public_key)[:9])


@dataclass(frozen=True)
class SignedPrekey:
    """A published prekey. ``body`` is the exact signed JSON; the other fields are parsed from it."""

    body: bytes
    signature: bytes
    suite: Suite
    owner: DeviceAddress
    id: str
    public_key: bytes
    not_before_ms: int
    expires_ms: int

    def to_json(self) -> dict[str, str]:
        return {"body": b64e(self.body), "sig": b64e(self.signature)}

    @classmethod
    def from_json(cls, obj: object, *, limits: Limits = DEFAULT_LIMITS) -> SignedPrekey:
        fields = require_object(obj, field="prekey", keys={"body", "sig"})
        body = b64d(fields["body"], field="prekey.body", max_bytes=limits.max_prekey_bytes)
        # The body names the suite, and the suite the signature's length: parse it first.
        unsigned = cls.parse(body, b"", limits=limits)
        sig = b64d(fields["sig"], field="prekey.sig", max_bytes=unsigned.suite.sizes.signature)
        return replace(unsigned, signature=sig)

    @classmethod
    def parse(cls, body: bytes, signature: bytes, *, limits: Limits = DEFAULT_LIMITS) -> SignedPrekey:
        obj = load_json_object(body, what="prekey", max_bytes=limits.max_prekey_bytes)
        f = require_object(
            obj,
            field="prekey",
            keys={
                "v",
                "type",
                "suite",
                "member",
                "device",
                "id",
                "public_key",
                "not_before_ms",
                "expires_ms",
            },
        )
        if not is_protocol_version(f["v"]):
            raise UnsupportedVersionError(f"prekey version {f['v']!r} is not supported")
        if f["type"] != "prekey":
            raise MalformedError("prekey.type: expected 'prekey'")
        suite = _require_suite(f["suite"], field="prekey.suite")
        key_len = suite.sizes.prekey_public_key
        public_key = b64d(f["public_key"], field="prekey.public_key", max_bytes=key_len)
        if len(public_key) != key_len:
            raise MalformedError(f"prekey.public_key: a {suite.value} prekey public key is {key_len} bytes")
        pk_id = require_str(f["id"], field="prekey.id", max_len=32)
        if not PREKEY_ID_RE.fullmatch(pk_id) or pk_id != prekey_id_for(public_key):
            raise MalformedError("prekey.id: does not match the public key")
        not_before = require_int(f["not_before_ms"], field="prekey.not_before_ms")
        expires = require_int(f["expires_ms"], field="prekey.expires_ms")
        if expires <= not_before:
            raise MalformedError("prekey: expires_ms must be after not_before_ms")
        return cls(
            body=body,
            signature=signature,
            suite=suite,
            owner=DeviceAddress(
                require_name(f["member"], field="prekey.member"),
                require_name(f["device"], field="prekey.device"),
            ),
            id=pk_id,
            public_key=public_key,
            not_before_ms=not_before,
            expires_ms=expires,
        )

    def verify(self, signing_public_key: bytes) -> None:
        """Raise :class:`BadSignatureError` unless the owner's signing key signed this prekey.

        A prekey of one suite signed by a key of the other is :class:`UnsupportedSuiteError`: a device
        has one suite, and a sender must never wrap a ``hotline-pq1`` message to a classic prekey.
        """
        crypto.require_signing_key_suite(signing_public_key, self.suite, who=f"the owner of prekey {self.id}")
        crypto.verify_signature(signing_public_key, self.signature, frame(DS_PREKEY, self.body))

    def is_valid_at(self, now_ms: int) -> bool:
        return self.not_before_ms <= now_ms < self.expires_ms

    def require_valid_at(self, now_ms: int) -> None:
        if not self.is_valid_at(now_ms):
            raise ExpiredPrekeyError(f"prekey {self.id} of {self.owner} is not valid now")


def _require_suite(value: object, *, field: str) -> Suite:
    if not isinstance(value, str):
        raise MalformedError(f"{field}: expected a string")
    try:
        return Suite(value)
    except ValueError as exc:
        raise UnsupportedSuiteError(f"{field}: suite {value!r} is not supported") from exc


@dataclass
class PrekeySecret:
    secret: crypto.KemSecret
    signed: SignedPrekey


@dataclass
class DeviceKeys:
    """All private key material of one device. Never leaves the device except as a sealed key file.

    Every key is of ``suite``: the signing key and each prekey (checked on construction and on load).
    """

    address: DeviceAddress
    signing: crypto.Signer
    prekeys: dict[str, PrekeySecret] = field(default_factory=dict)
    suite: Suite = Suite.CLASSIC

    def __post_init__(self) -> None:
        if self.signing.suite is not self.suite:
            raise UnsupportedSuiteError(
                f"a {self.signing.suite.value} signing key cannot serve a {self.suite.value} device"
            )

    @classmethod
    def generate(
        cls,
        address: DeviceAddress,
        rng: RandomSource,
        now_ms: int,
        prekey_lifetime_ms: int = DEFAULT_PREKEY_LIFETIME_MS,
        *,
        suite: Suite = Suite.CLASSIC,
    ) -> DeviceKeys:
        """New keys of ``suite``: draws the signing seed, then the first prekey's secret, from ``rng``."""
        signing = crypto.signing_key(suite, rng(suite.sizes.signing_seed))
        keys = cls(address=address, signing=signing, suite=suite)
        keys.new_prekey(rng, now_ms, prekey_lifetime_ms)
        return keys

    @property
    def signing_public_key(self) -> bytes:
        return self.signing.public_bytes

    def new_prekey(
        self, rng: RandomSource, now_ms: int, lifetime_ms: int = DEFAULT_PREKEY_LIFETIME_MS
    ) -> SignedPrekey:
        """Make, sign and keep a new prekey valid from ``now_ms`` for ``lifetime_ms``."""
        secret = crypto.kem_key(self.suite, rng(self.suite.sizes.prekey_secret))
        body = dump_json(
            {
                "v": PROTOCOL_VERSION,
                "type": "prekey",
                "suite": self.suite.value,
                "member": self.address.member,
                "device": self.address.device,
                "id": prekey_id_for(secret.public_bytes),
                "public_key": b64e(secret.public_bytes),
                "not_before_ms": now_ms,
                "expires_ms": now_ms + lifetime_ms,
            }
        )
        signature = self.signing.sign(frame(DS_PREKEY, body))
        signed = SignedPrekey.parse(body, signature)
        self.prekeys[signed.id] = PrekeySecret(secret, signed)
        return signed

    def current_prekey(self, now_ms: int) -> SignedPrekey | None:
        """The valid prekey that expires last, or None."""
        valid = [p.signed for p in self.prekeys.values() if p.signed.is_valid_at(now_ms)]
        return max(valid, key=lambda p: (p.expires_ms, p.id), default=None)

    def erase_prekey(self, prekey_id: str) -> None:
        """Forget a prekey's secret for good; envelopes sealed to it can no longer be opened here."""
        self.prekeys.pop(prekey_id, None)

    def erase_prekeys_expired_before(self, cutoff_ms: int) -> list[str]:
        """Erase every prekey that expired before ``cutoff_ms`` (now minus a grace period)."""
        gone = [pid for pid, p in self.prekeys.items() if p.signed.expires_ms < cutoff_ms]
        for pid in gone:
            self.erase_prekey(pid)
        return gone

    # --- key file -------------------------------------------------------------------------------

    def to_plain_json(self) -> dict[str, Any]:
        return {
            "v": PROTOCOL_VERSION,
            "type": "hotline-device-keys",
            "suite": self.suite.value,
            "member": self.address.member,
            "device": self.address.device,
            "signing_seed": b64e(self.signing.seed()),
            "prekeys": [
                {"secret": b64e(p.secret.secret()), "signed": p.signed.to_json()}
                for p in sorted(self.prekeys.values(), key=lambda p: p.signed.not_before_ms)
            ],
        }

    @classmethod
    def from_plain_json(cls, obj: object) -> DeviceKeys:
        f = require_object(
            obj,
            field="keyfile",
            keys={"v", "type", "suite", "member", "device", "signing_seed", "prekeys"},
        )
        if not is_protocol_version(f["v"]) or f["type"] != "hotline-device-keys":
            raise UnsupportedVersionError("not a hotline device key file of a supported version")
        address = DeviceAddress(
            require_name(f["member"], field="keyfile.member"),
            require_name(f["device"], field="keyfile.device"),
        )
        suite = _require_suite(f["suite"], field="keyfile.suite")
        keys = cls(
            address=address,
            signing=crypto.signing_key(suite, b64d(f["signing_seed"], field="keyfile.signing_seed")),
            suite=suite,
        )
        if not isinstance(f["prekeys"], list):
            raise MalformedError("keyfile.prekeys: expected a list")
        for i, item in enumerate(f["prekeys"]):
            pf = require_object(item, field=f"keyfile.prekeys[{i}]", keys={"secret", "signed"})
            secret = crypto.kem_key(suite, b64d(pf["secret"], field=f"keyfile.prekeys[{i}].secret"))
            signed = SignedPrekey.from_json(pf["signed"])
            signed.verify(keys.signing_public_key)
            if signed.public_key != secret.public_bytes or signed.owner != address:
                raise MalformedError(f"keyfile.prekeys[{i}]: secret does not match its prekey")
            keys.prekeys[signed.id] = PrekeySecret(secret, signed)
        return keys

    def to_file(
        self,
        passphrase: str | None,
        rng: RandomSource,
        *,
        scrypt_n: int = SCRYPT_N,
    ) -> bytes:
        """Serialize to key-file bytes; sealed with scrypt + AES-256-GCM when a passphrase is given."""
        plain = dump_json(self.to_plain_json())
        if passphrase is None:
            return plain
        salt = rng(16)
        nonce = rng(crypto.AES_NONCE_LEN)
        key = crypto.scrypt_derive(passphrase.encode("utf-8"), salt, n=scrypt_n, r=SCRYPT_R, p=SCRYPT_P)
        ciphertext = crypto.aead_seal(key, nonce, plain, DS_KEYFILE)
        return dump_json(
            {
                "v": PROTOCOL_VERSION,
                "type": "hotline-sealed-device-keys",
                "kdf": {
                    "name": "scrypt",
                    "n": scrypt_n,
                    "r": SCRYPT_R,
                    "p": SCRYPT_P,
                    "salt": b64e(salt),
                },
                "nonce": b64e(nonce),
                "ciphertext": b64e(ciphertext),
            }
        )

    @classmethod
    def from_file(cls, data: bytes, passphrase: str | None) -> DeviceKeys:
        """Load key-file bytes. Raises :class:`BadPassphraseError` if a sealed file will not open."""
        obj = load_json_object(data, what="key file", max_bytes=4 * 1024 * 1024)
        if obj.get("type") == "hotline-device-keys":
            return cls.from_plain_json(obj)
        f = require_object(obj, field="keyfile", keys={"v", "type", "kdf", "nonce", "ciphertext"})
        if not is_protocol_version(f["v"]) or f["type"] != "hotline-sealed-device-keys":
            raise UnsupportedVersionError("not a hotline key file of a supported version")
        if passphrase is None:
            raise BadPassphraseError("this key file is sealed with a passphrase; none was given")
        kdf = require_object(f["kdf"], field="keyfile.kdf", keys={"name", "n", "r", "p", "salt"})
        if kdf["name"] != "scrypt":
            raise UnsupportedSuiteError("keyfile.kdf: only scrypt is supported")
        n = require_int(kdf["n"], field="keyfile.kdf.n", minimum=2, maximum=_SCRYPT_MAX_N)
        r = require_int(kdf["r"], field="keyfile.kdf.r", minimum=1, maximum=32)
        p = require_int(kdf["p"], field="keyfile.kdf.p", minimum=1, maximum=16)
        if n & (n - 1):
            raise MalformedError("keyfile.kdf.n: must be a power of two")
        if 128 * n * r > _SCRYPT_MAX_MEMORY:
            raise MalformedError("keyfile.kdf: scrypt parameters demand more than 256 MiB of memory")
        salt = b64d(kdf["salt"], field="keyfile.kdf.salt", max_bytes=64)
        key = crypto.scrypt_derive(passphrase.encode("utf-8"), salt, n=n, r=r, p=p)
        nonce = b64d(f["nonce"], field="keyfile.nonce", max_bytes=crypto.AES_NONCE_LEN)
        ciphertext = b64d(f["ciphertext"], field="keyfile.ciphertext")
        try:
            plain = crypto.aead_open(key, nonce, ciphertext, DS_KEYFILE)
        except DecryptionFailedError as exc:
            raise BadPassphraseError("the passphrase is wrong, or the key file has been altered") from exc
        return cls.from_plain_json(load_json_object(plain, what="key file", max_bytes=len(plain)))
