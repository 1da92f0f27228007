"""The browser refuses weak Ed25519 public keys exactly as the Python core does (crypto.load_verify_key).

Small-order points and non-canonical encodings make signatures forgeable and deniable: with the identity
point as a key, (R = identity, S = 0) verifies for every message in OpenSSL and in WebCrypto alike.
"""

from __future__ import annotations

from typing import Any

import pytest

from hotline.protocol import crypto
from hotline.protocol.errors import ProtocolError
from tests.web.conftest import SelftestPage

pytestmark = pytest.mark.browser

WEAK_KEYS = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0100000000000000000000000000000000000000000000000000000000000080",  # identity, sign bit set
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8, sign bit set
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p (non-canonical)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1 (non-canonical)
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # y = 2^255 - 1, sign bit set
]


def python_verdict(hex_key: str) -> str:
    key = bytes.fromhex(hex_key)
    try:
        crypto.verify_signature(key, key + bytes(32), b"any message at all")
    except ProtocolError as exc:
        return exc.code.value
    return "ok"


@pytest.fixture(scope="module")
def browser_result(selftest: SelftestPage) -> dict[str, Any]:
    result: dict[str, Any] = selftest.step("weakKeys", {"keys": WEAK_KEYS})
    return result


@pytest.mark.parametrize("hex_key", WEAK_KEYS)
def test_weak_key_is_refused_as_malformed_in_both(browser_result: dict[str, Any], hex_key: str) -> None:
    assert browser_result["verdicts"][hex_key] == python_verdict(hex_key) == "malformed"


def test_generated_keys_are_never_weak_and_verify(browser_result: dict[str, Any]) -> None:
    assert browser_result["honestWeak"] == 0
    assert browser_result["honestVerify"] == 20
