"""Several relay replicas on one PostgreSQL database: live delivery across them, one audit log in one
order, and a client that survives the death of its replica.

Every replica here is a real ``hotline serve`` process; they share a data dir (relay key, admin
token) and a database, as docs/OPERATIONS.md deploys them. Deadline and schedule timers firing
exactly once across replicas are tested with the timers themselves (the semantics suite).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import threading
import time
from typing import Any

import httpx
import pytest

from hotline.client import DeskClient, GapAlarm, MemoryProfileStore, MessageReceived, RelayAlarm
from hotline.protocol.encoding import b64d
from hotline.protocol.model import Precedence
from hotline.protocol.receipts import ReceiptKind
from tests.relay.support import Desk, RelayProcess, message_id, recv_frame, recv_items, setup_channel
from tests.scale.support import TcpBalancer, add_replica, check_audit, read_audit

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def replicas(relay_factory):
    """``replicas(n)`` -> n running replicas on one fresh database; the extra ones stop afterwards."""
    extra: list[RelayProcess] = []

    def make(n: int, **settings: Any) -> list[RelayProcess]:
        first = relay_factory("postgres", **settings)
        more = [add_replica(first, chr(ord("b") + i)) for i in range(n - 1)]
        extra.extend(more)
        for replica in more:
            replica.start()
        return [first, *more]

    yield make
    for replica in extra:
        replica.stop()


def public_key(relay: RelayProcess) -> bytes:
    return b64d(relay.info()["public_key"], field="public_key")


def wait_for_tree_head(relay: RelayProcess, size: int, timeout_s: float = 20) -> dict[str, Any]:
    """The relay's newest tree head once it covers ``size`` entries."""
    deadline = time.monotonic() + timeout_s
    with relay.client() as c:
        while True:
            head = c.get("/v1/audit/tree-head").json()
            if head.get("size", -1) >= size or time.monotonic() > deadline:
                assert head["size"] >= size, head
                return dict(head)
            time.sleep(0.2)


def test_desks_on_three_replicas_get_messages_receipts_and_key_changes_live(replicas):
    a, b, c = replicas(3)
    channel, desks = setup_channel(
        a, {"delhi": "principal", "islamabad": "principal"}, devices={"islamabad": ["phone"]}
    )
    delhi, isb_laptop, isb_phone = desks["delhi"], desks["islamabad"], desks["islamabad/phone"]
    for desk, replica in ((isb_laptop, b), (isb_phone, c)):
        desk.relay = replica
        desk.close()
    assert a.info() == b.info() == c.info()
    ws_delhi, ws_laptop, ws_phone = delhi.socket(), isb_laptop.socket(), isb_phone.socket()
    try:
        # A message accepted on A reaches both Islamabad devices, on B and C, at once.
        envelope, _ = delhi.send_text(["islamabad"], "across replicas", precedence=Precedence.FLASH)
        for ws in (ws_laptop, ws_phone):
            [item] = recv_items(ws, 1, timeout=5)
            assert message_id(item) == envelope.header.message_id
        # A receipt logged on B reaches the sender's socket on A.
        r = isb_laptop.send_receipt(isb_laptop.receipt(envelope, ReceiptKind.DELIVERED))
        assert r.status_code == 201, r.text
        [item] = recv_items(ws_delhi, 1, timeout=5)
        assert item["kind"] == "receipt"
        # A device enrolled through C is announced to the desks on A and B.
        Desk.enroll(c, c.invite(channel, "delhi"), device="tablet")
        for ws in (ws_delhi, ws_laptop):
            [item] = recv_items(ws, 1, timeout=5)
            assert (item["kind"], item["change"], item["device"]) == (
                "directory",
                "device_enrolled",
                "tablet",
            )
    finally:
        for ws in (ws_delhi, ws_laptop, ws_phone):
            ws.close()


