"""Test support for the relay: a real relay process, and desks that talk to it with the protocol core.

Deliberately independent of ``hotline.client``: plain httpx, the ``websockets`` sync client, and
``hotline.protocol`` for keys, sealing and receipts. Every HTTP response any test sees passes through
:func:`no_server_error`, so a 5xx anywhere fails the test that caused it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from hotline.protocol import DeviceKeys, Envelope, Intent, Precedence, SignedPrekey, seal_envelope
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.envelope import open_envelope
from hotline.protocol.model import DeviceAddress, Suite
from hotline.protocol.receipts import Receipt, ReceiptKind, issue_device_receipt
from hotline.protocol.statements import sign_auth_challenge

REPO = Path(__file__).resolve().parents[2]
HOTLINE = str(Path(sys.executable).with_name("hotline"))
STARTUP_TIMEOUT_S = 30.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def no_server_error(response: httpx.Response) -> None:
    """httpx response hook: the relay must never answer a request with a 5xx (503 aside, never here)."""
    if response.status_code >= 500:
        response.read()
        request = response.request
        raise AssertionError(
            f"{request.method} {request.url.path} -> {response.status_code}: {response.text}"
        )


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["code"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RelayProcess:
    """``hotline serve`` in a subprocess, on its own data dir and database."""

    def __init__(self, data_dir: Path, db_url: str | None, backend: str, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.db_url = db_url
        self.backend = backend
        self.env = env
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._admin: httpx.Client | None = None
        self._info: dict[str, Any] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"  # the relay creates data_dir itself

    def start(self, port: int | None = None) -> RelayProcess:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        args = [HOTLINE, "serve", "--data-dir", str(self.data_dir), "--port", str(port or 0)]
        if self.db_url:
            args += ["--db", self.db_url]
        env = {**os.environ, **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        url = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited with {self.proc.returncode}:\n{self.log_tail()}")
            lines = [
                ln for ln in self.log_path.read_text(errors="replace").splitlines() if " listening on " in ln
            ]
            if lines:
                url = lines[-1].rsplit(" ", 1)[-1]
                try:
                    if (
                        httpx.get(url + "/readyz", timeout=2, verify=False).status_code == 200
                    ):  # may be self-signed
                        break
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"relay did not become ready:\n{self.log_tail()}")
        self.url = url
        self.port = int(url.rsplit(":", 1)[-1])
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush — what a crash looks like."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.start(self.port)

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=self.url, headers=headers, timeout=15, event_hooks={"response": [no_server_error]}
        )

    @property
    def admin(self) -> httpx.Client:
        if self._admin is None or str(self._admin.base_url).rstrip("/") != self.url:
            self._admin = self.client(self.admin_token)
        return self._admin

    def info(self) -> dict[str, Any]:
        """GET /v1/relay (cached: the relay's key lives as long as its data dir)."""
        if self._info is None:
            with self.client() as c:
                self._info = dict(c.get("/v1/relay").json())
        return self._info

    def create_channel(self, members: dict[str, str], **extra: Any) -> tuple[str, dict[str, dict[str, Any]]]:
        """Create a channel with ``members`` (name -> role); return its name and an invite per member."""
        name = unique("ch")
        r = self.admin.post(
            "/v1/admin/channels",
            json={
                "channel": name,
                "members": [{"member": m, "role": role} for m, role in members.items()],
                **extra,
            },
        )
        assert r.status_code == 201, r.text
        return name, {i["member"]: i for i in r.json()["invites"]}

    def invite(self, channel: str, member: str, **extra: Any) -> dict[str, Any]:
        r = self.admin.post(f"/v1/admin/channels/{channel}/invites", json={"member": member, **extra})
        assert r.status_code == 201, r.text
        return dict(r.json())


def enroll_body(keys: DeviceKeys, code: str, prekeys: Iterable[SignedPrekey] | None = None) -> dict[str, Any]:
    pks = list(prekeys) if prekeys is not None else [p.signed for p in keys.prekeys.values()]
    return {
        "code": code,
        "device": keys.address.device,
        "signing_key": b64e(keys.signing_public_key),
        "prekeys": [p.to_json() for p in pks],
    }


class Desk:
    """One enrolled device of one member, talking to the relay like a client would."""

    def __init__(self, relay: RelayProcess, channel: str, keys: DeviceKeys, role: str) -> None:
        self.relay = relay
        self.channel = channel
        self.keys = keys
        self.role = role
        self.token = ""
        self.seq: dict[str, int] = {}
        self._http: httpx.Client | None = None

    @property
    def address(self) -> DeviceAddress:
        return self.keys.address

    @property
    def member(self) -> str:
        return self.keys.address.member

    @classmethod
    def enroll(
        cls, relay: RelayProcess, invite: dict[str, Any], device: str = "laptop", login: bool = True
    ) -> Desk:
        with relay.client() as c:
            suite = Suite(c.get(f"/v1/invites/{invite['code']}").json()["suite"])
            address = DeviceAddress(invite["member"], device)
            keys = DeviceKeys.generate(address, os.urandom, now_ms(), suite=suite)
            r = c.post("/v1/enroll", json=enroll_body(keys, invite["code"]))
        assert r.status_code == 201, r.text
        desk = cls(relay, invite["channel"], keys, invite["role"])
        if login:
            desk.login()
        return desk

    def login(self) -> str:
        who = {"channel": self.channel, "member": self.member, "device": self.address.device}
        with self.relay.client() as c:
            r = c.post("/v1/auth/challenge", json=who)
            assert r.status_code == 200, r.text
            challenge = b64d(r.json()["challenge"], field="challenge")
            sig = sign_auth_challenge(
                self.keys.signing, self.relay.info()["relay_id"], challenge, self.address
            )
            r = c.post("/v1/auth/token", json={**who, "challenge": b64e(challenge), "signature": b64e(sig)})
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]
        if self._http is not None:
            self._http.close()
            self._http = None
        return self.token

    @property
    def http(self) -> httpx.Client:
        if self._http is None or str(self._http.base_url).rstrip("/") != self.relay.url:
            self._http = self.relay.client(self.token)
        return self._http

    def path(self, suffix: str) -> str:
        return f"/v1/channels/{self.channel}{suffix}"

    def get(self, suffix: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.path(suffix), **kw)

    def post(self, suffix: str, **kw: Any) -> httpx.Response:
        return self.http.post(self.path(suffix), **kw)

    # --- directory and sealing ---

    def directory(self) -> dict[str, Any]:
        r = self.get("/directory")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def signing_key_of(self, address: DeviceAddress) -> bytes:
        for m in self.directory()["members"]:
            for d in m["devices"]:
                if m["member"] == address.member and d["device"] == address.device:
                    return b64d(d["signing_key"], field="signing_key")
        raise KeyError(str(address))

    def recipients(self, to: Iterable[str]) -> list[SignedPrekey]:
        """A current prekey of every active device of ``to`` and of this desk's own other devices."""
        members = set(to) | {self.member}
        out = []
        for m in self.directory()["members"]:
            if m["member"] not in members or m["status"] != "active" or m["role"] == "operator":
                continue
            for d in m["devices"]:
                if d["status"] != "active" or (m["member"], d["device"]) == (
                    self.member,
                    self.address.device,
                ):
                    continue
                prekeys = [SignedPrekey.from_json(p) for p in d["prekeys"]]
                out.append(max(prekeys, key=lambda p: p.expires_ms))
        return out

    def seal(
        self,
        to: Iterable[str],
        text: str = "hello",
        precedence: Precedence = Precedence.ROUTINE,
        recipients: list[SignedPrekey] | None = None,
        channel: str | None = None,
    ) -> Envelope:
        prekeys = recipients if recipients is not None else self.recipients(to)
        members = sorted({p.owner.member for p in prekeys})
        seq = {m: self.seq.get(m, 0) + 1 for m in members}
        self.seq.update(seq)
        return seal_envelope(
            self.keys,
            channel=channel or self.channel,
            seq=seq,
            recipients=prekeys,
            precedence=precedence,
            intent=Intent.FREE_TEXT,
            text=text,
            now_ms=now_ms(),
            rng=os.urandom,
        )

    def send(self, envelope: Envelope | dict[str, Any]) -> httpx.Response:
        body = envelope.to_json() if isinstance(envelope, Envelope) else envelope
        return self.post("/envelopes", json=body)

    def send_text(self, to: Iterable[str], text: str = "hello", **kw: Any) -> tuple[Envelope, dict[str, Any]]:
        envelope = self.seal(to, text, **kw)
        r = self.send(envelope)
        assert r.status_code == 201, r.text
        return envelope, dict(r.json())

    def open(self, item: dict[str, Any]) -> str:
        envelope = Envelope.from_json(item["envelope"])
        sender_key = self.signing_key_of(envelope.header.sender)
        return open_envelope(envelope, self.keys, sender_key).content.text

    # --- inbox and receipts ---

    def inbox(self, limit: int = 100) -> list[dict[str, Any]]:
        r = self.get("/inbox", params={"limit": limit})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def ack(self, ids: Iterable[int]) -> int:
        r = self.post("/inbox/ack", json={"ids": list(ids)})
        assert r.status_code == 200, r.text
        return int(r.json()["acked"])

    def receipt(self, envelope: Envelope, kind: ReceiptKind = ReceiptKind.DELIVERED) -> Receipt:
        return issue_device_receipt(
            self.keys.signing,
            self.address,
            kind,
            channel=envelope.header.channel,
            message_id=envelope.header.message_id,
            envelope_hash=envelope.hash,
            at_ms=now_ms(),
        )

    def send_receipt(self, receipt: Receipt) -> httpx.Response:
        return self.post("/receipts", json={"receipt": receipt.to_json()})

    # --- socket ---

    def socket(self, token: str | None = None) -> ClientConnection:
        ws = ws_connect(
            self.relay.url.replace("http", "ws", 1) + self.path("/socket"), open_timeout=10, legacy=True
        )
        ws.send(json.dumps({"type": "auth", "token": token or self.token}))
        ready = json.loads(ws.recv(timeout=10))
        assert ready == {"type": "ready"}, ready
        return ws

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def recv_frame(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def recv_items(ws: ClientConnection, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The next ``count`` item frames' items (pongs and the like are skipped)."""
    items: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(items) < count:
        frame = recv_frame(ws, max(0.01, deadline - time.monotonic()))
        if frame["type"] == "item":
            items.append(frame["item"])
        elif frame["type"] == "error":
            raise AssertionError(f"socket error: {frame}")
    return items


def message_id(item: dict[str, Any]) -> str:
    return Envelope.from_json(item["envelope"]).header.message_id


def setup_channel(
    relay: RelayProcess,
    members: dict[str, str],
    devices: dict[str, list[str]] | None = None,
    suite: str = "hotline-c1",
) -> tuple[str, dict[str, Desk]]:
    """A channel with ``members`` (name -> role), one enrolled desk per member (``laptop``), logged in,
    with empty inboxes.

    ``devices`` names extra devices per member; they are keyed ``member/device`` in the result.
    """
    channel, invites = relay.create_channel(members, suite=suite)
    desks = {m: Desk.enroll(relay, inv) for m, inv in invites.items()}
    for member, names in (devices or {}).items():
        for name in names:
            desks[f"{member}/{name}"] = Desk.enroll(relay, relay.invite(channel, member), device=name)
    for desk in desks.values():  # start with empty inboxes: drop the enrollment announcements
        desk.ack(i["id"] for i in desk.inbox(500))
    return channel, desks
