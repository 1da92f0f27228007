"""The relay's service layer: everything the HTTP and socket handlers delegate to.

Each public method runs its checks in the order docs/API.md states, raises :class:`RelayError` for
the first failure, and does its work in one transaction: an accepted envelope, its audit-log entry,
its inbox items and its signed ``relay-accepted`` receipt are committed together, before the caller
answers. Notifications to live sockets go out only after the commit.

The relay checks signatures with public keys and signs only its own statements; it never sees a
device private key or message content, and logs neither.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hotline.protocol import audit, crypto
from hotline.protocol.encoding import b64d, b64e, dump_json
from hotline.protocol.envelope import Envelope
from hotline.protocol.errors import ProtocolError
from hotline.protocol.ids import RandomSource
from hotline.protocol.keys import SignedPrekey
from hotline.protocol.model import DEFAULT_LIMITS, DeviceAddress, Limits, Precedence, Suite
from hotline.protocol.receipts import Receipt, ReceiptKind, issue_relay_accepted
from hotline.protocol.statements import verify_auth_proof
from hotline.relay.access import SENDING_ROLES, Principal, require_channel, require_own_member, require_role
from hotline.relay.errors import (
    RelayError,
    RelayErrorCode,
    conflict,
    forbidden,
    from_protocol,
    malformed,
    not_found,
)
from hotline.relay.identity import RelayIdentity
from hotline.relay.metrics import RelayMetrics
from hotline.relay.notifier import Notifier
from hotline.relay.semantics import SemanticsService, SendPurpose
from hotline.relay.settings import RelaySettings
from hotline.relay.store import (
    ChannelRow,
    DeviceRow,
    EnvelopeRow,
    InviteRow,
    ItemKind,
    ItemRow,
    MemberRow,
    NewItem,
    PrekeyRow,
    Role,
    Status,
    Store,
    Tx,
)

DIRECTORY_RANK = 0  # key changes go out with FLASH traffic: a sender needs them to seal correctly
CHALLENGE_BYTES = 32
TOKEN_BYTES = 32
INVITE_CODE_BYTES = 16  # 128 bits


def new_invite_code(rng: Callable[[int], bytes]) -> str:
    """128 random bits in base64url, never starting with '-' (a command line would read it as an option)."""
    while True:
        code = b64e(rng(INVITE_CODE_BYTES))
        if not code.startswith("-"):
            return code


_MAX_SIGNING_KEY = max(suite.sizes.signing_public_key for suite in Suite)
_MAX_SIGNATURE = max(suite.sizes.signature for suite in Suite)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def token_hash(token: str) -> bytes:
    return crypto.sha256(token.encode("utf-8"))


@dataclass(frozen=True)
class SendResult:
    receipt: Receipt
    log_index: int
    duplicate: bool


@dataclass(frozen=True)
class ReceiptResult:
    log_index: int
    duplicate: bool


@dataclass(frozen=True)
class MemberSpec:
    member: str
    role: Role


def _revoked(what: str) -> RelayError:
    return RelayError(RelayErrorCode.DEVICE_REVOKED, f"{what} has been revoked")


class RelayService:
    def __init__(
        self,
        store: Store,
        identity: RelayIdentity,
        settings: RelaySettings,
        notifier: Notifier,
        *,
        now_ms: Callable[[], int] = wall_clock_ms,
        rng: RandomSource = os.urandom,
        limits: Limits = DEFAULT_LIMITS,
        metrics: RelayMetrics | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.settings = settings
        self.notifier = notifier
        self.now_ms = now_ms
        self.rng = rng
        self.limits = limits
        self.metrics = metrics or RelayMetrics()
        # Deadlines, escalation, link tests, check-ins, crisis mode (docs/adr/0007).
        self.semantics = SemanticsService(store, identity, settings, notifier, now_ms=now_ms, rng=rng)

    # --- descriptions ------------------------------------------------------------------------------

    def relay_info(self) -> dict[str, Any]:
        s, lim = self.settings, self.limits
        return {
            "relay_id": self.identity.relay_id,
            "public_key": b64e(self.identity.public_key),
            "version": 1,
            "suites": [suite.value for suite in Suite],
            "limits": {
                "max_request_bytes": s.max_request_bytes,
                "max_header_bytes": lim.max_header_bytes,
                "max_body_plaintext_bytes": lim.max_body_plaintext_bytes,
                "max_recipients": lim.max_recipients,
                "max_receipt_bytes": lim.max_receipt_bytes,
                "max_prekeys_per_request": s.max_prekeys_per_request,
                "max_inbox_page": s.max_inbox_page,
                "max_ack_ids": s.max_ack_ids,
                "socket_max_frame_bytes": s.socket_max_frame_bytes,
                "socket_auth_timeout_s": s.socket_auth_timeout_s,
                "token_ttl_s": s.token_ttl_s,
                "challenge_ttl_s": s.challenge_ttl_s,
                "clock_skew_s": s.clock_skew_s,
                "rate_per_s": s.rate_per_s,
                "rate_burst": s.rate_burst,
            },
        }

    def _invite_json(
        self, channel: ChannelRow, member: MemberRow, code: str, expires_ms: int
    ) -> dict[str, Any]:
        return {
            "channel": channel.name,
            "member": member.name,
            "role": member.role.value,
            "code": code,
            "url": f"{self.settings.base_url()}/#enroll={code}",
            "expires_ms": expires_ms,
        }

    @staticmethod
    def _device_json(d: DeviceRow) -> dict[str, Any]:
        return {
            "device": d.name,
            "signing_key": b64e(d.signing_key),
            "status": d.status.value,
            "enrolled_at_ms": d.enrolled_at_ms,
            "revoked_at_ms": d.revoked_at_ms,
        }

    @staticmethod
    def _member_json(m: MemberRow, devices: Sequence[DeviceRow] = ()) -> dict[str, Any]:
        return {
            "member": m.name,
            "role": m.role.value,
            "status": m.status.value,
            "created_at_ms": m.created_at_ms,
            "revoked_at_ms": m.revoked_at_ms,
            "devices": [RelayService._device_json(d) for d in devices if d.member_id == m.id],
        }

    async def _channel_json(self, tx: Tx, channel: ChannelRow) -> dict[str, Any]:
        members = await tx.list_members(channel.id)
        devices = await tx.list_devices(channel.id)
        return {
            "channel": channel.name,
            "title": channel.title,
            "suite": channel.suite,
            "created_at_ms": channel.created_at_ms,
            "directory_version": channel.directory_version,
            "members": [self._member_json(m, devices) for m in members],
        }

    # --- shared steps ------------------------------------------------------------------------------

    async def _channel(self, tx: Tx, name: str) -> ChannelRow:
        channel = await tx.get_channel(name)
        if channel is None:
            raise not_found(f"no channel {name}")
        return channel

    async def _member(self, tx: Tx, channel: ChannelRow, name: str) -> MemberRow:
        member = await tx.get_member(channel.id, name)
        if member is None:
            raise not_found(f"no member {name} in channel {channel.name}")
        return member

    def _check_ttl(self, ttl_s: int | None) -> int:
        ttl = self.settings.invite_ttl_s if ttl_s is None else ttl_s
        if not 1 <= ttl <= self.settings.max_invite_ttl_s:
            raise malformed(f"invite ttl must be between 1 and {self.settings.max_invite_ttl_s} seconds")
        return ttl

    async def _new_invite(
        self, tx: Tx, channel: ChannelRow, member: MemberRow, ttl_s: int, now: int
    ) -> dict[str, Any]:
        code = new_invite_code(self.rng)
        code_hash = crypto.sha256(code.encode("ascii"))
        expires = now + ttl_s * 1000
        await tx.insert_invite(code_hash, channel.id, member.id, now, expires)
        await tx.append_audit(
            now,
            audit.invite_created(
                at_ms=now,
                channel=channel.name,
                member=member.name,
                role=member.role.value,
                code_hash=code_hash,
                expires_ms=expires,
            ),
        )
        return self._invite_json(channel, member, code, expires)

    async def _announce(
        self,
        tx: Tx,
        channel: ChannelRow,
        change: str,
        member: str,
        device: str | None,
        now: int,
        *,
        skip_device: int | None = None,
    ) -> list[int]:
        """Queue a ``directory`` item for every active device in the channel; bump the version."""
        await tx.bump_directory_version(channel.id)
        payload = dump_json({"change": change, "member": member, "device": device})
        targets = [d.id for d in await tx.list_devices(channel.id) if d.active and d.id != skip_device]
        await tx.queue_items(
            [
                NewItem(device_id=d, kind=ItemKind.DIRECTORY, rank=DIRECTORY_RANK, at_ms=now, payload=payload)
                for d in targets
            ]
        )
        return targets

    def _parse_prekeys(
        self, raw: Sequence[object], owner: DeviceAddress, suite: str, signing_key: bytes, now: int
    ) -> list[SignedPrekey]:
        """Parse, check and verify uploaded prekeys: owner, suite, signature, valid now."""
        if len(raw) > self.settings.max_prekeys_per_request:
            raise RelayError(
                RelayErrorCode.TOO_LARGE, f"at most {self.settings.max_prekeys_per_request} prekeys at once"
            )
        skew = self.settings.clock_skew_s * 1000
        out: list[SignedPrekey] = []
        for i, item in enumerate(raw):
            try:
                prekey = SignedPrekey.from_json(item, limits=self.limits)
            except ProtocolError as exc:
                raise from_protocol(exc) from exc
            if prekey.owner != owner:
                raise malformed(f"prekeys[{i}]: owner {prekey.owner} is not {owner}")
            if prekey.suite.value != suite:
                raise RelayError(
                    RelayErrorCode.UNSUPPORTED_SUITE,
                    f"prekeys[{i}]: suite is not the channel's suite {suite}",
                )
            try:
                prekey.verify(signing_key)
            except ProtocolError as exc:
                raise RelayError(
                    RelayErrorCode.BAD_SIGNATURE, f"prekeys[{i}]: signature does not verify"
                ) from exc
            if not (prekey.not_before_ms <= now + skew and now < prekey.expires_ms):
                raise RelayError(RelayErrorCode.EXPIRED_PREKEY, f"prekeys[{i}]: not valid now")
            out.append(prekey)
        return out

    @staticmethod
    def _prekey_rows(device_id: int, prekeys: Iterable[SignedPrekey]) -> list[PrekeyRow]:
        return [
            PrekeyRow(
                device_id=device_id,
                prekey_id=p.id,
                body=p.body,
                sig=p.signature,
                not_before_ms=p.not_before_ms,
                expires_ms=p.expires_ms,
            )
            for p in prekeys
        ]

    # --- admin -------------------------------------------------------------------------------------

    async def create_channel(
        self,
        name: str,
        title: str,
        suite: str,
        members: Sequence[MemberSpec],
        invite_ttl_s: int | None,
        *,
        policy: object = None,
    ) -> dict[str, Any]:
        if suite not in {s.value for s in Suite}:
            raise RelayError(RelayErrorCode.UNSUPPORTED_SUITE, f"suite {suite!r} is not supported")
        if len(members) > self.settings.max_members_per_channel:
            raise RelayError(
                RelayErrorCode.TOO_LARGE, f"at most {self.settings.max_members_per_channel} members"
            )
        if len({m.member for m in members}) != len(members):
            raise malformed("members: a member is listed twice")
        ttl = self._check_ttl(invite_ttl_s)
        now = self.now_ms()
        async with self.store.write() as tx:
            if await tx.get_channel(name) is not None:
                raise conflict(f"channel {name} already exists")
            await tx.lock_log()
            channel = await tx.insert_channel(name, title, suite, now)
            await tx.append_audit(
                now,
                audit.channel_created(
                    at_ms=now,
                    channel=name,
                    title=title,
                    suite=suite,
                    members=[(m.member, m.role.value) for m in members],
                ),
            )
            invites = []
            for spec in members:
                member = await tx.insert_member(channel.id, spec.member, spec.role, now)
                invites.append(await self._new_invite(tx, channel, member, ttl, now))
            await self.semantics.init_channel(tx, channel, policy, now)
            body = await self._channel_json(tx, channel)
        return {"channel": body, "invites": invites}

    async def list_channels(self) -> list[dict[str, Any]]:
        async with self.store.read() as tx:
            return [await self._channel_json(tx, c) for c in await tx.list_channels()]

    async def get_channel(self, name: str) -> dict[str, Any]:
        async with self.store.read() as tx:
            return await self._channel_json(tx, await self._channel(tx, name))

    async def add_member(
        self, channel_name: str, spec: MemberSpec, invite_ttl_s: int | None
    ) -> dict[str, Any]:
        ttl = self._check_ttl(invite_ttl_s)
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            if await tx.get_member(channel.id, spec.member) is not None:
                raise conflict(f"member {spec.member} already exists in channel {channel_name}")
            if len(await tx.list_members(channel.id)) >= self.settings.max_members_per_channel:
                raise RelayError(
                    RelayErrorCode.TOO_LARGE, f"at most {self.settings.max_members_per_channel} members"
                )
            await tx.lock_log()
            member = await tx.insert_member(channel.id, spec.member, spec.role, now)
            await tx.append_audit(
                now,
                audit.member_added(
                    at_ms=now, channel=channel.name, member=member.name, role=member.role.value
                ),
            )
            invite = await self._new_invite(tx, channel, member, ttl, now)
        return {"member": self._member_json(member), "invite": invite}

    async def create_invite(self, channel_name: str, member_name: str, ttl_s: int | None) -> dict[str, Any]:
        ttl = self._check_ttl(ttl_s)
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            member = await self._member(tx, channel, member_name)
            if member.status is Status.REVOKED:
                raise _revoked(f"member {member_name}")
            await tx.lock_log()
            return await self._new_invite(tx, channel, member, ttl, now)

    async def revoke_member(self, channel_name: str, member_name: str) -> dict[str, Any]:
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            member = await self._member(tx, channel, member_name)
            devices = [d for d in await tx.list_devices(channel.id) if d.member_id == member.id]
            revoked_ids = [d.id for d in devices if d.status is Status.ACTIVE]
            targets: list[int] = []
            if member.status is Status.ACTIVE:
                await tx.lock_log()
                await tx.revoke_member(member.id, now)
                await tx.append_audit(
                    now,
                    audit.member_revoked(
                        at_ms=now,
                        channel=channel.name,
                        member=member.name,
                        devices=[d.name for d in devices if d.status is Status.ACTIVE],
                        by="admin",
                    ),
                )
                targets = await self._announce(tx, channel, "member_revoked", member.name, None, now)
            member = await self._member(tx, channel, member_name)
            devices = [d for d in await tx.list_devices(channel.id) if d.member_id == member.id]
        await self.notifier.revoke(revoked_ids)
        await self.notifier.publish(targets)
        return {"member": self._member_json(member, devices)}

    async def revoke_device(
        self, channel_name: str, member_name: str, device_name: str, by: str
    ) -> dict[str, Any]:
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            device = await tx.get_device(channel.id, member_name, device_name)
            if device is None:
                raise not_found(f"no device {member_name}/{device_name} in channel {channel_name}")
            changed = device.status is Status.ACTIVE
            targets: list[int] = []
            if changed:
                await tx.lock_log()
                await tx.revoke_device(device.id, now)
                address = DeviceAddress(member_name, device_name)
                await tx.append_audit(
                    now, audit.device_revoked(at_ms=now, channel=channel.name, address=address, by=by)
                )
                targets = await self._announce(
                    tx, channel, "device_revoked", member_name, device_name, now, skip_device=device.id
                )
                device = await tx.get_device_by_id(device.id) or device
        if changed:
            await self.notifier.revoke([device.id])
            await self.notifier.publish(targets)
        return {"device": self._device_json(device)}

    # --- enrollment --------------------------------------------------------------------------------

    async def _redeemable_invite(
        self, tx: Tx, code: str, now: int
    ) -> tuple[InviteRow, ChannelRow, MemberRow]:
        if not isinstance(code, str) or not 1 <= len(code) <= 64:
            raise RelayError(RelayErrorCode.INVITE_INVALID, "no such invite")
        invite = await tx.get_invite(crypto.sha256(code.encode("utf-8")))
        if invite is None:
            raise RelayError(RelayErrorCode.INVITE_INVALID, "no such invite")
        if invite.used_at_ms is not None:
            raise RelayError(RelayErrorCode.INVITE_USED, "this invite has already been redeemed")
        if now >= invite.expires_ms:
            raise RelayError(RelayErrorCode.INVITE_EXPIRED, "this invite has expired")
        channel = await tx.get_channel_by_id(invite.channel_id)
        member = await tx.get_member_by_id(invite.member_id)
        if channel is None or member is None:  # foreign keys make this impossible
            raise RelayError(RelayErrorCode.INVITE_INVALID, "no such invite")
        if member.status is Status.REVOKED:
            raise _revoked(f"member {member.name}")
        return invite, channel, member

    def _enrolled_json(self, channel: ChannelRow, member: MemberRow) -> dict[str, Any]:
        return {
            "channel": channel.name,
            "member": member.name,
            "role": member.role.value,
            "suite": channel.suite,
            "relay_id": self.identity.relay_id,
            "relay_public_key": b64e(self.identity.public_key),
        }

    async def preview_invite(self, code: str) -> dict[str, Any]:
        async with self.store.read() as tx:
            invite, channel, member = await self._redeemable_invite(tx, code, self.now_ms())
        return {**self._enrolled_json(channel, member), "expires_ms": invite.expires_ms}

    async def enroll(
        self, code: str, device: str, signing_key_b64: str, prekeys: Sequence[object]
    ) -> dict[str, Any]:
        now = self.now_ms()
        try:
            signing_key = b64d(signing_key_b64, field="signing_key", max_bytes=_MAX_SIGNING_KEY)
            crypto.suite_of_signing_key(signing_key)  # well-formed, not weak, of some suite
        except ProtocolError as exc:
            raise from_protocol(exc) from exc
        async with self.store.write() as tx:
            invite, channel, member = await self._redeemable_invite(tx, code, now)
            address = DeviceAddress(member.name, device)
            try:
                crypto.require_signing_key_suite(signing_key, Suite(channel.suite), who=str(address))
            except ProtocolError as exc:
                raise from_protocol(exc) from exc
            if await tx.get_device(channel.id, member.name, device) is not None:
                raise conflict(f"device {address} already exists")
            if await tx.signing_key_in_use(channel.id, signing_key):
                raise conflict("this signing key is already enrolled in the channel")
            checked = self._parse_prekeys(prekeys, address, channel.suite, signing_key, now)
            if not checked and member.role is not Role.OPERATOR:
                raise malformed("at least one valid signed prekey is required")
            await tx.lock_log()
            device_id = await tx.insert_device(channel.id, member.id, device, signing_key, now)
            if not await tx.use_invite(invite.id, now, device_id):
                raise RelayError(RelayErrorCode.INVITE_USED, "this invite has already been redeemed")
            await tx.append_audit(
                now,
                audit.device_enrolled(
                    at_ms=now,
                    channel=channel.name,
                    address=address,
                    role=member.role.value,
                    signing_key=signing_key,
                ),
            )
            if checked:
                await tx.insert_prekeys(self._prekey_rows(device_id, checked), now)
                await tx.append_audit(
                    now,
                    audit.prekeys_published(
                        at_ms=now, channel=channel.name, address=address, prekeys=checked
                    ),
                )
            targets = await self._announce(
                tx, channel, "device_enrolled", member.name, device, now, skip_device=device_id
            )
        await self.notifier.publish(targets)
        return {**self._enrolled_json(channel, member), "device": device}

    # --- device authentication ---------------------------------------------------------------------

    async def _known_device(
        self, tx: Tx, channel_name: str, member: str, device: str
    ) -> tuple[ChannelRow, DeviceRow]:
        channel = await tx.get_channel(channel_name)
        row = await tx.get_device(channel.id, member, device) if channel else None
        if channel is None or row is None:
            raise not_found(f"no device {member}/{device} in channel {channel_name}")
        return channel, row

    async def challenge(self, channel_name: str, member: str, device: str) -> dict[str, Any]:
        now = self.now_ms()
        challenge = self.rng(CHALLENGE_BYTES)
        expires = now + self.settings.challenge_ttl_s * 1000
        async with self.store.write() as tx:
            _, row = await self._known_device(tx, channel_name, member, device)
            if not row.active:
                raise _revoked(f"device {member}/{device}")
            await tx.insert_challenge(row.id, challenge, expires)
        return {"challenge": b64e(challenge), "expires_ms": expires}

    async def token(
        self, channel_name: str, member: str, device: str, challenge_b64: str, signature_b64: str
    ) -> dict[str, Any]:
        now = self.now_ms()
        try:
            challenge = b64d(challenge_b64, field="challenge", max_bytes=CHALLENGE_BYTES)
            signature = b64d(signature_b64, field="signature", max_bytes=_MAX_SIGNATURE)
        except ProtocolError as exc:
            raise from_protocol(exc) from exc
        address = DeviceAddress(member, device)
        token = b64e(self.rng(TOKEN_BYTES))
        expires = now + self.settings.token_ttl_s * 1000
        refused: RelayError | None = None
        async with self.store.write() as tx:
            channel, row = await self._known_device(tx, channel_name, member, device)
            # Consumed before the signature is checked: a wrong guess burns the challenge.
            challenge_expires = await tx.consume_challenge(row.id, challenge)
            if challenge_expires is None or now >= challenge_expires:
                raise RelayError(
                    RelayErrorCode.CHALLENGE_INVALID, "unknown, expired or already used challenge"
                )
            if not row.active:
                refused = _revoked(f"device {address}")
            else:
                try:
                    verify_auth_proof(row.signing_key, signature, self.identity.relay_id, challenge, address)
                except ProtocolError:
                    refused = RelayError(RelayErrorCode.BAD_SIGNATURE, "auth signature does not verify")
            if refused is not None:
                await tx.lock_log()
                await tx.append_audit(
                    now,
                    audit.auth_refused(
                        at_ms=now, channel=channel.name, address=address, reason=refused.code.value
                    ),
                )
            else:
                await tx.insert_token(token_hash(token), row.id, now, expires)
        if refused is not None:
            raise refused
        return {"token": token, "expires_ms": expires}

    async def authenticate(self, token: str) -> Principal:
        """The device behind a bearer token; raises unauthorized, token_expired or device_revoked."""
        if not 1 <= len(token) <= 128:
            raise RelayError(RelayErrorCode.UNAUTHORIZED, "token is not valid")
        async with self.store.read() as tx:
            row = await tx.get_token(token_hash(token))
        if row is None:
            raise RelayError(RelayErrorCode.UNAUTHORIZED, "token is not valid")
        if self.now_ms() >= row.expires_ms:
            raise RelayError(RelayErrorCode.TOKEN_EXPIRED, "token has expired: log in again")
        if not row.device.active:
            raise _revoked("this device")
        return Principal(device=row.device, channel=row.channel)

    async def check_active(self, who: Principal) -> None:
        """Raise device_revoked if the device or its member was revoked since it authenticated."""
        async with self.store.read() as tx:
            row = await tx.get_device_by_id(who.device.id)
        if row is None or not row.active:
            raise _revoked("this device")

    # --- channel: directory and keys ---------------------------------------------------------------

    async def directory(self, who: Principal, channel_name: str) -> dict[str, Any]:
        require_channel(who, channel_name)
        now = self.now_ms()
        async with self.store.read() as tx:
            channel = await self._channel(tx, channel_name)
            members = await tx.list_members(channel.id)
            devices = await tx.list_devices(channel.id)
            prekeys = await tx.list_prekeys(
                [d.id for d in devices if d.active], now, self.settings.clock_skew_s * 1000
            )
        by_device: dict[int, list[dict[str, str]]] = {}
        for p in prekeys:
            by_device.setdefault(p.device_id, []).append({"body": b64e(p.body), "sig": b64e(p.sig)})
        out_members = []
        for m in members:
            entry = self._member_json(m)
            entry["devices"] = [
                {**self._device_json(d), "prekeys": by_device.get(d.id, [])}
                for d in devices
                if d.member_id == m.id
            ]
            del entry["created_at_ms"], entry["revoked_at_ms"]
            out_members.append(entry)
        return {
            "channel": channel.name,
            "suite": channel.suite,
            "members": out_members,
            "version": channel.directory_version,
        }

    async def publish_prekeys(
        self, who: Principal, channel_name: str, raw: Sequence[object]
    ) -> dict[str, Any]:
        require_channel(who, channel_name)
        require_role(who, SENDING_ROLES, "publish prekeys")
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            checked = self._parse_prekeys(raw, who.address, channel.suite, who.device.signing_key, now)
            if not checked:
                return {"accepted": 0}
            await tx.lock_log()
            accepted = await tx.insert_prekeys(self._prekey_rows(who.device.id, checked), now)
            targets: list[int] = []
            if accepted:
                await tx.append_audit(
                    now,
                    audit.prekeys_published(
                        at_ms=now, channel=channel.name, address=who.address, prekeys=checked
                    ),
                )
                targets = await self._announce(
                    tx, channel, "prekeys", who.device.member, who.device.name, now, skip_device=who.device.id
                )
        await self.notifier.publish(targets)
        return {"accepted": accepted}

    async def revoke_own_device(
        self, who: Principal, channel_name: str, member: str, device: str
    ) -> dict[str, Any]:
        require_channel(who, channel_name)
        require_own_member(who, member)
        return await self.revoke_device(channel_name, member, device, by=str(who.address))

    # --- channel: sending --------------------------------------------------------------------------

    async def send_envelope(
        self, who: Principal, channel_name: str, obj: object, *, purpose: SendPurpose | None = None
    ) -> SendResult:
        """Check and store an envelope; see docs/API.md "Sending" for the order of the checks.

        ``purpose`` marks a link test or a resend, whose recipients follow their own rules (ADR 0007).
        """
        require_channel(who, channel_name)
        try:
            envelope = Envelope.from_json(obj, limits=self.limits)
        except ProtocolError as exc:
            raise from_protocol(exc) from exc
        header = envelope.header
        if header.channel != channel_name:
            raise RelayError(RelayErrorCode.WRONG_CHANNEL, "header.channel is not the channel in the path")
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            if header.suite.value != channel.suite:
                raise RelayError(RelayErrorCode.UNSUPPORTED_SUITE, f"this channel uses suite {channel.suite}")
            if header.sender != who.address:
                raise RelayError(
                    RelayErrorCode.SENDER_MISMATCH, "header.sender is not the authenticated device"
                )
            repeat = await self._repeated_send(tx, channel, envelope)
            if repeat is not None:
                return repeat
            require_role(who, SENDING_ROLES, "send envelopes")
            devices = await tx.list_devices(channel.id)
            active = {DeviceAddress(d.member, d.name): d for d in devices if d.active}
            listed = {r.address for r in header.recipients}
            unknown = sorted(str(a) for a in listed if a not in active or active[a].role not in SENDING_ROLES)
            members = {a.member for a in listed} | {who.address.member}
            missing = sorted(
                str(a)
                for a, d in active.items()
                if a.member in members and a != who.address and a not in listed and d.role in SENDING_ROLES
            )
            if purpose is not None and not unknown:
                await self.semantics.check_recipients(tx, channel, who, header, active, purpose)
                missing = []
            if unknown or missing:
                raise RelayError(
                    RelayErrorCode.UNKNOWN_RECIPIENT,
                    "the recipients are not the channel's current devices: refresh the directory and re-seal",
                    details={"unknown": unknown, "missing": missing},
                )
            wanted = [(active[r.address].id, r.prekey_id) for r in header.recipients]
            found = {(p.device_id, p.prekey_id): p for p in await tx.get_prekeys(wanted)}
            skew = self.settings.clock_skew_s * 1000
            stale = sorted(
                f"{r.address}:{r.prekey_id}"
                for r, key in zip(header.recipients, wanted, strict=True)
                if key not in found
                or not (found[key].not_before_ms <= now + skew and now < found[key].expires_ms)
            )
            if stale:
                raise RelayError(
                    RelayErrorCode.EXPIRED_PREKEY,
                    "a recipient's prekey is unknown, expired or not yet valid: refresh the directory",
                    details={"prekeys": stale},
                )
            try:
                envelope.verify_signature(who.device.signing_key)
            except ProtocolError as exc:
                raise RelayError(RelayErrorCode.BAD_SIGNATURE, "envelope signature does not verify") from exc
            await tx.lock_log()
            # On PostgreSQL a concurrent retry of the same envelope may have committed while this one
            # was checking; holding the log lock, every earlier appender has committed, so look again.
            repeat = await self._repeated_send(tx, channel, envelope)
            if repeat is not None:
                return repeat
            log_index = await tx.append_audit(now, audit.envelope_accepted(at_ms=now, envelope=envelope))
            receipt = issue_relay_accepted(
                self.identity.signing_key,
                channel=channel.name,
                message_id=header.message_id,
                envelope_hash=envelope.hash,
                log_index=log_index,
                at_ms=now,
            )
            envelope_id = await tx.insert_envelope(
                channel_id=channel.id,
                message_id=header.message_id,
                sender_device_id=who.device.id,
                precedence=header.precedence.value,
                exercise=header.exercise,
                created_at_ms=header.created_at_ms,
                accepted_at_ms=now,
                envelope_hash=envelope.hash,
                wire=envelope.to_bytes(),
                log_index=log_index,
                receipt_body=receipt.body,
                receipt_sig=receipt.signature,
            )
            targets = [active[r.address].id for r in header.recipients]
            await tx.queue_items(
                [
                    NewItem(
                        device_id=d,
                        kind=ItemKind.ENVELOPE,
                        rank=header.precedence.rank,
                        at_ms=now,
                        envelope_id=envelope_id,
                    )
                    for d in targets
                ]
            )
            woken = await self.semantics.on_envelope_accepted(
                tx, channel, who, header, envelope_id, now, purpose
            )
        await self.notifier.publish([*targets, *woken])
        self.metrics.envelope_accepted(header.precedence.value)
        return SendResult(receipt, log_index, duplicate=False)

    @staticmethod
    async def _repeated_send(tx: Tx, channel: ChannelRow, envelope: Envelope) -> SendResult | None:
        """The original answer if this message id was accepted before; conflict if for another envelope."""
        message_id = envelope.header.message_id
        existing = await tx.get_envelope(channel.id, message_id)
        if existing is None:
            return None
        if not crypto.constant_time_equal(existing.envelope_hash, envelope.hash):
            raise conflict(f"message id {message_id} was already used for another envelope")
        receipt = Receipt.parse(existing.receipt_body, existing.receipt_sig)
        return SendResult(receipt, existing.log_index, duplicate=True)

    async def _readable_envelope(
        self, tx: Tx, who: Principal, channel: ChannelRow, message_id: str
    ) -> tuple[EnvelopeRow, DeviceRow | None]:
        """The envelope if ``who`` is a device of its sender member or one of its recipients."""
        require_role(who, SENDING_ROLES, "read envelopes")
        row = await tx.get_envelope(channel.id, message_id)
        if row is not None:
            sender = await tx.get_device_by_id(row.sender_device_id)
            if (sender is not None and sender.member_id == who.device.member_id) or await tx.is_recipient(
                row.id, who.device.id
            ):
                return row, sender
        raise not_found(f"no message {message_id} for this device")

    async def get_envelope(self, who: Principal, channel_name: str, message_id: str) -> dict[str, Any]:
        require_channel(who, channel_name)
        async with self.store.read() as tx:
            channel = await self._channel(tx, channel_name)
            row, _ = await self._readable_envelope(tx, who, channel, message_id)
        return {
            "envelope": json.loads(row.wire),
            "accepted": {"body": b64e(row.receipt_body), "sig": b64e(row.receipt_sig)},
        }

    async def message_receipts(self, who: Principal, channel_name: str, message_id: str) -> dict[str, Any]:
        require_channel(who, channel_name)
        async with self.store.read() as tx:
            channel = await self._channel(tx, channel_name)
            row, sender = await self._readable_envelope(tx, who, channel, message_id)
            if sender is None or sender.member_id != who.device.member_id:
                raise not_found(f"no message {message_id} sent by this member")
            receipts = await tx.list_receipts(row.id)
        return {
            "receipts": [{"body": b64e(row.receipt_body), "sig": b64e(row.receipt_sig)}]
            + [{"body": b64e(r.body), "sig": b64e(r.sig)} for r in receipts]
        }

    # --- channel: receipts -------------------------------------------------------------------------

    async def post_receipt(self, who: Principal, channel_name: str, obj: object) -> ReceiptResult:
        require_channel(who, channel_name)
        try:
            receipt = Receipt.from_json(obj, limits=self.limits)
        except ProtocolError as exc:
            raise from_protocol(exc) from exc
        if receipt.kind is ReceiptKind.RELAY_ACCEPTED:
            raise malformed("devices issue delivered, acknowledged or rejected receipts")
        if receipt.channel != channel_name:
            raise RelayError(RelayErrorCode.WRONG_CHANNEL, "receipt.channel is not the channel in the path")
        if receipt.issuer != who.address:
            raise RelayError(RelayErrorCode.SENDER_MISMATCH, "receipt.issuer is not the authenticated device")
        require_role(who, SENDING_ROLES, "issue receipts")
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            row = await tx.get_envelope(channel.id, receipt.message_id)
            if row is None or not crypto.constant_time_equal(row.envelope_hash, receipt.envelope_hash):
                raise not_found(f"no message {receipt.message_id} with this envelope hash")
            if not await tx.is_recipient(row.id, who.device.id):
                raise forbidden("this device is not a recipient of the message")
            try:
                receipt.verify(who.device.signing_key)
            except ProtocolError as exc:
                raise RelayError(RelayErrorCode.BAD_SIGNATURE, "receipt signature does not verify") from exc
            repeat = await self._repeated_receipt(tx, row.id, who.device.id, receipt)
            if repeat is not None:
                return repeat
            await tx.lock_log()
            repeat = await self._repeated_receipt(tx, row.id, who.device.id, receipt)  # a concurrent retry
            if repeat is not None:
                return repeat
            log_index = await tx.append_audit(now, audit.receipt_logged(at_ms=now, receipt=receipt))
            receipt_id = await tx.insert_receipt(
                channel_id=channel.id,
                envelope_id=row.id,
                kind=receipt.kind.value,
                issuer_device_id=who.device.id,
                receipt_hash=receipt.hash,
                body=receipt.body,
                sig=receipt.signature,
                at_ms=now,
                log_index=log_index,
            )
            sender = await tx.get_device_by_id(row.sender_device_id)
            targets = [
                d.id
                for d in await tx.list_devices(channel.id)
                if d.active and sender is not None and d.member_id == sender.member_id
            ]
            rank = Precedence(row.precedence).rank
            delivered = (
                await tx.get_receipt(row.id, who.device.id, ReceiptKind.DELIVERED.value)
                if receipt.kind is ReceiptKind.ACKNOWLEDGED
                else None
            )
            await tx.queue_items(
                [
                    NewItem(device_id=d, kind=ItemKind.RECEIPT, rank=rank, at_ms=now, receipt_id=receipt_id)
                    for d in targets
                ]
            )
            await self.semantics.on_receipt(tx, row, who, receipt, now)
        await self.notifier.publish(targets)
        self.metrics.receipt_logged(
            receipt.kind.value,
            row.precedence,
            at_ms=now,
            accepted_at_ms=row.accepted_at_ms,
            delivered_at_ms=None if delivered is None else delivered.received_at_ms,
        )
        return ReceiptResult(log_index, duplicate=False)

    @staticmethod
    async def _repeated_receipt(
        tx: Tx, envelope_id: int, device_id: int, receipt: Receipt
    ) -> ReceiptResult | None:
        same = await tx.get_receipt_by_hash(receipt.hash)
        if same is not None:
            return ReceiptResult(same.log_index, duplicate=True)
        if await tx.get_receipt(envelope_id, device_id, receipt.kind.value) is not None:
            raise conflict(f"this device already issued a {receipt.kind.value} receipt for the message")
        return None

    # --- channel: inbox ----------------------------------------------------------------------------

    @staticmethod
    def item_json(item: ItemRow) -> dict[str, Any]:
        out: dict[str, Any] = {"id": item.id, "kind": item.kind.value, "at_ms": item.at_ms}
        if item.kind is ItemKind.ENVELOPE:
            assert item.envelope_wire is not None and item.accepted_body is not None
            assert item.accepted_sig is not None
            out["envelope"] = json.loads(item.envelope_wire)
            out["accepted"] = {"body": b64e(item.accepted_body), "sig": b64e(item.accepted_sig)}
        elif item.kind is ItemKind.RECEIPT:
            assert item.receipt_body is not None and item.receipt_sig is not None
            out["receipt"] = {"body": b64e(item.receipt_body), "sig": b64e(item.receipt_sig)}
        else:
            assert item.payload is not None
            out.update(json.loads(item.payload))
        return out

    async def inbox(self, who: Principal, channel_name: str, limit: int) -> list[dict[str, Any]]:
        require_channel(who, channel_name)
        if not 1 <= limit <= self.settings.max_inbox_page:
            raise malformed(f"limit must be between 1 and {self.settings.max_inbox_page}")
        async with self.store.read() as tx:
            items = await tx.pending_items(who.device.id, limit)
        return [self.item_json(i) for i in items]

    async def pending_for_socket(self, who: Principal, limit: int, exclude: Iterable[int]) -> list[ItemRow]:
        """Pending items not yet sent on this socket; raises device_revoked once the device is."""
        async with self.store.read() as tx:
            row = await tx.get_device_by_id(who.device.id)
            if row is None or not row.active:
                raise _revoked("this device")
            return await tx.pending_items(who.device.id, limit, exclude)

    async def still_pending(self, who: Principal, ids: Iterable[int]) -> set[int]:
        async with self.store.read() as tx:
            return await tx.still_pending(who.device.id, ids)

    def check_ack_ids(self, ids: object) -> list[int]:
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in ids
        ):
            raise malformed("ids: expected a list of positive integers")
        if len(ids) > self.settings.max_ack_ids:
            raise RelayError(RelayErrorCode.TOO_LARGE, f"at most {self.settings.max_ack_ids} ids at once")
        return ids

    async def ack(self, who: Principal, channel_name: str, ids: object) -> int:
        require_channel(who, channel_name)
        checked = self.check_ack_ids(ids)
        if not checked:
            return 0
        async with self.store.write() as tx:
            return await tx.ack_items(who.device.id, checked)

    # --- audit -------------------------------------------------------------------------------------

    async def latest_tree_head(self) -> dict[str, Any]:
        async with self.store.read() as tx:
            row = await tx.latest_tree_head()
        if row is None:
            raise RelayError(RelayErrorCode.UNAVAILABLE, "no tree head has been signed yet", status=503)
        return {
            "tree_head": {"body": b64e(row.body), "sig": b64e(row.sig)},
            "size": row.size,
            "root": b64e(row.root),
            "at_ms": row.at_ms,
        }

    async def audit_entries(self, start: int, limit: int) -> dict[str, Any]:
        if start < 0 or not 1 <= limit <= 1000:
            raise malformed("start must be >= 0 and limit between 1 and 1000")
        async with self.store.read() as tx:
            rows = await tx.audit_rows(start, limit)
            size = await tx.log_size()
        return {
            "size": size,
            "entries": [
                {"index": r.index, "at_ms": r.at_ms, "entry": b64e(r.entry), "leaf_hash": b64e(r.leaf_hash)}
                for r in rows
            ],
        }
