"""A deterministic random source for test vectors: SHA-256 in counter mode over a fixed label.

Block ``i`` of the stream is ``SHA-256(label ‖ i)`` with ``i`` as 8 bytes big-endian; ``rng(n)`` hands out
the next ``n`` bytes of the stream. Anyone can reimplement it in a few lines to reproduce the vectors.
It is for tests only: the label is public, so nothing drawn from it is secret.
"""

from __future__ import annotations

import hashlib


class DeterministicRng:
    """A ``RandomSource`` (``rng(n) -> bytes``) whose output depends only on ``label``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("cannot draw a negative number of bytes")
        while len(self._buffer) < n:
            block = hashlib.sha256(self.label.encode("utf-8") + self._counter.to_bytes(8, "big")).digest()
            self._buffer += block
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out