def test_cross_replica_wakeups_are_about_as_prompt_as_local_ones(replicas):
    """Send on A to a socket on A, then to a socket on B: the NOTIFY hop adds little (figures in ADR 0008)."""
    a, b = replicas(2)
    _, desks = setup_channel(a, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    timings: dict[str, list[float]] = {}
    for where in (a, b):
        isb.relay = where
        isb.close()
        ws = isb.socket()
        try:
            samples = []
            for n in range(25):
                envelope = delhi.seal(["islamabad"], f"ping {n}")
                started = time.perf_counter()
                assert delhi.send(envelope).status_code == 201
                [item] = recv_items(ws, 1, timeout=5)
                samples.append(time.perf_counter() - started)
                ws.send(json.dumps({"type": "ack", "ids": [item["id"]]}))
            timings["same replica" if where is a else "other replica"] = samples
        finally:
            ws.close()
    medians = {k: statistics.median(v) * 1000 for k, v in timings.items()}
    print("send -> item on socket, median ms:", {k: round(v, 1) for k, v in medians.items()})
    assert medians["other replica"] < medians["same replica"] + 50


def test_concurrent_accepts_on_two_replicas_keep_one_log_in_one_order(replicas):
    a, b = replicas(2, tree_head_interval_s=0.2)
    members = {name: "principal" for name in ("d1", "d2", "i1", "i2")}
    _, desks = setup_channel(a, members)
    for name in ("i1", "i2"):
        desks[name].relay = b
        desks[name].close()
    per_desk = 15
    sealed = {name: [d.seal([m for m in members if m != name], f"{name} {n}") for n in range(per_desk)]
              for name, d in desks.items()}  # fmt: skip
    answers: dict[str, list[dict[str, Any]]] = {name: [] for name in desks}
    errors: list[BaseException] = []
    start = threading.Barrier(len(desks))

    def sender(name: str) -> None:
        desk = desks[name]
        try:
            with desk.relay.client(desk.token) as client:
                start.wait(10)
                for envelope in sealed[name]:
                    r = client.post(desk.path("/envelopes"), json=envelope.to_json())
                    assert r.status_code == 201, r.text
                    answers[name].append(r.json())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(name,)) for name in desks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    indexes = [answer["log_index"] for got in answers.values() for answer in got]
    assert len(indexes) == len(set(indexes)) == per_desk * len(desks)
    # Each desk's messages got increasing indexes (it sent them one after another).
    for got in answers.values():
        own = [answer["log_index"] for answer in got]
        assert own == sorted(own)
    state = asyncio.run(read_audit(a.db_url))
    check_audit(state, public_key(a))
    for name, envelopes in sealed.items():
        for envelope, answer in zip(envelopes, answers[name], strict=True):
            assert state.envelope_indexes[envelope.header.message_id] == answer["log_index"]
    # Both replicas end up signing the same tree over the one log.
    head_a = wait_for_tree_head(a, state.size)
    head_b = wait_for_tree_head(b, state.size)
    assert (head_a["size"], head_a["root"]) == (head_b["size"], head_b["root"])
    check_audit(asyncio.run(read_audit(a.db_url)), public_key(a))


def test_a_client_whose_replica_is_killed_resumes_on_another_with_nothing_lost_or_repeated(replicas):
    """The reference client behind a load balancer: SIGKILL its replica mid-stream; it reconnects
    through the balancer to the survivor and resumes from its unacknowledged items."""
    a, b = replicas(2, tree_head_interval_s=0.5)
    balancer = TcpBalancer([("127.0.0.1", a.port), ("127.0.0.1", b.port)]).start()
    try:
        sent, received, alarms = asyncio.run(_stream_through_a_replica_death(a, balancer.url))
    finally:
        balancer.stop()
    got = [event.message_id for event in received]
    assert sorted(got) == sorted(sent), f"lost: {set(sent) - set(got)}"
    assert len(got) == len(set(got)), "a message was handed to the desk twice"
    assert [event.text for event in received] == [f"stream {n}" for n in range(len(sent))]
    assert alarms == []
    print("connections per backend:", dict(balancer.connections))
    assert balancer.connections[b.port] > 0, "the client never moved to replica B"

    # The log is one log: each message accepted once, delivered once, every tree head consistent.
    state = asyncio.run(read_audit(b.db_url))
    check_audit(state, public_key(b))
    entries = [state.entry(i) for i in range(state.size)]
    accepted = [e["message_id"] for e in entries if e["type"] == "envelope-accepted"]
    delivered = [e["message_id"] for e in entries if e["type"] == "receipt" and e["kind"] == "delivered"]
    assert sorted(accepted) == sorted(sent)
    assert sorted(delivered) == sorted(sent)
    assert wait_for_tree_head(b, state.size)["size"] >= state.size


