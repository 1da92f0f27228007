"""Reading the deployment files in ``deploy/`` and what they must agree with: settings, routes, CLI."""

from __future__ import annotations

import datetime
import ipaddress
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from hotline.relay.settings import RelaySettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SETTINGS = frozenset(RelaySettings.model_fields)


def setting_of(env_name: str) -> str | None:
    """The RelaySettings field a ``HOTLINE_*`` variable sets, or None if it sets none."""
    if not env_name.startswith("HOTLINE_"):
        return None
    field = env_name.removeprefix("HOTLINE_").lower()
    return field if field in SETTINGS else None


def served_paths(paths: list[str]) -> set[str]:
    """Those of ``paths`` the relay app has a route for (asked over ASGI, without starting the app)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette would rather have httpx2; httpx serves here
        from starlette.testclient import TestClient

    from hotline.relay.app import create_app

    app = create_app(RelaySettings(data_dir=Path("/nonexistent"), serve_web_client=False))
    client = TestClient(app, raise_server_exceptions=False)  # no `with`: the lifespan does not run
    served = set()
    for path in paths:
        r = client.get(path)
        if r.status_code != 404:
            served.add(path)
    return served


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a setting outside any section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 and localhost: (fullchain.pem, privkey.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    chain, private = directory / "fullchain.pem", directory / "privkey.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    private.chmod(0o600)
    return chain, private


def nginx_config_for_test(
    work: Path, upstreams: list[int], https_port: int, http_port: int
) -> tuple[Path, Path]:
    """deploy/nginx/hotline.conf made runnable here: upstreams on loopback ports, the test's certificate,
    its own ports, logs and temp dirs. Returns (nginx.conf, access log). Nothing else is changed."""
    chain, key = self_signed_certificate(work)
    conf = (DEPLOY / "nginx" / "hotline.conf").read_text()
    servers = re.findall(r"^\s*server\s+(relay-[a-z]+):8000\b.*$", conf, flags=re.M)
    assert len(servers) == len(upstreams), servers
    for name, port in zip(servers, upstreams, strict=True):
        conf = conf.replace(f"server {name}:8000", f"server 127.0.0.1:{port}")
    access_log = work / "access.log"
    conf = conf.replace("/etc/nginx/tls/fullchain.pem", str(chain)).replace(
        "/etc/nginx/tls/privkey.pem", str(key)
    )
    conf = conf.replace("access_log /dev/stdout", f"access_log {access_log}")
    conf = conf.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    (work / "hotline.conf").write_text(conf)
    temp = {name: work / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for directory in temp.values():
        directory.mkdir()
    main = work / "nginx.conf"
    main.write_text(
        "\n".join(
            [
                "user root;" if _root() else "",
                "worker_processes 1;",
                f"pid {work / 'nginx.pid'};",
                f"error_log {work / 'error.log'} info;",
                "daemon off;",
                "events { worker_connections 256; }",
                "http {",
                f"  client_body_temp_path {temp['body']};",
                f"  proxy_temp_path {temp['proxy']};",
                f"  fastcgi_temp_path {temp['fastcgi']};",
                f"  uwsgi_temp_path {temp['uwsgi']};",
                f"  scgi_temp_path {temp['scgi']};",
                f"  include {work / 'hotline.conf'};",
                "}",
            ]
        )
    )
    return main, access_log


def _root() -> bool:
    import os

    return os.geteuid() == 0
