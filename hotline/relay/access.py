"""Access rules: who may do what in a channel. Plain functions; each says what it raises.

The table they implement is in docs/API.md ("Roles"): principals, facilitators and controllers send,
receive and issue receipts; operators read the directory and audit metadata and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotline.protocol.model import DeviceAddress
from hotline.relay.errors import RelayError, RelayErrorCode, forbidden
from hotline.relay.store import DeviceRow, Role

SENDING_ROLES = frozenset({Role.PRINCIPAL, Role.FACILITATOR, Role.CONTROLLER})
"""Roles that send envelopes, can be recipients, issue receipts and publish prekeys."""


@dataclass(frozen=True)
class Principal:
    """An authenticated device: its token was valid and it and its member are active."""

    device: DeviceRow
    channel: str

    @property
    def address(self) -> DeviceAddress:
        return DeviceAddress(self.device.member, self.device.name)

    @property
    def role(self) -> Role:
        return self.device.role


def require_channel(who: Principal, channel: str) -> None:
    """Raise ``not_a_member`` unless the token was issued for ``channel``."""
    if who.channel != channel:
        raise RelayError(RelayErrorCode.NOT_A_MEMBER, f"this device is not a member of channel {channel}")


def require_role(who: Principal, roles: frozenset[Role], action: str) -> None:
    """Raise ``forbidden`` unless the device's member has one of ``roles``."""
    if who.role not in roles:
        raise forbidden(f"a {who.role.value} may not {action}")


def require_own_member(who: Principal, member: str) -> None:
    """Raise ``forbidden`` unless ``member`` is the device's own member."""
    if who.device.member != member:
        raise forbidden("a device may only revoke devices of its own member")
