"""Message identifiers: UUIDv7 (RFC 9562) from a caller-supplied time and random source."""

from __future__ import annotations

from collections.abc import Callable

RandomSource = Callable[[int], bytes]
"""``rng(n)`` returns ``n`` random bytes; the relay and clients pass ``os.urandom``, tests a seeded source."""


def uuid7(now_ms: int, rng: RandomSource) -> str:
    """A UUIDv7 string: 48-bit Unix milliseconds, version 7, 74 random bits, RFC 9562 variant."""
    if not 0 <= now_ms < 2**48:
        raise ValueError("timestamp out of range for UUIDv7")
    rand = int.from_bytes(rng(10), "big")
    rand_a = rand >> 68 & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = now_ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_time_ms(value: str) -> int:
    """The millisecond timestamp inside a UUIDv7."""
    return int(value.replace("-", "")[:12], 16)
