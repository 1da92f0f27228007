"""The floor of our stack: a bare FastAPI WebSocket forwarder — no crypto, no storage, no checks.

It has the relay's shape and nothing else: a client holds a WebSocket at ``/ws/{name}``; ``POST
/send/{to}`` hands the request body to ``to``'s socket as one text frame and answers ``{"accepted":
true}`` (like ``POST /envelopes`` answering with a receipt); a text frame a client sends on its socket
(``{"to": name, …}``) is passed to ``name``'s socket (like a delivered receipt flowing back). It runs
under the same uvicorn settings as ``hotline serve``. The benchmark drives it with the same load
generator as the relay and prints each of our figures as a ratio to it.

Run it alone with ``python -m hotline.bench.forwarder --port 0``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from hotline.bench.procs import LOOPBACK


def create_forwarder_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    sockets: dict[str, WebSocket] = {}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        return JSONResponse({"status": "ready"})

    @app.post("/send/{to}")
    async def send(to: str, request: Request) -> JSONResponse:
        body = await request.body()
        target = sockets.get(to)
        if target is not None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await target.send_text(body.decode("utf-8"))
        return JSONResponse({"accepted": True, "delivered": target is not None}, status_code=201)

    @app.websocket("/ws/{name}")
    async def ws(websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        sockets[name] = websocket
        try:
            while True:
                text = await websocket.receive_text()
                target = sockets.get(str(json.loads(text).get("to")))
                if target is not None:
                    await target.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError, ValueError):
            pass
        finally:
            if sockets.get(name) is websocket:
                del sockets[name]

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, args.port))
    config = uvicorn.Config(
        create_forwarder_app(),
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        ws_max_size=64 * 1024,
        ws_per_message_deflate=False,
    )
    print(f"forwarder listening on http://{LOOPBACK}:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
