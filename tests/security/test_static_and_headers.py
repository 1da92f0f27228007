"""Static files and response headers: no path traversal out of the web root, and the security headers
on every kind of answer (API, errors, refusals before routing, the web client's files)."""

from __future__ import annotations

import socket

import pytest

from tests.relay.support import setup_channel

REQUIRED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}

TRAVERSALS = [
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/js/../../../../etc/passwd",
    "/js/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/js/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/js/%252e%252e/%252e%252e/etc/passwd",
    "/js/....//....//etc/passwd",
    "/js/..\\..\\..\\etc\\passwd",
    "/js/%00../../etc/passwd",
    "//etc/passwd",
    "/js//etc/passwd",
    "/js/.hidden",
    "/.git/config",
    "/js/../../pyproject.toml",
    "/js/protocol/../../../hotline/relay/settings.py",
]


@pytest.fixture(scope="module")
def relay(relay_factory):
    return relay_factory("sqlite", max_request_bytes=2048)


def raw_get(relay, target: str) -> tuple[int, bytes]:
    """GET with the target sent byte for byte (no client-side normalisation of ``..``)."""
    port = int(relay.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def has_web_client(relay) -> bool:
    with relay.client() as c:
        r = c.get("/")
    return r.status_code == 200 and r.headers.get("content-type", "").startswith("text/html")


@pytest.mark.parametrize("target", TRAVERSALS)
def test_no_path_leaves_the_web_root(relay, target):
    status, data = raw_get(relay, target)
    assert status in (400, 404), (target, data[:200])
    for secret in (b"root:", b"[tool.", b"RelaySettings", b"[core]"):
        assert secret not in data, target


def check_headers(response) -> None:
    for name, value in REQUIRED.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers)
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, csp
    assert "server" not in {k.lower() for k in response.headers}, "the server banner is hidden"


def test_security_headers_on_every_kind_of_answer(relay):
    _, desks = setup_channel(relay, {"delhi": "principal"})
    with relay.client() as c:
        answers = [
            c.get("/v1/relay"),
            c.get("/v1/no-such-thing"),
            c.delete("/v1/relay"),
            c.get("/v1/channels/x/directory"),
            c.post("/v1/enroll", content=b"x" * 4096, headers={"content-type": "application/json"}),
            c.get("/openapi.json"),
        ]
    answers.append(desks["delhi"].get("/inbox"))
    assert [r.status_code for r in answers] == [200, 404, 405, 401, 413, 200, 200]
    for r in answers:
        check_headers(r)
        if r.request.url.path.startswith("/v1/"):
            assert r.headers.get("cache-control") == "no-store", r.request.url


def test_the_web_client_is_served_with_a_strict_policy(relay):
    if not has_web_client(relay):
        pytest.skip("this relay serves no web client at /")
    with relay.client() as c:
        index = c.get("/")
        check_headers(index)
        csp = index.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
        assert c.get("/js/").status_code == 404, "directories are never listed"