async def _stream_through_a_replica_death(
    a: RelayProcess, url: str, total: int = 60, kill_after: int = 15
) -> tuple[list[str], list[MessageReceived], list[object]]:
    _, invites = a.create_channel({"delhi": "principal", "islamabad": "principal"})
    delhi = await DeskClient.enroll(url, invites["delhi"]["code"], "laptop", MemoryProfileStore())
    isb = await DeskClient.enroll(url, invites["islamabad"]["code"], "laptop", MemoryProfileStore())
    await delhi.sync()
    await isb.sync()
    received: list[MessageReceived] = []
    alarms: list[object] = []
    progress = asyncio.Event()
    stop = asyncio.Event()

    async def listen() -> None:
        async for event in isb.listen(stop=stop):
            if isinstance(event, MessageReceived):
                received.append(event)
                progress.set()
            elif isinstance(event, GapAlarm | RelayAlarm):
                alarms.append(event)

    listener = asyncio.create_task(listen())
    sent: list[str] = []
    killed = False
    for n in range(total):
        sent.append((await delhi.send(["islamabad"], f"stream {n}")).message_id)
        if not killed and len(received) >= kill_after:
            await asyncio.to_thread(a.kill)  # SIGKILL: its sockets and connections die with it
            killed = True
        await asyncio.sleep(0.01)
    assert killed, "the listener fell too far behind to kill A mid-stream"
    deadline = time.monotonic() + 60
    while len(received) < total and time.monotonic() < deadline:
        progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.wait(), 1)
    await asyncio.sleep(0.5)  # time for a late repeat, if the client were to let one through
    stop.set()
    await asyncio.wait_for(listener, 15)
    await delhi.aclose()
    await isb.aclose()
    return sent, received, alarms


def test_a_socket_on_a_surviving_replica_is_not_disturbed_when_another_dies(replicas):
    a, b = replicas(2)
    _, desks = setup_channel(a, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    isb.relay = b
    isb.close()
    ws = isb.socket()
    try:
        delhi.send_text(["islamabad"], "before")
        recv_items(ws, 1, timeout=5)
        a.kill()
        delhi.relay = b
        delhi.close()
        envelope, _ = delhi.send_text(["islamabad"], "after")
        [item] = recv_items(ws, 1, timeout=5)
        assert message_id(item) == envelope.header.message_id
        ws.send(json.dumps({"type": "ping"}))
        assert recv_frame(ws) == {"type": "pong"}
    finally:
        ws.close()
    with httpx.Client(base_url=b.url) as c:
        assert c.get("/readyz").json() == {"status": "ready"}


def test_replicas_signing_the_same_tree_head_at_once_do_not_fail(pg_databases):
    """Two replicas' signers often reach the same log size together: the first head stored stays,
    and neither fails (at start, a failure would stop the replica from starting)."""
    from hotline.protocol import crypto
    from hotline.relay import migrate
    from hotline.relay.db import create_engine
    from hotline.relay.sql_store import SqlStore
    from hotline.relay.treehead import TreeHeadSigner

    db_url = pg_databases.create()
    key = crypto.SigningKey(bytes(32))

    async def race() -> None:
        stores = [SqlStore(create_engine(db_url)) for _ in range(2)]
        try:
            await migrate.upgrade(stores[0].engine)
            signers = [TreeHeadSigner(s, key, lambda: 1) for s in stores]
            for round_ in range(20):
                async with stores[0].write() as tx:
                    await tx.lock_log()
                    await tx.append_audit(1, b'{"round": %d}' % round_)
                if round_ == 0:
                    await asyncio.gather(*(s.start() for s in signers))
                else:
                    await asyncio.gather(*(s.sign_if_grown() for s in signers))
            async with stores[0].read() as tx:
                assert (await tx.latest_tree_head()).size == 20
        finally:
            for s in stores:
                await s.close()

    asyncio.run(race())
