"""AdminClient: channel, member, invite and revocation management with the relay's admin token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hotline.client.api import RelayAPI
from hotline.client.errors import ClientError


def read_admin_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ClientError(
            f"cannot read the admin token file {path}: {exc.strerror}", code="admin_token"
        ) from exc
    if not token:
        raise ClientError(f"the admin token file {path} is empty", code="admin_token")
    return token


class AdminClient:
    def __init__(
        self,
        relay_url: str,
        token: str,
        *,
        http: httpx.AsyncClient | None = None,
        verify_tls: bool | str = True,
    ) -> None:
        self.api = RelayAPI(relay_url, http=http, verify=verify_tls)
        self._token = token

    async def aclose(self) -> None:
        await self.api.aclose()

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _req(self, method: str, path: str, body: Any = None) -> Any:
        return await self.api.request(method, path, json_body=body, admin_token=self._token)

    async def create_channel(
        self,
        channel: str,
        members: dict[str, str],
        *,
        title: str | None = None,
        suite: str = "hotline-c1",
        invite_ttl_s: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "channel": channel,
            "title": title or channel,
            "suite": suite,
            "members": [{"member": m, "role": r} for m, r in members.items()],
        }
        if invite_ttl_s is not None:
            body["invite_ttl_s"] = invite_ttl_s
        result: dict[str, Any] = await self._req("POST", "/v1/admin/channels", body)
        return result

    async def channels(self) -> list[dict[str, Any]]:
        result = await self._req("GET", "/v1/admin/channels")
        return list(result["channels"])

    async def channel(self, channel: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._req("GET", f"/v1/admin/channels/{channel}")
        return result

    async def add_member(self, channel: str, member: str, role: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._req(
            "POST", f"/v1/admin/channels/{channel}/members", {"member": member, "role": role}
        )
        return result

    async def invite(self, channel: str, member: str, ttl_s: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"member": member}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        result: dict[str, Any] = await self._req("POST", f"/v1/admin/channels/{channel}/invites", body)
        return result

    async def revoke_member(self, channel: str, member: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._req(
            "POST", f"/v1/admin/channels/{channel}/members/{member}/revoke"
        )
        return result

    async def revoke_device(self, channel: str, member: str, device: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._req(
            "POST", f"/v1/admin/channels/{channel}/devices/{member}/{device}/revoke"
        )
        return result
