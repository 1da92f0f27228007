"""A compromised relay against the reference client (hotline.client.DeskClient).

The relay operator holds the relay's signing key and controls every answer, but no device key. It
can substitute a member's key in the directory, or hand over envelopes it forged or altered with
relay receipts it signed itself. The client must warn about the key change, refuse to send to the
member until a person verifies the new key, keep verifying that member's messages with the key it
pinned, and refuse every forged or altered message with a signed ``rejected`` receipt.
"""

from __future__ import annotations

import os
import time
import uuid

import httpx
import pytest

from hotline.client import (
    AdminClient,
    DeskClient,
    KeyChanged,
    KeyChangeError,
    MemoryProfileStore,
    MessageReceived,
    MessageRefused,
)
from hotline.protocol import DeviceKeys, Intent, Precedence, seal_envelope
from hotline.protocol.encoding import b64e
from hotline.protocol.model import DeviceAddress
from hotline.protocol.receipts import issue_relay_accepted
from hotline.relay.identity import load_or_create_identity
from tests.security.malicious import RewritingTransport


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(scope="module")
def relay(relay_factory):
    return relay_factory("sqlite")


async def two_desks(relay, transport: RewritingTransport) -> tuple[DeskClient, DeskClient]:
    """alice talks through the compromised relay's answers; bob talks to the relay directly."""
    async with AdminClient(relay.url, relay.admin_token) as admin:
        created = await admin.create_channel(
            f"mal-{uuid.uuid4().hex[:8]}", {"alice": "principal", "bob": "principal"}
        )
    codes = {i["member"]: i["code"] for i in created["invites"]}
    http = httpx.AsyncClient(transport=transport, timeout=10)
    alice = await DeskClient.enroll(relay.url, codes["alice"], "laptop", MemoryProfileStore(), http=http)
    bob = await DeskClient.enroll(relay.url, codes["bob"], "laptop", MemoryProfileStore())
    await alice.refresh_directory()
    await bob.refresh_directory()
    return alice, bob


def substitute(member: str, impostor: DeviceKeys):
    def rewrite(_request, body):
        for m in body["members"]:
            if m["member"] == member:
                for d in m["devices"]:
                    d["signing_key"] = b64e(impostor.signing_public_key)
                    d["prekeys"] = [p.signed.to_json() for p in impostor.prekeys.values()]
        return body

    return rewrite


async def test_a_substituted_key_warns_and_blocks_sending_until_verified(relay):
    transport = RewritingTransport()
    alice, bob = await two_desks(relay, transport)
    real_number = bob.safety_number_with("alice")
    assert alice.verify_contact("bob", real_number)
    await alice.send(["bob"], "before the substitution")

    impostor = DeviceKeys.generate(DeviceAddress("bob", "laptop"), os.urandom, now_ms())
    transport.on("/directory", substitute("bob", impostor))
    events = await alice.refresh_directory()
    assert KeyChanged("bob", "laptop", "key_changed") in events
    with pytest.raises(KeyChangeError) as refused:
        await alice.send(["bob"], "to whom?")
    assert refused.value.members == ["bob"]
    # Comparing safety numbers with the real bob out of band fails: the client stays blocked.
    assert not alice.verify_contact("bob", real_number)
    with pytest.raises(KeyChangeError):
        await alice.send(["bob"], "still blocked")
    assert not next(c for c in alice.contacts() if c.member == "bob").verified
    # The relay stops lying; a person verifies the (original) key again; sending works again.
    transport.rewrites.clear()
    await alice.refresh_directory()
    assert alice.verify_contact("bob", real_number)
    await alice.send(["bob"], "after verification")
    await alice.aclose()
    await bob.aclose()


async def test_messages_signed_by_a_substituted_key_are_refused(relay):
    """The hoax-caller case: the relay swaps bob's key for its own and speaks as bob."""
    transport = RewritingTransport()
    alice, bob = await two_desks(relay, transport)
    impostor = DeviceKeys.generate(DeviceAddress("bob", "laptop"), os.urandom, now_ms())
    transport.on("/directory", substitute("bob", impostor))
    await alice.refresh_directory()
    relay_key = load_or_create_identity(relay.data_dir).signing_key
    prekey = alice.directory["alice"].active_devices()[0].prekeys[0]
    forged = seal_envelope(
        impostor,
        channel=alice.channel,
        seq={"alice": 1},
        recipients=[prekey],
        precedence=Precedence.FLASH,
        intent=Intent.RESTRAINT_NOTICE,
        text="We are standing down. (forged)",
        now_ms=now_ms(),
        rng=os.urandom,
    )
    accepted = issue_relay_accepted(
        relay_key,
        channel=alice.channel,
        message_id=forged.header.message_id,
        envelope_hash=forged.hash,
        log_index=10**6,
        at_ms=now_ms(),
    )
    item = {"id": 10**9, "kind": "envelope", "at_ms": now_ms(), "envelope": forged.to_json(),
            "accepted": accepted.to_json()}  # fmt: skip
    events = await alice.process_item(item)
    assert not [e for e in events if isinstance(e, MessageReceived)], events
    assert [e.reason for e in events if isinstance(e, MessageRefused)] == ["bad_signature"]
    # Bob's genuine messages still verify with the key alice pinned.
    transport.rewrites.clear()
    await bob.send(["alice"], "the real bob")
    got = [e for e in await alice.sync() if isinstance(e, MessageReceived)]
    assert [e.text for e in got] == ["the real bob"]
    await alice.aclose()
    await bob.aclose()


async def test_an_envelope_altered_by_the_relay_is_refused_even_with_a_fresh_relay_receipt(relay):
    transport = RewritingTransport()
    alice, bob = await two_desks(relay, transport)
    relay_key = load_or_create_identity(relay.data_dir).signing_key
    from hotline.protocol import Envelope

    def alter(_request, body):
        for item in body["items"]:
            if item["kind"] != "envelope":
                continue
            wire = dict(item["envelope"])
            raw = bytearray(wire["body"].encode())
            raw[10] = ord("A") if raw[10] != ord("A") else ord("B")
            wire["body"] = raw.decode()
            altered = Envelope.from_json(wire)
            receipt = issue_relay_accepted(
                relay_key,
                channel=altered.header.channel,
                message_id=altered.header.message_id,
                envelope_hash=altered.hash,
                log_index=0,
                at_ms=now_ms(),
            )
            item["envelope"], item["accepted"] = wire, receipt.to_json()
        return body

    transport.on("/inbox", alter)
    await bob.send(["alice"], "the original words")
    events = await alice.sync()
    assert not [e for e in events if isinstance(e, MessageReceived)], events
    assert [e.reason for e in events if isinstance(e, MessageRefused)] == ["bad_signature"]
    # The refusal is recorded at the desk. (Its signed rejected receipt names the altered envelope's
    # hash, which the relay never accepted, so an honest relay would refuse to forward it.)
    assert [a["reason"] for a in alice.state.alarms if a["kind"] == "rejected"] == ["bad_signature"]
    await alice.aclose()
    await bob.aclose()
