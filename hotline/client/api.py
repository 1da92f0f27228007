"""A thin typed wrapper over the relay's REST API (docs/API.md); no protocol logic lives here.

Every relay error becomes :class:`RelayError` with the relay's stable code. Connection failures are
retried with backoff for requests that are safe to repeat (all of ours are: sending is idempotent by
message id, receipts by hash, acks by item id); 429 answers wait for ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from hotline.client.errors import RelayError, RelayUnreachableError

DEFAULT_TIMEOUT_S = 10.0


class RelayAPI:
    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        retries: int = 4,
        backoff_s: float = 0.25,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT_S, verify=verify)
        self._retries = retries
        self._backoff_s = backoff_s
        self.token: str | None = None

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        auth: str | None = "device",
        admin_token: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        headers = {}
        if admin_token is not None:
            headers["Authorization"] = f"Bearer {admin_token}"
        elif auth == "device" and self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        content = None
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, url, content=content, headers=headers, params=params
                )
            except (httpx.TransportError, OSError) as exc:
                if attempt >= self._retries:
                    raise RelayUnreachableError(
                        f"cannot reach the relay at {self.base_url}: {type(exc).__name__}"
                    ) from exc
                await asyncio.sleep(self._backoff_s * 2**attempt)
                attempt += 1
                continue
            if response.status_code == 429 and attempt < self._retries:
                await asyncio.sleep(_retry_after(response, self._backoff_s * 2**attempt))
                attempt += 1
                continue
            if response.status_code >= 500 and response.status_code != 503 and attempt < self._retries:
                await asyncio.sleep(self._backoff_s * 2**attempt)
                attempt += 1
                continue
            if response.is_success and not _is_json(response):
                # Damaged on the way (a broken proxy or link): as unreachable as a dropped connection.
                if attempt >= self._retries:
                    raise RelayUnreachableError(f"the relay at {self.base_url} answered with damaged JSON")
                await asyncio.sleep(self._backoff_s * 2**attempt)
                attempt += 1
                continue
            return _decode(response)


def _is_json(response: httpx.Response) -> bool:
    if not response.content:
        return True
    try:
        response.json()
    except ValueError:
        return False
    return True


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(float(response.headers.get("Retry-After", default)), 30.0)
    except ValueError:
        return default


def _decode(response: httpx.Response) -> Any:
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    if response.is_success:
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        raise RelayError(
            str(error.get("code", "unknown")),
            str(error.get("message", "the relay refused the request")),
            status=response.status_code,
            details=error.get("details") if isinstance(error.get("details"), dict) else None,
        )
    raise RelayError(
        "unexpected_response",
        f"the relay answered HTTP {response.status_code} without an error body",
        status=response.status_code,
    )
