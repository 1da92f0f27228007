"""The relay's own secrets in its data dir: its Ed25519 signing key and the admin token.

Both are created on first start with mode 0600 (written aside and linked into place, so two
processes starting at once cannot both write one, nor read a half-written one) and only read
afterwards. The admin token's *path* is shown to the operator, never the token. The relay's key
signs ``relay-accepted`` receipts and tree heads only: it cannot read or forge a message.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hotline.protocol import crypto
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.fingerprints import fingerprint
from hotline.protocol.ids import RandomSource

log = logging.getLogger(__name__)

RELAY_KEY_FILE = "relay.key"
ADMIN_TOKEN_FILE = "admin.token"
RELAY_ID_PREFIX = "hotline-relay:"


def relay_id_for(public_key: bytes) -> str:
    """``hotline-relay:`` and the 32 hex digits of the key's fingerprint: stable for the key's life."""
    return RELAY_ID_PREFIX + fingerprint(public_key).replace(" ", "")


@dataclass(frozen=True)
class RelayIdentity:
    signing_key: crypto.SigningKey
    admin_token: str
    admin_token_path: Path
    created: bool  # True when this start created the files

    @property
    def public_key(self) -> bytes:
        return self.signing_key.public_bytes

    @property
    def relay_id(self) -> str:
        return relay_id_for(self.public_key)


def _write_new(path: Path, text: str) -> bool:
    """Create ``path`` with mode 0600 holding ``text``; False if it already exists.

    The file is written aside and hard-linked into place (``link`` fails if the name exists), so a
    replica starting at the same moment sees the whole file or none, never a half-written key.
    """
    if path.exists():
        return False
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(aside)
    return True


def _read_secret(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by group or others (mode %o); it should be 0600", path, mode & 0o777)
    return path.read_text(encoding="ascii").strip()


def load_or_create_identity(data_dir: Path, rng: RandomSource | None = None) -> RelayIdentity:
    """Read the relay key and admin token from ``data_dir``, creating them on first start."""
    rng = rng or os.urandom
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = data_dir / RELAY_KEY_FILE
    token_path = data_dir / ADMIN_TOKEN_FILE
    created_key = _write_new(key_path, b64e(rng(crypto.ED25519_SEED_LEN)))
    created_token = _write_new(token_path, b64e(rng(32)))
    seed = b64d(_read_secret(key_path), field=RELAY_KEY_FILE)
    token = _read_secret(token_path)
    if len(token) < 32:
        raise ValueError(f"{token_path} holds a token that is too short")
    return RelayIdentity(
        signing_key=crypto.SigningKey(seed),
        admin_token=token,
        admin_token_path=token_path.resolve(),
        created=created_key or created_token,
    )
