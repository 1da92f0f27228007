"""A desk's watch on the relay's audit log, against a real relay and against test doubles of a dishonest
relay: one that shows a desk a forked log (a split view), rolls its log back, signs a head with another
key, or answers an inclusion proof with the wrong entry. Each is raised as an alarm — at both desks for a
split view, because the desks exchange the heads they verified inside signed link tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hotline.client import DeskClient, MemoryProfileStore, MessageReceived
from hotline.client.audit import AuditAlarm, SplitViewAlarm
from hotline.protocol import Intent, TreeHead, crypto
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.merkle import MerkleTree, leaf_hash
from hotline.protocol.model import Suite
from hotline.protocol.statements import sign_tree_head
from hotline.relay.identity import load_or_create_identity
from tests.relay.audit_support import wait_for_head
from tests.relay.support import RelayProcess


@pytest.fixture(scope="module")
def relay(relay_factory) -> RelayProcess:
    return relay_factory("sqlite", tree_head_interval_s=0.1)


def ok(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


class DishonestRelay(httpx.AsyncBaseTransport):
    """Forwards everything to the real relay, except what ``mode`` lies about, signing its lies with the
    relay's own key (read from its data dir): this is the relay operator as the adversary."""

    def __init__(self, relay: RelayProcess, mode: str | None = None, fork_at: int = 1) -> None:
        self.relay = relay
        self.mode = mode
        self.fork_at = fork_at
        self.inner = httpx.AsyncHTTPTransport()
        self.key = load_or_create_identity(relay.data_dir).signing_key
        self.first_head: dict[str, Any] | None = None

    async def _real(self, path: str, params: dict[str, Any] | None = None) -> Any:
        async with httpx.AsyncClient(base_url=self.relay.url, timeout=15) as c:
            headers = {"Authorization": f"Bearer {self.relay.admin_token}"} if "/admin/" in path else {}
            return (await c.get(path, params=params, headers=headers)).json()

    async def _forked_tree(self) -> tuple[MerkleTree, list[bytes], int]:
        """The real log with entry ``fork_at`` changed, up to the real newest head's size."""
        size = (await self._real("/v1/audit/tree-head"))["size"]
        rows: list[dict[str, Any]] = []
        while len(rows) < size:
            page = await self._real("/v1/admin/audit/entries", {"start": len(rows), "limit": 1000})
            rows += page["entries"]
        entries = [b64d(r["entry"], field="e") for r in rows[:size]]
        forked = json.loads(entries[self.fork_at])
        forked["at_ms"] += 1
        entries[self.fork_at] = json.dumps(forked, sort_keys=True, separators=(",", ":")).encode()
        return MerkleTree(leaf_hash(e) for e in entries), entries, size

    def _head(self, size: int, root: bytes, key: crypto.Signer | None = None) -> dict[str, Any]:
        head = sign_tree_head(key or self.key, size=size, root=root, at_ms=1)
        return {"tree_head": head.to_json(), "size": size, "root": b64e(root), "at_ms": 1}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, dict(request.url.params)
        if self.mode == "fork":
            if path == "/v1/audit/tree-head":
                tree, _, size = await self._forked_tree()
                return ok(self._head(size, tree.root(size)))
            if path.endswith("/audit/consistency"):
                tree, _, _ = await self._forked_tree()
                old, new = int(params["old_size"]), int(params["new_size"])
                return ok(
                    {
                        "old_size": old,
                        "new_size": new,
                        "proof": [b64e(p) for p in tree.consistency_proof(old, new)],
                    }
                )
            if path.endswith("/audit/inclusion"):
                tree, entries, _ = await self._forked_tree()
                index, size = int(params["index"]), int(params["size"])
                return ok(
                    {
                        "index": index,
                        "size": size,
                        "entry": b64e(entries[index]),
                        "leaf_hash": b64e(leaf_hash(entries[index])),
                        "proof": [b64e(p) for p in tree.inclusion_proof(index, size)],
                        "tree_head": None,
                    }
                )
        if self.mode == "rollback" and path == "/v1/audit/tree-head" and self.first_head is not None:
            return ok(self.first_head)
        if self.mode == "other-key" and path == "/v1/audit/tree-head":
            real = await self._real(path)
            forger = crypto.signing_key(Suite.CLASSIC, bytes(32))
            return ok(self._head(real["size"], b64d(real["root"], field="root"), forger))
        if self.mode == "wrong-entry" and path.endswith("/audit/inclusion"):
            response = await self.inner.handle_async_request(request)
            await response.aread()
            body = json.loads(response.content)
            other = await self._real("/v1/admin/audit/inclusion", {"index": 0, "size": body["size"]})
            body["entry"] = other["entry"]
            return ok(body)
        response = await self.inner.handle_async_request(request)
        if path == "/v1/audit/tree-head" and self.first_head is None and response.status_code == 200:
            await response.aread()
            self.first_head = json.loads(response.content)
        return response


