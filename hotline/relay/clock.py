"""The relay's clock: wall time, optionally moved forward by tests (``test_clock``, docs/adr/0007).

Everything the relay decides by time — deadlines, timers, token expiry, receipt times — reads this one
clock (``RelayService.now_ms``), so a test can move a real relay process hours ahead and then fire its
timers (``POST /v1/admin/test/sweep``) without waiting. Only a relay started with
``HOTLINE_TEST_CLOCK=1`` accepts an offset; the offset only ever grows, so time never runs backwards.
"""

from __future__ import annotations

import time


class ClockLocked(Exception):
    """The relay was not started with ``test_clock``: its clock cannot be moved."""


class RelayClock:
    def __init__(self, *, adjustable: bool = False) -> None:
        self.adjustable = adjustable
        self._offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset_ms

    @property
    def offset_ms(self) -> int:
        return self._offset_ms

    def advance(self, ms: int) -> int:
        """Move this process's clock ``ms`` forward; returns the new time."""
        if not self.adjustable:
            raise ClockLocked("the relay's clock is not adjustable")
        if ms < 0:
            raise ValueError("the clock only moves forward")
        self._offset_ms += ms
        return self.now_ms()
