"""Invite codes are typed on command lines, so they never start with '-'."""

from __future__ import annotations

from collections.abc import Iterator

from hotline.relay.service import INVITE_CODE_BYTES, new_invite_code


def test_invite_code_never_starts_with_a_dash() -> None:
    draws: Iterator[bytes] = iter([b"\xf8" + bytes(INVITE_CODE_BYTES - 1), bytes(INVITE_CODE_BYTES)])
    code = new_invite_code(lambda n: next(draws))
    assert code == "A" * 22


def test_invite_code_is_128_bits_of_base64url() -> None:
    code = new_invite_code(lambda n: bytes(range(n)))
    assert len(code) == 22 and not code.startswith("-")
