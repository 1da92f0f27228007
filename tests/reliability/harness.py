"""Shared pieces of the reliability tests: desks on the client library, a listening collector, checks.

The desks here are :class:`hotline.client.DeskClient` (the reference client with its outbox, receiver
state machine and pins) in memory, because the guarantees under test are end to end: what reaches
the *application* and what the *sender* holds, not what one HTTP call answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from hotline.client import AdminClient, ClientEvent, DeskClient, GapAlarm, MemoryProfileStore, MessageReceived
from hotline.conformance import fetch_log, tree_head_covering, verify_log
from hotline.protocol.encoding import b64d
from hotline.protocol.statements import TreeHead


async def enroll_desks(
    relay_url: str, admin_token: str, members: dict[str, str], *, via: str | None = None
) -> tuple[str, dict[str, DeskClient]]:
    """A new channel with ``members`` (name -> role), one in-memory desk each; ``via`` is the URL the
    desks use afterwards (a fault proxy), the relay's own by default."""
    channel = f"rel-{uuid.uuid4().hex[:10]}"
    async with AdminClient(relay_url, admin_token) as admin:
        created = await admin.create_channel(channel, members)
    desks = {}
    for invite in created["invites"]:
        desks[invite["member"]] = await DeskClient.enroll(
            via or relay_url, invite["code"], "laptop", MemoryProfileStore()
        )
    for desk in desks.values():
        await desk.refresh_directory()
        await desk.sync()
    return channel, desks


@dataclass
class Listener:
    """Runs ``desk.listen()`` in a task and keeps every event it yields."""

    desk: DeskClient
    events: list[ClientEvent] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    error: BaseException | None = None

    def start(self) -> Listener:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        try:
            async for event in self.desk.listen(stop=self.stop):
                self.events.append(event)
        except BaseException as exc:  # surfaced by the test, never swallowed
            self.error = exc
            raise

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self.task, 15)
        if self.error is not None and not isinstance(self.error, asyncio.CancelledError):
            raise AssertionError(f"listen() died: {self.error!r}") from self.error

    def received(self) -> list[MessageReceived]:
        return [e for e in self.events if isinstance(e, MessageReceived)]

    def gaps(self) -> list[GapAlarm]:
        return [e for e in self.events if isinstance(e, GapAlarm)]

    async def wait_for(self, message_ids: set[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not message_ids <= {m.message_id for m in self.received()}:
            if self.error is not None:
                raise AssertionError(f"listen() died: {self.error!r}") from self.error
            if time.monotonic() > deadline:
                missing = message_ids - {m.message_id for m in self.received()}
                raise AssertionError(
                    f"{len(missing)} messages never reached the application: {sorted(missing)[:5]}"
                )
            await asyncio.sleep(0.05)


def assert_exactly_once(received: list[MessageReceived], sent_texts: dict[str, str]) -> None:
    """Every delivered message was sent (same text), and none reached the application twice."""
    counts = Counter(m.message_id for m in received)
    twice = [m for m, n in counts.items() if n > 1]
    assert not twice, f"delivered more than once: {twice}"
    for m in received:
        assert m.message_id in sent_texts, f"delivered but never sent: {m.message_id}"
        assert m.text == sent_texts[m.message_id], f"{m.message_id} arrived altered: {m.text!r}"


async def ladders_complete(sender: DeskClient, message_ids: set[str], timeout_s: float) -> None:
    """Pull receipts until every message's ladder shows ``delivered`` for every recipient device."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):
            await sender.sync()
        sent = sender.state.sent
        pending = [
            m for m in message_ids if not all("delivered" in step for step in sent[m]["recipients"].values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} ladders never completed, e.g. {sender.ladder(pending[0])}")
        await asyncio.sleep(0.2)


async def verify_relay_log(
    relay_url: str, admin_token: str, earlier_heads: list[TreeHead] = ()
) -> dict[str, int]:
    """The whole audit log verifies (entries, signatures, one acceptance per message) and every tree head
    the relay ever showed us — before crashes too — is a prefix of it. Returns message id -> log index.

    This is what ``hotline audit verify`` checks offline; it runs here straight from the relay's
    entries with ``hotline.protocol.merkle`` and ``hotline.protocol.audit``.
    """
    async with httpx.AsyncClient(base_url=relay_url, timeout=15) as http:
        public_key = b64d((await http.get("/v1/relay")).json()["public_key"], field="public_key")
        entries = await fetch_log(http, admin_token)
        head = await tree_head_covering(http, public_key, len(entries))
        entries = await fetch_log(http, admin_token)
        for h in earlier_heads:
            h.verify(public_key)
        summary = verify_log(entries, [head, *earlier_heads])
    return summary.envelopes


async def current_head(relay_url: str) -> TreeHead | None:
    async with httpx.AsyncClient(base_url=relay_url, timeout=5) as http:
        r = await http.get("/v1/audit/tree-head")
        return TreeHead.from_json(r.json()["tree_head"]) if r.status_code == 200 else None
