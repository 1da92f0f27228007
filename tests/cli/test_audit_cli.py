"""``hotline audit`` as a desk uses it (the real command, as a subprocess): the verified tree head, the
relay check, proofs checked locally, tree heads exchanged in a link test; and the benchmark's smoke run."""

from __future__ import annotations

import time

from tests.cli.conftest import Cli, Relay
from tests.cli.test_cli import create_channel, enroll


def wait_for_tree_head(cli: Cli, size: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        head = cli("audit", "head", "--json").json()
        if head["size"] >= size or time.monotonic() > deadline:
            return dict(head)
        time.sleep(0.3)


def test_a_desk_checks_the_relay_proves_its_message_and_shares_its_tree_head(cli: Cli, relay: Relay) -> None:
    invites = create_channel(cli, relay, "audit-cli")
    enroll(cli, invites["delhi"]["code"], "delhi")
    enroll(cli, invites["islamabad"]["code"], "islamabad", "desk")
    sent = cli("send", "--profile", "delhi", "--to", "islamabad", "Proof of sending, please.", "--json")
    assert sent.code == 0, sent.stderr
    index = sent.json()["log_index"]
    assert cli("inbox", "--profile", "islamabad", "--json").code == 0

    relay_head = wait_for_tree_head(cli, index + 1)  # the relay's own newest head, signature checked
    assert relay_head["ok"] and relay_head["source"] == "relay"

    head = cli("audit", "head", "--profile", "delhi", "--json")
    assert head.code == 0, head.stderr
    assert head.json()["size"] > index and head.json()["alarms"] == []

    check = cli("audit", "check", "--profile", "delhi", "--json")
    assert check.code == 0, check.stdout + check.stderr
    assert check.json()["included"] >= 1 and check.json()["alarms"] == []

    proof = cli("audit", "proof", "inclusion", "--profile", "delhi", "--index", str(index), "--json")
    assert proof.code == 0, proof.stdout + proof.stderr
    assert proof.json()["ok"] and '"type":"envelope-accepted"' in proof.json()["entry"]
    by_id = cli(
        "audit",
        "proof",
        "inclusion",
        "--profile",
        "delhi",
        "--message-id",
        sent.json()["message_id"],
        "--json",
    )
    assert by_id.code == 0 and by_id.json()["index"] == index

    size = head.json()["size"]
    cons = cli(
        "audit",
        "proof",
        "consistency",
        "--profile",
        "delhi",
        "--old",
        str(relay_head["size"]),
        "--new",
        str(size),
        "--json",
    )
    assert cons.code == 0, cons.stdout + cons.stderr
    assert cons.json()["ok"]

    shared = cli("audit", "exchange", "--profile", "delhi", "--to", "islamabad", "--json")
    assert shared.code == 0, shared.stderr
    cli("inbox", "--profile", "islamabad", "--json")
    peers = cli("audit", "check", "--profile", "islamabad", "--json").json()["peers"]
    assert peers["delhi/cli"]["status"] == "consistent"
    human = cli("audit", "check", "--profile", "islamabad")
    assert human.code == 0 and "no audit alarms" in human.stdout


def test_verify_usage_errors(cli: Cli, relay: Relay, tmp_path) -> None:
    missing = cli("audit", "verify", str(tmp_path / "nope.jsonl"))
    assert missing.code == 2
    export = cli("audit", "export", "--out", str(tmp_path / "x.jsonl"))
    assert export.code == 2


def test_the_benchmark_runs_on_a_tiny_log(cli: Cli, relay: Relay) -> None:
    result = cli("audit", "bench", "--messages", "30", "--rounds", "1", "--jobs", "2", "--json")
    assert result.code == 0, result.stderr
    figures = result.json()
    assert figures["entries"] == 7 + 3 * 30 + 3
    assert figures["signatures"]["envelope"] == 30 and figures["full"]["entries_per_s"] > 0
