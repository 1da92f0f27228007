"""Bad input of every kind gets a 4xx with a stable code, never a 5xx (support.no_server_error checks)."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from hotline.protocol import DeviceKeys, Envelope
from hotline.protocol.encoding import b64e, dump_json, frame
from hotline.protocol.envelope import DS_ENVELOPE
from hotline.protocol.model import DeviceAddress
from hotline.protocol.statements import sign_auth_challenge
from tests.relay.support import Desk, error_code, now_ms, recv_frame, setup_channel


@pytest.fixture(scope="module")
def pair(relay):
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal", "audit": "operator"})
    return desks


def raw_post(desk: Desk, suffix: str, content: bytes, **headers: str) -> httpx.Response:
    return desk.http.post(
        desk.path(suffix), content=content, headers={"content-type": "application/json", **headers}
    )


# --- JSON and size ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"{", b"[]", b"42", b'"x"', b"", b"\xff\xfe", b'{"header": NaN}', b'{"a": 1, "a": 2}', b"{}" * 3],
    ids=["truncated", "array", "number", "string", "empty", "not-utf8", "nan", "duplicate-key", "trailing"],
)
def test_malformed_json_is_refused(pair, content):
    r = raw_post(pair["delhi"], "/envelopes", content)
    assert (r.status_code, error_code(r)) == (400, "malformed")


@pytest.mark.parametrize("path", ["/v1/enroll", "/v1/auth/challenge", "/v1/auth/token"])
def test_malformed_json_on_public_endpoints(relay, path):
    with relay.client() as c:
        r = c.post(path, content=b"{nope", headers={"content-type": "application/json"})
    assert (r.status_code, error_code(r)) == (400, "malformed")


def test_oversized_body_with_content_length_is_refused_before_reading(relay, pair):
    limit = relay.info()["limits"]["max_request_bytes"]
    r = raw_post(pair["delhi"], "/envelopes", b" " * (limit + 1))
    assert (r.status_code, error_code(r)) == (413, "too_large")


def test_oversized_streamed_body_without_content_length_is_refused(relay, pair):
    limit = relay.info()["limits"]["max_request_bytes"]

    def chunks():
        for _ in range(limit // 4096 + 2):
            yield b" " * 4096

    r = pair["delhi"].http.post(pair["delhi"].path("/envelopes"), content=chunks())
    assert "content-length" not in r.request.headers
    assert (r.status_code, error_code(r)) == (413, "too_large")


def test_a_bad_content_length_is_refused(relay):
    # httpx will not send one; speak HTTP/1.1 by hand.
    import socket

    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/enroll HTTP/1.1\r\nHost: relay\r\nContent-Length: abc\r\n\r\n{}")
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.split()[1].startswith(b"4"), status_line


# --- unknown fields and bad encodings ---------------------------------------------------------------


def test_unknown_envelope_field_is_refused(pair):
    delhi = pair["delhi"]
    body = {**delhi.seal(["islamabad"]).to_json(), "extra": 1}
    r = delhi.send(body)
    assert (r.status_code, error_code(r)) == (400, "malformed")
    assert "extra" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/auth/challenge", {"channel": "c", "member": "m", "device": "d", "admin": True}),
        ("/v1/enroll", {"code": "x", "device": "d", "signing_key": "", "prekeys": [], "role": "operator"}),
    ],
)
def test_unknown_fields_on_public_endpoints_are_refused(relay, path, body):
    with relay.client() as c:
        r = c.post(path, json=body)
    assert (r.status_code, error_code(r)) == (400, "malformed")


def test_unknown_fields_on_admin_endpoints_are_refused(relay):
    r = relay.admin.post(
        "/v1/admin/channels",
        json={"channel": "unknown-fields", "members": [{"member": "a", "role": "principal", "x": 1}]},
    )
    assert (r.status_code, error_code(r)) == (400, "malformed")


@pytest.mark.parametrize(
    "bad", ["a+b/", "YQ==", "Y", "YR"], ids=["std-alphabet", "padded", "one-char", "noncanonical"]
)
def test_bad_base64url_in_an_envelope_is_refused(pair, bad):
    delhi = pair["delhi"]
    body = {**delhi.seal(["islamabad"]).to_json(), "sig": bad}
    r = delhi.send(body)
    assert (r.status_code, error_code(r)) == (400, "malformed")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"channel": "Bad Name", "members": [{"member": "a", "role": "principal"}]}, "malformed"),
        ({"channel": "ok-name", "members": [{"member": "a", "role": "emperor"}]}, "malformed"),
        ({"channel": "ok-name", "members": [{"member": "admin", "role": "principal"}]}, "malformed"),
        ({"channel": "ok-name", "members": []}, "malformed"),
        ({"channel": "ok-name", "members": [{"member": "a", "role": "principal"}] * 2}, "malformed"),
        (
            {"channel": "ok-name", "suite": "rot13", "members": [{"member": "a", "role": "principal"}]},
            "unsupported_suite",
        ),
        (
            {"channel": "ok-name", "invite_ttl_s": 0, "members": [{"member": "a", "role": "principal"}]},
            "malformed",
        ),
        (
            {"channel": "ok-name", "invite_ttl_s": "1", "members": [{"member": "a", "role": "principal"}]},
            "malformed",
        ),
    ],
)
def test_bad_channel_definitions_are_refused(relay, body, code):
    r = relay.admin.post("/v1/admin/channels", json=body)
    assert error_code(r) == code and r.status_code == 400


def test_creating_a_channel_twice_is_a_conflict(relay):
    body = {"channel": "twice", "members": [{"member": "a", "role": "principal"}]}
    assert relay.admin.post("/v1/admin/channels", json=body).status_code == 201
    r = relay.admin.post("/v1/admin/channels", json=body)
    assert (r.status_code, error_code(r)) == (409, "conflict")


# --- envelope checks, in order ----------------------------------------------------------------------


def resign(desk: Desk, header: dict, envelope: Envelope) -> dict:
    """An envelope with ``header`` (re-serialized) and a valid signature by ``desk``."""
    header_bytes = dump_json(header)
    body_hash = envelope.body_hash
    keys_hash = envelope.keys_hash
    sig = desk.keys.signing.sign(frame(DS_ENVELOPE, header_bytes, body_hash, keys_hash))
    return {**envelope.to_json(), "header": b64e(header_bytes), "sig": b64e(sig)}


def test_bad_envelope_signature_is_refused(pair):
    delhi = pair["delhi"]
    envelope = delhi.seal(["islamabad"])
    body = {**envelope.to_json(), "sig": b64e(pair["islamabad"].keys.signing.sign(envelope.signed_bytes()))}
    r = delhi.send(body)
    assert (r.status_code, error_code(r)) == (400, "bad_signature")


def test_envelope_for_another_channel_is_refused(pair):
    delhi = pair["delhi"]
    envelope = delhi.seal(["islamabad"], channel="some-other-channel")
    r = delhi.send(envelope)
    assert (r.status_code, error_code(r)) == (400, "wrong_channel")


def test_unsupported_suite_is_refused(pair):
    delhi = pair["delhi"]
    envelope = delhi.seal(["islamabad"])
    header = json.loads(envelope.header_bytes)
    header["suite"] = "hotline-x9"
    r = delhi.send(resign(delhi, header, envelope))
    assert (r.status_code, error_code(r)) == (400, "unsupported_suite")


def test_envelope_from_another_device_is_a_sender_mismatch(pair):
    envelope = pair["delhi"].seal(["islamabad"])
    r = pair["islamabad"].send(envelope)
    assert (r.status_code, error_code(r)) == (403, "sender_mismatch")


def test_operator_may_not_send(pair):
    op = pair["audit"]
    envelope = op.seal(["delhi"])
    r = op.send(envelope)
    assert (r.status_code, error_code(r)) == (403, "forbidden")


def test_operator_is_never_a_recipient(pair):
    delhi = pair["delhi"]
    op_keys = pair["audit"].keys
    recipients = [*delhi.recipients(["islamabad"]), op_keys.current_prekey(now_ms())]
    r = delhi.send(delhi.seal(["islamabad", "audit"], recipients=recipients))
    assert (r.status_code, error_code(r)) == (409, "unknown_recipient")
    assert r.json()["error"]["details"]["unknown"] == ["audit/laptop"]


def test_unknown_recipient_device_is_refused(pair):
    delhi = pair["delhi"]
    ghost = DeviceKeys.generate(DeviceAddress("islamabad", "ghost"), os.urandom, now_ms())
    recipients = [*delhi.recipients(["islamabad"]), ghost.current_prekey(now_ms())]
    r = delhi.send(delhi.seal(["islamabad"], recipients=recipients))
    assert (r.status_code, error_code(r)) == (409, "unknown_recipient")
    assert r.json()["error"]["details"] == {"unknown": ["islamabad/ghost"], "missing": []}


def test_unpublished_prekey_is_refused(pair):
    delhi, isb = pair["delhi"], pair["islamabad"]
    unpublished = isb.keys.new_prekey(os.urandom, now_ms())
    r = delhi.send(delhi.seal(["islamabad"], recipients=[unpublished]))
    assert (r.status_code, error_code(r)) == (409, "expired_prekey")


# --- enrollment -------------------------------------------------------------------------------------


def test_bad_enrollments_are_refused(relay):
    _, invites = relay.create_channel({"delhi": "principal"})
    invite = invites["delhi"]
    keys = DeviceKeys.generate(DeviceAddress("delhi", "laptop"), os.urandom, now_ms())
    other = DeviceKeys.generate(DeviceAddress("delhi", "laptop"), os.urandom, now_ms())
    good_prekey = next(iter(keys.prekeys.values())).signed
    signed_by_other = next(iter(other.prekeys.values())).signed
    wrong_owner = DeviceKeys.generate(DeviceAddress("delhi", "tablet"), os.urandom, now_ms())

    def enroll(**changes):
        body = {
            "code": invite["code"],
            "device": "laptop",
            "signing_key": b64e(keys.signing_public_key),
            "prekeys": [good_prekey.to_json()],
            **changes,
        }
        with relay.client() as c:
            return c.post("/v1/enroll", json=body)

    cases = [
        ({"prekeys": [signed_by_other.to_json()]}, 400, "bad_signature"),
        ({"prekeys": [{**good_prekey.to_json(), "sig": b64e(bytes(64))}]}, 400, "bad_signature"),
        ({"prekeys": [next(iter(wrong_owner.prekeys.values())).signed.to_json()]}, 400, "malformed"),
        ({"prekeys": []}, 400, "malformed"),
        ({"signing_key": "not base64!"}, 400, "malformed"),
        ({"signing_key": b64e(b"short")}, 400, "malformed"),
        ({"device": "Laptop"}, 400, "malformed"),
        ({"code": "wrong-code"}, 404, "invite_invalid"),
    ]
    for changes, status, code in cases:
        r = enroll(**changes)
        assert (r.status_code, error_code(r)) == (status, code), changes
    assert enroll().status_code == 201
    r = enroll()
    assert (r.status_code, error_code(r)) == (410, "invite_used")
    with relay.client() as c:
        assert error_code(c.get(f"/v1/invites/{invite['code']}")) == "invite_used"


def test_enrollment_preview_and_expired_invite(relay):
    import time

    channel, invites = relay.create_channel({"delhi": "principal"}, invite_ttl_s=1)
    code = invites["delhi"]["code"]
    with relay.client() as c:
        preview = c.get(f"/v1/invites/{code}").json()
    assert preview["channel"] == channel and preview["member"] == "delhi" and preview["role"] == "principal"
    assert preview["relay_id"] == relay.info()["relay_id"]
    assert preview["relay_public_key"] == relay.info()["public_key"]
    time.sleep(1.1)
    with relay.client() as c:
        assert error_code(c.get(f"/v1/invites/{code}")) == "invite_expired"
        keys = DeviceKeys.generate(DeviceAddress("delhi", "laptop"), os.urandom, now_ms())
        r = c.post(
            "/v1/enroll",
            json={
                "code": code,
                "device": "laptop",
                "signing_key": b64e(keys.signing_public_key),
                "prekeys": [p.signed.to_json() for p in keys.prekeys.values()],
            },
        )
    assert (r.status_code, error_code(r)) == (410, "invite_expired")


def test_duplicate_device_name_and_reused_key_are_conflicts(relay):
    channel, desks = setup_channel(relay, {"delhi": "principal"})
    keys = desks["delhi"].keys
    with relay.client() as c:
        same_name = DeviceKeys.generate(DeviceAddress("delhi", "laptop"), os.urandom, now_ms())
        r = c.post(
            "/v1/enroll",
            json={
                "code": relay.invite(channel, "delhi")["code"],
                "device": "laptop",
                "signing_key": b64e(same_name.signing_public_key),
                "prekeys": [p.signed.to_json() for p in same_name.prekeys.values()],
            },
        )
        assert (r.status_code, error_code(r)) == (409, "conflict")
        tablet = DeviceKeys(DeviceAddress("delhi", "tablet"), keys.signing)
        r = c.post(
            "/v1/enroll",
            json={
                "code": relay.invite(channel, "delhi")["code"],
                "device": "tablet",
                "signing_key": b64e(keys.signing_public_key),
                "prekeys": [tablet.new_prekey(os.urandom, now_ms()).to_json()],
            },
        )
        assert (r.status_code, error_code(r)) == (409, "conflict")


def test_revoked_member_cannot_enroll_or_log_in(relay):
    channel, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    invite = relay.invite(channel, "islamabad")
    r = relay.admin.post(f"/v1/admin/channels/{channel}/members/islamabad/revoke")
    assert r.status_code == 200 and r.json()["member"]["status"] == "revoked"
    assert all(d["status"] == "revoked" for d in r.json()["member"]["devices"])
    with relay.client() as c:
        assert error_code(c.get(f"/v1/invites/{invite['code']}")) == "device_revoked"
        r = c.post("/v1/auth/challenge", json={"channel": channel, "member": "islamabad", "device": "laptop"})
        assert (r.status_code, error_code(r)) == (403, "device_revoked")
    r = relay.admin.post(f"/v1/admin/channels/{channel}/invites", json={"member": "islamabad"})
    assert (r.status_code, error_code(r)) == (403, "device_revoked")
    r = desks["islamabad"].get("/directory")
    assert (r.status_code, error_code(r)) == (403, "device_revoked")


# --- authentication ---------------------------------------------------------------------------------


def test_bad_auth_attempts_are_refused(relay, pair):
    delhi = pair["delhi"]
    who = {"channel": delhi.channel, "member": "delhi", "device": "laptop"}
    relay_id = relay.info()["relay_id"]
    with relay.client() as c:
        r = c.post("/v1/auth/challenge", json={**who, "device": "nosuch"})
        assert (r.status_code, error_code(r)) == (404, "not_found")
        challenge = c.post("/v1/auth/challenge", json=who).json()["challenge"]
        from hotline.protocol.encoding import b64d

        raw = b64d(challenge, field="c")
        wrong = sign_auth_challenge(pair["islamabad"].keys.signing, relay_id, raw, delhi.address)
        r = c.post("/v1/auth/token", json={**who, "challenge": challenge, "signature": b64e(wrong)})
        assert (r.status_code, error_code(r)) == (400, "bad_signature")
        right = sign_auth_challenge(delhi.keys.signing, relay_id, raw, delhi.address)
        r = c.post("/v1/auth/token", json={**who, "challenge": challenge, "signature": b64e(right)})
        assert (r.status_code, error_code(r)) == (401, "challenge_invalid")  # burnt by the bad try
        fresh = b64d(c.post("/v1/auth/challenge", json=who).json()["challenge"], field="c")
        other_relay = sign_auth_challenge(delhi.keys.signing, "hotline-relay:other", fresh, delhi.address)
        r = c.post("/v1/auth/token", json={**who, "challenge": b64e(fresh), "signature": b64e(other_relay)})
        assert (r.status_code, error_code(r)) == (400, "bad_signature")
        r = c.post("/v1/auth/token", json={**who, "challenge": b64e(bytes(32)), "signature": b64e(right)})
        assert (r.status_code, error_code(r)) == (401, "challenge_invalid")
        r = c.post("/v1/auth/token", json={**who, "challenge": "***", "signature": b64e(right)})
        assert (r.status_code, error_code(r)) == (400, "malformed")


@pytest.mark.parametrize("header", ["", "Bearer", "Basic abc", "Bearer " + "x" * 500])
def test_bad_authorization_headers(relay, pair, header):
    with relay.client() as c:
        r = c.get(pair["delhi"].path("/inbox"), headers={"Authorization": header})
    assert (r.status_code, error_code(r)) == (401, "unauthorized")


# --- routing, query and path parameters -------------------------------------------------------------


def test_unknown_path_and_method_are_json_errors(relay, pair):
    with relay.client() as c:
        r = c.get("/v1/nothing-here")
        assert (r.status_code, error_code(r)) == (404, "not_found")
        r = c.delete("/v1/relay")
        assert (r.status_code, error_code(r)) == (405, "method_not_allowed")
    r = pair["delhi"].get("/envelopes/not-a-uuid")
    assert (r.status_code, error_code(r)) == (400, "malformed")


@pytest.mark.parametrize("limit", ["abc", "0", "-1", "100000"])
def test_bad_inbox_limits(pair, limit):
    r = pair["delhi"].get("/inbox", params={"limit": limit})
    assert (r.status_code, error_code(r)) == (400, "malformed")


@pytest.mark.parametrize("ids", [["1"], [1.5], [True], "1", [-1], list(range(1, 2000))])
def test_bad_acks(pair, ids):
    r = pair["delhi"].post("/inbox/ack", json={"ids": ids})
    assert r.status_code in (400, 413)
    assert error_code(r) in ("malformed", "too_large")


def test_responses_carry_security_headers(relay):
    with relay.client() as c:
        r = c.get("/v1/relay")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


# --- socket frames ----------------------------------------------------------------------------------


def socket_error(relay, desk: Desk, *frames) -> tuple[int | None, dict]:
    url = relay.url.replace("http", "ws", 1) + desk.path("/socket")
    with ws_connect(url, open_timeout=10, max_size=None) as ws:
        for f in frames:
            ws.send(f)
        error = {}
        try:
            while True:
                got = recv_frame(ws)
                if got["type"] == "error":
                    error = got["error"]
        except ConnectionClosed:
            pass
        return ws.close_code, error


AUTH = "AUTH"


@pytest.mark.parametrize(
    ("frames", "close_code", "code"),
    [
        (["not json"], 4400, "malformed"),
        ([b"\x00binary"], 4400, "malformed"),
        (['{"type": "ack", "ids": [1]}'], 4401, "unauthorized"),
        (['{"type": "auth", "token": 5}'], 4401, "unauthorized"),
        ([AUTH, '{"type": "dance"}'], 4400, "malformed"),
        ([AUTH, '{"type": "ack", "ids": ["x"]}'], 4400, "malformed"),
        ([AUTH, '{"type": "ack", "ids": [1], "more": 1}'], 4400, "malformed"),
        ([AUTH, '{"type": "ping", "type": "pong"}'], 4400, "malformed"),
    ],
)
def test_bad_socket_frames_close_the_socket(relay, pair, frames, close_code, code):
    delhi = pair["delhi"]
    frames = [json.dumps({"type": "auth", "token": delhi.token}) if f == AUTH else f for f in frames]
    got_close, error = socket_error(relay, delhi, *frames)
    assert (got_close, error.get("code")) == (close_code, code)


def test_oversized_socket_frame_is_refused(relay, pair):
    delhi = pair["delhi"]
    limit = relay.info()["limits"]["socket_max_frame_bytes"]
    huge = json.dumps({"type": "ping", "pad": "x" * limit})
    got_close, _ = socket_error(relay, delhi, json.dumps({"type": "auth", "token": delhi.token}), huge)
    assert got_close in (1009, 4400)


def test_openapi_and_docs_are_served(relay):
    with relay.client() as c:
        spec = c.get("/openapi.json").json()
        docs = c.get("/docs")
    assert "/v1/channels/{channel}/envelopes" in spec["paths"]
    body = spec["paths"]["/v1/admin/channels"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False
    assert docs.status_code == 200 and "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
