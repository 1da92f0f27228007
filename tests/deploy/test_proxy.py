"""The shipped nginx config, run for real in front of two relay replicas: TLS, WebSockets, request
ids, /metrics kept inside, invite codes kept out of its log, and a dead replica skipped.

Only the upstream addresses, the certificate, the ports and the log path are changed to run it here
(``tests/deploy/support.py``). Skipped where nginx is not installed (Debian: ``nginx-light``).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.deploy.support import nginx_binary, nginx_config_for_test
from tests.relay.support import free_port, message_id, setup_channel
from tests.scale.support import add_replica

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class Proxy:
    def __init__(self, url: str, access_log: Path, cert: Path) -> None:
        self.url = url
        self.access_log = access_log
        self.cert = cert
        self.ssl = ssl.create_default_context(cafile=str(cert))

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl, timeout=10, **kw)

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]


@pytest.fixture
def proxied(relay_factory, tmp_path) -> Iterator[tuple[Proxy, list[Any]]]:
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    a = relay_factory("postgres")
    b = add_replica(a, "b").start()
    https_port = free_port()
    conf, access_log = nginx_config_for_test(tmp_path, [a.port, b.port], https_port, free_port())
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    proxy = Proxy(f"https://127.0.0.1:{https_port}", access_log, tmp_path / "fullchain.pem")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with proxy.client() as c:
                    if c.get("/healthz").status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "nginx exited"
            assert time.monotonic() < deadline, (tmp_path / "error.log").read_text()
            time.sleep(0.1)
        yield proxy, [a, b]
    finally:
        proc.terminate()
        proc.wait(10)
        b.stop()


def test_the_proxy_carries_https_and_desk_sockets_and_keeps_metrics_and_codes_inside(proxied):
    proxy, (a, _b) = proxied
    channel, invites = a.create_channel({"delhi": "principal", "islamabad": "principal"})
    with proxy.client() as c:
        r = c.get("/healthz", headers={"X-Request-Id": "proxy-test-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "proxy-test-1"
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert c.get("/metrics").status_code == 404  # the relay would answer a loopback peer
        code = invites["delhi"]["code"]
        assert c.get(f"/v1/invites/{code}").status_code == 200
    with httpx.Client(base_url=a.url) as direct:
        assert direct.get("/metrics").status_code == 200

    _, desks = setup_channel(a, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    socket_url = proxy.url.replace("https://", "wss://") + isb.path("/socket")
    with ws_connect(socket_url, ssl=proxy.ssl, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "token": isb.token}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "ready"}
        envelope, _ = delhi.send_text(["islamabad"], "through the proxy")
        frame = json.loads(ws.recv(timeout=10))
        assert frame["type"] == "item" and message_id(frame["item"]) == envelope.header.message_id

    time.sleep(0.2)  # nginx writes its log line when a request ends
    lines = proxy.log_lines()
    assert any(ln["request_id"] == "proxy-test-1" and ln["path"] == "/healthz" for ln in lines)
    assert any(ln["path"] == "/v1/invites/..." for ln in lines)
    assert code not in proxy.access_log.read_text()
    assert isb.token not in proxy.access_log.read_text()
    assert all(ln["request_id"] for ln in lines)
    del channel


def test_the_proxy_skips_a_dead_replica(proxied):
    proxy, (a, b) = proxied
    a.kill()
    with proxy.client() as c:
        for _ in range(6):  # round robin would send every other request to the dead one
            r = c.get("/readyz")
            assert r.status_code == 200, r.text
    assert b.proc is not None
