"""First start and operations: key files, the relay id, schema upgrades, the per-address rate limit."""

from __future__ import annotations

import stat
import subprocess

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.relay.support import HOTLINE, REPO, error_code


def test_first_start_creates_the_relay_key_and_admin_token_0600(relay_factory):
    relay = relay_factory("sqlite", start=False)
    assert not relay.data_dir.exists()
    relay.start()
    for name in ("relay.key", "admin.token"):
        mode = stat.S_IMODE((relay.data_dir / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert stat.S_IMODE(relay.data_dir.stat().st_mode) == 0o700
    token = relay.admin_token
    assert len(token) >= 43
    info = relay.info()
    assert info["relay_id"].startswith("hotline-relay:")
    log = relay.log_path.read_text()
    assert str(relay.data_dir / "admin.token") in log
    assert token not in log
    # A restart keeps the identity and the token.
    relay.stop()
    relay._info = None
    relay.start()
    assert relay.info() == info and relay.admin_token == token
    assert relay.admin.get("/v1/admin/channels").status_code == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_db_upgrade_runs_alone_and_concurrently(tmp_path, pg_databases, backend):
    args = [HOTLINE, "db", "upgrade", "--data-dir", str(tmp_path / "data")]
    if backend == "postgres":
        args += ["--db", pg_databases.create()]
    procs = [
        subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out.decode()
        assert b"up to date" in out
    again = subprocess.run(args, cwd=REPO, capture_output=True, timeout=60)
    assert again.returncode == 0


def test_an_address_over_its_rate_gets_429(relay_factory):
    relay = relay_factory("sqlite", address_rate_per_s=1, address_rate_burst=20)
    statuses = []
    with httpx.Client(base_url=relay.url) as c:
        for _ in range(30):
            statuses.append(c.get("/v1/relay"))
    limited = [r for r in statuses if r.status_code == 429]
    assert limited
    assert error_code(limited[0]) == "rate_limited" and int(limited[0].headers["retry-after"]) >= 1


def test_the_relay_serves_https_with_a_certificate(relay_factory, tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    relay = relay_factory("sqlite", start=False, tls_cert=cert_path, tls_key=key_path)
    relay.start()
    assert relay.url.startswith("https://")
    with httpx.Client(verify=False) as c:
        r = c.get(relay.url + "/healthz")
    assert r.json() == {"status": "ok"}
    assert r.headers["strict-transport-security"].startswith("max-age=")
