"""``hotline bench --quick`` runs end to end, so the benchmark cannot rot.

Every phase runs on tiny numbers (a real relay, real desks, the bare forwarder, idle sockets, the
audit export). Figures are never asserted: only that each one was measured and written down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

QUICK_TIMEOUT_S = 180


def test_quick_bench_measures_every_phase_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "hotline.cli", "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=QUICK_TIMEOUT_S,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "hotline bench" in run.stdout  # the table was printed

    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert results["machine"]["cores"] >= 1
    for package in ("python", "cryptography", "fastapi", "uvicorn", "sqlalchemy", "sqlite"):
        assert results["software"][package]

    relay, floor = results["hotline"], results["floor"]
    for side in (relay, floor):
        assert side["latency"] and side["steps"]
        for run_result in side["latency"].values():
            assert run_result["errors"] == 0, run_result["first_errors"]
            assert run_result["send_to_app"]["n"] == run_result["scheduled"]
            assert run_result["send_to_receipt_back"]["n"] == run_result["scheduled"]
        assert side["idle"]["held"] == side["idle"]["requested"]
    assert relay["ready_fresh_s"] > 0 and relay["ready_restart_s"] > 0
    assert relay["audit"]["entries"] > 0
    assert relay["audit"]["counts"]["envelope_signatures"] > 0
    assert {row["figure"] for row in results["rows"]}
