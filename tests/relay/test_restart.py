"""Crash safety: a relay killed with SIGKILL loses no accepted message and duplicates none."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.relay.support import message_id, recv_frame, recv_items, setup_channel


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_relay_loses_nothing_and_duplicates_nothing(relay_factory, backend):
    relay = relay_factory(backend)
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]

    # Five messages accepted before the crash; Islamabad processes and acks two of them.
    before = [delhi.send_text(["islamabad"], f"before {n}")[0].header.message_id for n in range(5)]
    ws = isb.socket()
    first = recv_items(ws, 5)
    ws.send(json.dumps({"type": "ack", "ids": [i["id"] for i in first[:2]]}))
    ws.send(json.dumps({"type": "ping"}))
    assert recv_frame(ws) == {"type": "pong"}
    acked = {message_id(i) for i in first[:2]}

    # A sender keeps sending while the relay is killed under it.
    sealed = [delhi.seal(["islamabad"], f"during {n}") for n in range(40)]
    status: dict[str, int | None] = {}
    some_sent = threading.Event()

    def sender() -> None:
        with relay.client(delhi.token) as client:
            for envelope in sealed:
                try:
                    status[envelope.header.message_id] = client.post(
                        delhi.path("/envelopes"), json=envelope.to_json()
                    ).status_code
                except httpx.HTTPError:
                    status[envelope.header.message_id] = None
                if len(status) == 8:
                    some_sent.set()

    thread = threading.Thread(target=sender)
    thread.start()
    assert some_sent.wait(30)
    relay.kill()
    thread.join(60)
    ws.close()
    assert any(code == 201 for code in status.values())

    relay.restart()
    delhi.close()
    isb.close()
    # The client retries everything; what was accepted before the crash comes back as a duplicate.
    for envelope in sealed:
        r = delhi.send(envelope)
        if status.get(envelope.header.message_id) == 201:
            assert r.status_code == 200 and r.json()["duplicate"] is True
        else:
            assert r.status_code in (200, 201), r.text

    expected = [m for m in before if m not in acked] + [e.header.message_id for e in sealed]
    ws = isb.socket()
    try:
        items = recv_items(ws, len(expected), timeout=30)
        got = [message_id(i) for i in items]
        assert sorted(got) == sorted(expected)
        assert len(set(got)) == len(got)
        ws.send(json.dumps({"type": "ping"}))
        assert recv_frame(ws) == {"type": "pong"}  # and nothing else is pending
    finally:
        ws.close()
    assert [i for i in isb.inbox(500) if i["kind"] == "envelope" and message_id(i) in acked] == []


@pytest.mark.slow
def test_two_replicas_on_one_postgres_database_deliver_live_to_each_other(relay_factory):
    """Two relay processes share a data dir (key, admin token) and a PostgreSQL database."""
    from tests.relay.support import RelayProcess

    a = relay_factory("postgres")
    b = RelayProcess(a.data_dir, a.db_url, "postgres", a.env)
    b.start()
    try:
        _, desks = setup_channel(a, {"delhi": "principal", "islamabad": "principal"})
        delhi, isb = desks["delhi"], desks["islamabad"]
        isb.relay = b  # Islamabad talks to replica B, Delhi to replica A
        isb.close()
        assert b.info() == a.info()
        ws = isb.socket()
        try:
            envelope, _ = delhi.send_text(["islamabad"], "across replicas")
            [item] = recv_items(ws, 1, timeout=5)
            assert message_id(item) == envelope.header.message_id
            r = a.admin.post(f"/v1/admin/channels/{isb.channel}/devices/islamabad/laptop/revoke")
            assert r.status_code == 200
            frame = recv_frame(ws, timeout=5)
            assert frame["type"] == "error" and frame["error"]["code"] == "device_revoked"
        finally:
            ws.close()
    finally:
        b.stop()


@pytest.mark.slow
def test_a_database_outage_is_503_unavailable_and_the_relay_recovers(relay_factory):
    import asyncio

    from tests.conftest import _pg_execute
    from tests.relay.support import error_code

    relay = relay_factory("postgres")
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi = desks["delhi"]
    sealed = delhi.seal(["islamabad"], "during the outage")
    database = relay.db_url.rsplit("/", 1)[1]
    asyncio.run(_pg_execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
    try:
        asyncio.run(
            _pg_execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
            )
        )
        with httpx.Client(base_url=relay.url, headers={"Authorization": f"Bearer {delhi.token}"}) as raw:
            ready = raw.get("/readyz")
            inbox = raw.get(delhi.path("/inbox"))
            sent = raw.post(delhi.path("/envelopes"), json=sealed.to_json())
        for r in (ready, inbox, sent):
            assert (r.status_code, error_code(r)) == (503, "unavailable"), r.text
    finally:
        asyncio.run(_pg_execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
    with relay.client() as c:
        assert c.get("/readyz").json() == {"status": "ready"}
    delhi.close()
    assert delhi.send(sealed).status_code == 201  # the client's retry after the outage
    assert sealed.header.message_id in [message_id(i) for i in desks["islamabad"].inbox()]
