"""The runnable example in docs/examples runs against a real relay and does what docs/CLIENT.md says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Relay

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "two_desks.py"


def test_two_desks_example_runs(relay: Relay) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), relay.url, str(relay.token_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "islamabad got FLASH clarification_request" in out
    assert "delivered by islamabad/desk" in out
    assert "acknowledged by islamabad/desk" in out
    assert "reply: Routine rotation; no offensive intent." in out
