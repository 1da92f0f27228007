"""Fingerprints and safety numbers, so two desks can check each other's keys out of band.

A *fingerprint* names one device signing key in 32 hex digits (128 bits), shown in groups of four.
A *safety number* covers every device key of a pair of members: each member gets a 30-digit code from
its name and sorted device keys; the two codes are sorted and joined, so both desks compute the same
60 digits (12 groups of 5) and can read them to each other over a phone. Any new or changed device of
either member changes it.
"""

from __future__ import annotations

from collections.abc import Iterable

from hotline.protocol import crypto
from hotline.protocol.encoding import frame
from hotline.protocol.errors import MalformedError

DS_FINGERPRINT = b"hotline/v1/fingerprint"
DS_SAFETY = b"hotline/v1/safety-number"
SAFETY_ITERATIONS = 1024  # makes finding a second key set with the same code expensive


def fingerprint(signing_public_key: bytes) -> str:
    digest = crypto.sha256(frame(DS_FINGERPRINT, signing_public_key))[:16].hex()
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def member_code(member: str, device_keys: Iterable[bytes]) -> str:
    """The 30-digit half of a safety number that belongs to one member."""
    keys = sorted(set(device_keys))
    if not keys:
        raise MalformedError(f"member {member} has no device keys")
    seed = frame(DS_SAFETY, member.encode(), *keys)
    digest = seed
    for _ in range(SAFETY_ITERATIONS):
        digest = crypto.sha512(digest + seed)
    return "".join(f"{int.from_bytes(digest[i : i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5))


def safety_number(member_a: str, keys_a: Iterable[bytes], member_b: str, keys_b: Iterable[bytes]) -> str:
    """60 digits in 12 groups of 5; the same whichever member computes it."""
    codes = sorted([member_code(member_a, keys_a), member_code(member_b, keys_b)])
    digits = "".join(codes)
    return " ".join(digits[i : i + 5] for i in range(0, 60, 5))


def normalize_safety_number(text: str) -> str:
    """Accept what a person types (spaces, dashes) and return the canonical grouped form."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) != 60 or any(ch not in "0123456789 -" for ch in text.strip()):
        raise MalformedError("a safety number is 60 digits")
    return " ".join(digits[i : i + 5] for i in range(0, 60, 5))
