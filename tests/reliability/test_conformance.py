"""The conformance probe (`hotline conformance`) against real relays on SQLite and PostgreSQL: every
guarantee passes or is skipped with its reason, the command's output and exit codes are right, and a
relay that breaks a guarantee is reported as failing (a fault proxy that corrupts answers)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from hotline.conformance import run_conformance
from hotline.testing.faultproxy import FaultPlan, FaultProxy
from tests.conftest import BACKENDS
from tests.relay.support import HOTLINE

ALLOWED_SKIPS = {"inclusion-proof", "consistency-proof"}  # only when the relay has no proof API


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_probe_passes_against_a_real_relay(relay_factory, backend):
    relay = relay_factory(backend)
    token_file = relay.data_dir / "admin.token"
    done = subprocess.run(
        [HOTLINE, "conformance", "--relay", relay.url, "--admin-token-file", str(token_file), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stdout)
    failed = [r for r in report["results"] if r["status"] == "fail"]
    assert done.returncode == 0 and not failed, failed or done.stderr
    skipped = {r["name"]: r["detail"] for r in report["results"] if r["status"] == "skip"}
    with relay.client() as c:
        has_proofs = any("inclusion" in p for p in c.get("/openapi.json").json()["paths"])
    # A relay with the proof API must prove; one without may only say so.
    assert skipped == ({} if has_proofs else dict.fromkeys(ALLOWED_SKIPS, "relay has no proof API")), skipped
    assert report["passed"] >= 17


def test_the_probe_reports_failures_and_exits_non_zero(relay_factory):
    """Through a proxy that flips bits in the relay's answers, guarantees cannot be shown: the probe
    says which ones failed instead of passing them."""
    relay = relay_factory("sqlite")

    async def probe():
        port = int(relay.url.rsplit(":", 1)[1])
        async with FaultProxy(
            "127.0.0.1", port, FaultPlan(seed=3, corrupt=1.0, directions=frozenset({"down"}))
        ) as p:
            return await run_conformance(p.url, relay.admin_token, timeout_s=5)

    report = asyncio.run(probe())
    assert not report.ok
    assert report.count("fail") >= 1
    assert all(r.detail for r in report.results if r.status == "fail")


def test_an_unreachable_relay_exits_4(tmp_path):
    token = tmp_path / "t"
    token.write_text("x")
    done = subprocess.run(
        [HOTLINE, "conformance", "--relay", "http://127.0.0.1:9", "--admin-token-file", str(token)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4, done.stdout + done.stderr