async def desks(
    relay: RelayProcess, transport: Callable[[], httpx.AsyncBaseTransport] | None = None
) -> tuple[DeskClient, DeskClient]:
    """Delhi on the honest relay; Islamabad behind ``transport`` (or honest too)."""
    _, invites = relay.create_channel({"delhi": "principal", "islamabad": "principal"})
    delhi = await DeskClient.enroll(relay.url, invites["delhi"]["code"], "laptop", MemoryProfileStore())
    http = httpx.AsyncClient(transport=transport(), timeout=15) if transport else None
    isb = await DeskClient.enroll(
        relay.url, invites["islamabad"]["code"], "desk", MemoryProfileStore(), http=http
    )
    await delhi.refresh_directory()
    for desk in (delhi, isb):
        desk.audit.check_interval_ms = 0  # every sync checks the relay
    return delhi, isb


async def exchange_messages(relay: RelayProcess, delhi: DeskClient, isb: DeskClient) -> None:
    sent = await delhi.send(["islamabad"], "Please confirm the exercise area is closed.")
    for event in await isb.sync():
        if isinstance(event, MessageReceived):
            await isb.acknowledge(event.message_id)
    await delhi.sync()
    wait_for_head(relay)
    assert sent.log_index >= 0


def alarms(events: list[Any]) -> list[AuditAlarm]:
    return [e for e in events if isinstance(e, AuditAlarm)]


async def test_honest_relay_no_alarms_and_own_entries_proven(relay):
    delhi, isb = await desks(relay)
    async with delhi, isb:
        await exchange_messages(relay, delhi, isb)
        assert alarms(await delhi.audit.check()) == [] and alarms(await isb.audit.check()) == []
        assert delhi.audit.summary()["included"] >= 1  # its message
        assert isb.audit.summary()["included"] >= 3  # the message, its delivered and acknowledged receipts
        await delhi.audit.send_tree_head(["islamabad"])
        got = await isb.sync()
        checkpoint = [e for e in got if isinstance(e, MessageReceived) and e.intent is Intent.LINK_TEST]
        assert checkpoint and checkpoint[0].fields["template"] == "tree_head"
        assert alarms(got) == []
        assert alarms(await delhi.sync()) == []  # islamabad's answer, with its head
        assert isb.audit.summary()["peers"]["delhi/laptop"]["status"] == "consistent"
        assert delhi.audit.summary()["peers"]["islamabad/desk"]["status"] == "consistent"
        assert delhi.state.alarms == [] and isb.state.alarms == []


async def test_a_relay_showing_one_desk_a_forked_log_is_caught_at_both_desks(relay):
    delhi, isb = await desks(relay, lambda: DishonestRelay(relay, "fork"))
    async with delhi, isb:
        await exchange_messages(relay, delhi, isb)
        # Each desk on its own sees a consistent log: the fork is invisible from one side.
        assert alarms(await delhi.audit.check()) == [] and alarms(await isb.audit.check()) == []
        mine, theirs = delhi.audit.verified_head(), isb.audit.verified_head()
        assert mine is not None and theirs is not None
        # Delhi sends its head inside a signed link test; Islamabad compares, alarms and answers.
        await delhi.audit.send_tree_head(["islamabad"])
        raised = alarms(await isb.sync())
        assert raised and all(isinstance(a, SplitViewAlarm) for a in raised)
        assert raised[0].kind in {"fork", "inconsistent"} and "SPLIT VIEW" in raised[0].reason
        # Islamabad's answer carries its forked head to Delhi, which alarms too.
        raised_at_delhi = alarms(await delhi.sync())
        assert raised_at_delhi and isinstance(raised_at_delhi[0], SplitViewAlarm)
        for desk in (delhi, isb):
            assert any(a["kind"] == "audit" for a in desk.state.alarms)
            evidence = desk.audit.alarms()[0]["evidence"]
            # The evidence is two heads the relay signed: anyone with its key can check them.
            for key in ("verified", "shown"):
                head = TreeHead.from_json({"body": evidence[key]["body"], "sig": evidence[key]["sig"]})
                head.verify(b64d(delhi.state.relay_public_key, field="k"))


async def test_a_relay_that_rolls_its_log_back_is_caught(relay):
    double = DishonestRelay(relay)
    delhi, isb = await desks(relay, lambda: double)
    async with delhi, isb:
        assert alarms(await isb.audit.check()) == []  # the relay's first head is remembered
        await exchange_messages(relay, delhi, isb)
        assert alarms(await isb.audit.check()) == []
        double.mode = "rollback"  # from now on, the old head again
        raised = alarms(await isb.audit.check())
        assert raised and isinstance(raised[0], SplitViewAlarm) and raised[0].kind == "rollback"


async def test_a_tree_head_not_signed_by_the_relay_is_an_alarm(relay):
    delhi, isb = await desks(relay, lambda: DishonestRelay(relay, "other-key"))
    async with delhi, isb:
        raised = alarms(await isb.audit.check())
        assert raised and raised[0].kind == "bad_tree_head"


async def test_an_inclusion_proof_for_another_entry_is_an_alarm(relay):
    double = DishonestRelay(relay)
    delhi, isb = await desks(relay, lambda: double)
    async with delhi, isb:
        await isb.audit.check()
        double.mode = "wrong-entry"
        await exchange_messages(relay, delhi, isb)
        raised = alarms(await isb.audit.check())
        assert raised and all(a.kind == "inclusion" for a in raised)
        assert "not this" in raised[0].reason
