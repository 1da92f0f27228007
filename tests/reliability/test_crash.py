"""Crash safety: SIGKILL the relay again and again under a steady stream between two desks.

After every restart, and at the end: each message the sender holds a relay-accepted receipt for
reaches the recipient application exactly once, nothing reaches it that was not sent, every ladder
completes (the delivered receipt gets back to the sender), the relay accepted each message once, and
the audit log verifies — including against the tree heads the relay signed before each crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from hotline.client import ClientError
from hotline.protocol.errors import ProtocolError
from tests.conftest import BACKENDS
from tests.reliability.harness import (
    Listener,
    assert_exactly_once,
    current_head,
    enroll_desks,
    ladders_complete,
    verify_relay_log,
)

KILLS = 3
SENT_BETWEEN_KILLS = 8


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
async def test_sigkill_under_a_steady_stream_loses_nothing_and_delivers_once(relay_factory, backend):
    relay = await asyncio.to_thread(relay_factory, backend)
    _, desks = await enroll_desks(
        relay.url, relay.admin_token, {"delhi": "principal", "islamabad": "principal"}
    )
    delhi, isb = desks["delhi"], desks["islamabad"]
    listener = Listener(isb).start()
    texts: dict[str, str] = {}  # every message delhi sealed (accepted or still in its outbox)
    stop_sending = asyncio.Event()

    async def sender() -> None:
        n = 0
        while not stop_sending.is_set():
            n += 1
            # While the relay is down, the envelope waits in the outbox for the next send.
            with contextlib.suppress(ClientError, ProtocolError):
                await delhi.send(["islamabad"], f"steady {n}")
            for message_id, entry in delhi.state.outbox.items():
                texts.setdefault(message_id, entry["text"])
            for message_id, entry in delhi.state.sent.items():
                texts.setdefault(message_id, entry["text"])
            await asyncio.sleep(0.01)

    def accepted() -> set[str]:
        return set(delhi.state.sent)

    heads = []
    sending = asyncio.create_task(sender())
    try:
        for kill in range(KILLS):
            deadline = time.monotonic() + 60
            while len(accepted()) < (kill + 1) * SENT_BETWEEN_KILLS:
                assert time.monotonic() < deadline, "the stream stalled"
                await asyncio.sleep(0.05)
            if (head := await current_head(relay.url)) is not None:
                heads.append(head)
            await asyncio.to_thread(relay.kill)
            await asyncio.sleep(0.2)
            await asyncio.to_thread(relay.restart)
            # After each restart: what was accepted before the kill reaches the application once.
            before = accepted()
            await listener.wait_for(before, timeout_s=45)
            assert_exactly_once(listener.received(), texts)
    finally:
        stop_sending.set()
        await sending
    while delhi.state.outbox:  # the sender's retries after the last crash
        await delhi.flush_outbox()
    final = accepted()
    assert len(final) >= KILLS * SENT_BETWEEN_KILLS
    await listener.wait_for(final, timeout_s=45)
    await ladders_complete(delhi, final, timeout_s=45)
    await listener.close()

    assert_exactly_once(listener.received(), texts)
    assert {m.message_id for m in listener.received()} == final
    assert not listener.gaps(), listener.gaps()
    logged = await verify_relay_log(relay.url, relay.admin_token, heads)
    assert final <= set(logged), "an accepted message is missing from the audit log"
    assert set(logged) & set(texts) == final, "the log holds a message the sender never got a receipt for"
    await delhi.aclose()
    await isb.aclose()
