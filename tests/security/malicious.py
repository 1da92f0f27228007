"""A compromised relay, as a test double: an httpx transport that forwards to a real relay and lets a
test rewrite any JSON answer on the way back (the directory, the inbox, …).

It stands for a relay operator who holds the relay's own signing key (``relay_key``) and can therefore
sign relay receipts for anything — everything except the devices' keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

Rewrite = Callable[[httpx.Request, Any], Any]


class RewritingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.rewrites: list[tuple[str, Rewrite]] = []  # (path suffix, rewrite)

    def on(self, path_suffix: str, rewrite: Rewrite) -> None:
        self.rewrites.append((path_suffix, rewrite))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        matching = [rw for suffix, rw in self.rewrites if request.url.path.endswith(suffix)]
        if not matching or response.status_code >= 300:
            return response
        await response.aread()
        body = json.loads(response.content)
        for rewrite in matching:
            body = rewrite(request, body)
        content = json.dumps(body).encode()
        headers = [
            (k, v)
            for k, v in response.headers.items()
            if k.lower() not in {"content-length", "content-encoding"}
        ]
        return httpx.Response(response.status_code, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()
