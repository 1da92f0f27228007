"""Durable timers: they survive restarts, fire exactly once with several relay processes on one
PostgreSQL database, and a database made at migration 0001, with data in it, upgrades to head."""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import pytest

from hotline.protocol.model import Precedence
from hotline.relay import migrate
from hotline.relay.db import create_engine
from tests.conftest import BACKENDS
from tests.relay.hotline_support import CLOCK_SETTINGS, MEMBERS, advance, desk_states, ladder, sweep
from tests.relay.support import Desk, RelayProcess, setup_channel


def escalation_count(desk: Desk, message_id: str) -> int:
    rows = desk.get("/escalations", params={"limit": 500}).json()["escalations"]
    return len([e for e in rows if e["message_id"] == message_id])


@pytest.mark.parametrize("backend", BACKENDS)
def test_deadlines_survive_a_restart_and_fire_after_it(relay_factory, backend):
    relay = relay_factory(backend, **CLOCK_SETTINGS)
    _, d = setup_channel(relay, MEMBERS)
    envelope, _ = d["delhi"].send_text(["islamabad"], "before the crash", precedence=Precedence.IMMEDIATE)
    mid = envelope.header.message_id
    relay.kill()  # SIGKILL: nothing is flushed; the deadlines were committed with the message
    relay.restart()
    for desk in d.values():
        desk.close()
    advance(relay, 301)
    fired = sweep(relay)
    assert [f["outcome"] for f in fired if f["kind"] == "delivery"] == ["escalated"]
    assert escalation_count(d["delhi"], mid) == 1
    assert sweep(relay) == []  # fired once; the repeat is not due yet
    assert desk_states(d["delhi"], mid) == {"islamabad": "undelivered"}


def test_timers_fire_exactly_once_with_two_relay_processes_on_one_database(relay_factory):
    # Two processes on one PostgreSQL database and one data dir (one relay key), both sweeping one timer
    # at a time every 20 ms in the background while the test also sweeps both at once, over and over.
    fast = {**CLOCK_SETTINGS, "timer_interval_s": "0.02", "timer_batch": "1"}
    first = relay_factory("postgres", **fast)
    second = RelayProcess(first.data_dir, first.db_url, "postgres", dict(first.env))
    second.log_path = first.log_path.with_name(first.log_path.name + ".second")
    second.start()
    try:
        _, d = setup_channel(first, MEMBERS)
        count = 40
        mids = [
            d["delhi"]
            .send_text(["islamabad"], f"message {n}", precedence=Precedence.FLASH)[0]
            .header.message_id
            for n in range(count)
        ]
        for relay in (first, second):
            advance(relay, 61)

        def hammer(relay: RelayProcess) -> None:
            for _ in range(10):
                sweep(relay)

        threads = [threading.Thread(target=hammer, args=(r,)) for r in (first, second, first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        while sweep(first) or sweep(second):  # whatever is still due (the loops may be mid-sweep)
            pass
        assert all(escalation_count(d["delhi"], mid) == 1 for mid in mids)

        async def facts() -> tuple[list[int], set[str]]:
            dsn = first.db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
            conn = await asyncpg.connect(dsn)
            try:
                per_timer = await conn.fetch(
                    "SELECT t.id, count(e.id) AS n, t.fired_by FROM timers t LEFT JOIN escalations e"
                    " ON e.timer_id = t.id WHERE t.kind = 'delivery' AND t.attempt = 1 GROUP BY t.id"
                )
                return [r["n"] for r in per_timer], {r["fired_by"] for r in per_timer}
            finally:
                await conn.close()

        counts, workers = asyncio.run(facts())
        assert counts == [1] * count  # every delivery timer: claimed once, escalated once
        assert len(workers) == 2  # both processes fired timers (one at a time each), none twice
        # Every escalation went to the sender's inbox once.
        notices = [i for i in d["delhi"].inbox(500) if i["kind"] == "notice"]
        assert len(notices) == count
    finally:
        second.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_at_0001_with_data_upgrades_to_head(relay_factory, backend):
    """Data written by a relay; the schema taken back to 0001 (the semantics tables dropped, every row
    of 0001's tables kept), then a relay started on it upgrades it to head and works on the old data."""
    relay = relay_factory(backend, **CLOCK_SETTINGS)
    _, d = setup_channel(relay, MEMBERS)
    old, _ = d["delhi"].send_text(["islamabad"], "written at 0001", precedence=Precedence.FLASH)
    relay.stop()
    url = relay.db_url or f"sqlite+aiosqlite:///{(relay.data_dir / 'relay.db').resolve()}"

    async def back_to_0001() -> None:
        engine = create_engine(url)
        try:
            await migrate.downgrade(engine, "0001")
        finally:
            await engine.dispose()

    asyncio.run(back_to_0001())
    relay.restart()  # auto-migrates to head
    for desk in d.values():
        desk.close()
    isb = d["islamabad"]
    [item] = [i for i in isb.inbox() if i["kind"] == "envelope"]
    assert isb.open(item) == "written at 0001"
    view = ladder(d["delhi"], old.header.message_id)
    assert view["purpose"] is None and view["desks"] == []  # accepted before deadlines existed
    assert d["delhi"].get("/policy").json()["version"] == 0  # the default policy
    new, _ = d["delhi"].send_text(["islamabad"], "after the upgrade", precedence=Precedence.FLASH)
    assert desk_states(d["delhi"], new.header.message_id) == {"islamabad": "pending"}
    advance(relay, 61)
    sweep(relay)
    assert escalation_count(d["delhi"], new.header.message_id) == 1
    assert escalation_count(d["delhi"], old.header.message_id) == 0
