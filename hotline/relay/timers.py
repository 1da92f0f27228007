"""The durable timer loop: every ``timer_interval_s`` each relay process fires the timers that are due.

Timers live in the database (``timers``), written in the same transaction as whatever scheduled them
(an accepted message's deadlines, a link test's timeout, a check-in schedule's next occurrence), so they
survive restarts. Any number of relay processes may share the database: each claims one due timer at a
time inside the transaction that applies its effects (:meth:`SemanticsService.sweep`), so every timer
fires exactly once, on whichever process gets it first; a process that crashes mid-way leaves it unclaimed.
"""

from __future__ import annotations

import asyncio
import logging

from hotline.relay.semantics import SemanticsService

log = logging.getLogger(__name__)


class TimerLoop:
    def __init__(self, semantics: SemanticsService, interval_s: float) -> None:
        self._semantics = semantics
        self._interval_s = interval_s

    async def run(self) -> None:
        """Sweep forever; survives database outages (the next sweep retries)."""
        try:
            await self._semantics.ensure_checkin_timers()
        except Exception:
            log.exception("could not schedule check-ins at start; the next policy change will")
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._semantics.sweep()
            except Exception:
                log.exception("timer sweep failed; will retry")
