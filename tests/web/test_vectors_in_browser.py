"""The shared protocol vectors, run by the JavaScript protocol layer in headless Chromium.

Each suite of ``clients/web/js/protocol/selftest/`` reproduces one vector file byte for byte (keys, signed
prekeys, fingerprints and safety numbers, receipts, tree head, auth proof, key file, the committed envelope),
the RFC 9180 HPKE vector, the worked example of docs/PROTOCOL.md §13, or the receiver rules; every negative
vector must be refused with its error code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import SelftestPage, failures

pytestmark = pytest.mark.browser

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
NEGATIVE_NAMES = [v["name"] for v in json.loads((VECTORS / "negative.json").read_text("utf-8"))["vectors"]]
SUITES = ["keys", "fingerprints", "receipts", "statements", "keyfile", "envelope", "hpke", "receiver", "api"]


@pytest.mark.parametrize("suite", SUITES)
def test_suite_passes_in_the_browser(selftest: SelftestPage, suite: str) -> None:
    result = selftest.run(suite)
    assert result["cases"], f"suite {suite} ran no cases"
    assert not failures(result["cases"]), "\n".join(failures(result["cases"]))


@pytest.fixture(scope="module")
def negative_results(selftest: SelftestPage) -> dict[str, dict[str, Any]]:
    return {case["name"]: case for case in selftest.run("negative")["cases"]}


def test_every_negative_vector_is_run(negative_results: dict[str, dict[str, Any]]) -> None:
    assert sorted(negative_results) == sorted(NEGATIVE_NAMES)


@pytest.mark.parametrize("name", NEGATIVE_NAMES)
def test_negative_vector_is_refused_with_its_code(
    negative_results: dict[str, dict[str, Any]], name: str
) -> None:
    case = negative_results[name]
    assert case["ok"], case.get("error")


def test_run_button_shows_every_suite_passing(selftest: SelftestPage) -> None:
    page = selftest.page
    page.click("#run")
    deadline = time.monotonic() + 60
    while "passed" not in (status := page.text_content("#status") or ""):
        assert time.monotonic() < deadline, f"the page did not finish: {status!r}"
        page.wait_for_timeout(100)
    assert status.endswith(" 0 failed"), status
    rows = page.locator("#results tbody tr")
    assert rows.count() > 100
    assert page.locator("#results tbody tr.fail").count() == 0


def test_no_console_errors_or_policy_violations(selftest: SelftestPage) -> None:
    # Runs after the suites above in this module: a CSP violation or an uncaught error shows up here.
    assert not selftest.problems, "\n".join(selftest.problems)
