"""The hotline commands as subprocesses against a real relay whose clock the test moves: ladder, decline,
link tests and link status, crisis declare/stand-down and the banner, escalations and withdrawal, word
caps, policy and check-ins, and ``listen`` sending link tests by itself."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Cli, Relay, start_relay, stop_relay

SETTINGS = {
    "HOTLINE_TEST_CLOCK": "1",
    "HOTLINE_TIMER_INTERVAL_S": "3600",  # timers fire when the test asks, not by themselves
    "HOTLINE_TOKEN_TTL_S": str(10 * 365 * 86400),
    "HOTLINE_ACT_MAX_SKEW_S": str(30 * 86400),  # the relay's clock runs ahead of the CLI's
}


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    saved = {k: os.environ.get(k) for k in SETTINGS}
    os.environ.update(SETTINGS)
    try:
        r = start_relay(tmp_path_factory.mktemp("relay") / "data")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield r
    stop_relay(r)


def admin(relay: Relay) -> httpx.Client:
    token = relay.token_file.read_text().strip()
    return httpx.Client(base_url=relay.url, headers={"Authorization": f"Bearer {token}"}, timeout=15)


def advance(relay: Relay, seconds: float) -> int:
    with admin(relay) as c:
        r = c.post("/v1/admin/test/clock", json={"advance_ms": int(seconds * 1000)})
        assert r.status_code == 200, r.text
        return int(r.json()["now_ms"])


def sweep(relay: Relay) -> list[dict[str, Any]]:
    with admin(relay) as c:
        r = c.post("/v1/admin/test/sweep")
        assert r.status_code == 200, r.text
        return list(r.json()["fired"])


def ok(result: Any) -> Any:
    assert result.code == 0, result.stderr + result.stdout
    return result.json()


@pytest.fixture
def channel(cli: Cli, relay: Relay, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-")[:40].lower()
    created = ok(
        cli(
            "admin", "channel", "create", name,
            "--member", "delhi=principal", "--member", "islamabad=principal", "--member", "excon=controller",
            "--admin-token-file", str(relay.token_file), "--json",
        )
    )  # fmt: skip
    for invite in created["invites"]:
        ok(cli("enroll", invite["code"], "--profile", invite["member"], "--device", "cli", "--json"))
    return name


def test_ladder_decline_and_link_status(cli: Cli, channel: str) -> None:
    sent = ok(
        cli(
            "send", "--profile", "delhi", "--to", "islamabad", "--precedence", "flash", "Hold fire?", "--json"
        )
    )
    mid = sent["message_id"]
    ok(cli("inbox", "--profile", "islamabad", "--json"))
    declined = ok(
        cli("decline", mid, "--reply", "We will not hold fire.", "--profile", "islamabad", "--json")
    )
    assert declined["ok"] and declined["reply_id"]

    relay_view = ok(cli("ladder", mid, "--profile", "delhi", "--json"))
    assert relay_view["source"] == "relay"
    assert [(d["desk"], d["state"]) for d in relay_view["desks"]] == [("islamabad", "declined")]
    [device] = relay_view["devices"]
    assert device["device"] == "islamabad/cli" and device["declined"] is True
    local = ok(cli("ladder", mid, "--local", "--profile", "delhi", "--json"))
    assert local["source"] == "device" and local["desks"][0]["state"] == "declined"
    human = cli("ladder", mid, "--profile", "delhi")
    assert human.code == 0 and "DECLINED" in human.stdout
    assert cli("ladder", mid, "--profile", "islamabad", "--json").json()["error"]["code"] == "not_found"

    tested = ok(cli("linktest", "--profile", "delhi", "--json"))
    assert list(tested["sent"]) == ["islamabad"]
    inbox = ok(cli("inbox", "--profile", "islamabad", "--json"))
    assert any(e["event"] == "message" and e["intent"] == "link_test" for e in inbox["events"])
    assert all(m["intent"] != "link_test" for m in inbox["messages"])  # answered by itself, not listed
    link = ok(cli("link", "--profile", "delhi", "--json"))
    [direction] = link["directions"]
    assert (direction["from"], direction["to"], direction["state"], direction["missed"]) == (
        "delhi",
        "islamabad",
        "up",
        0,
    )
    assert {d["desk"]: d["declined"] for d in link["desks"]}["islamabad"] == [mid]


def test_crisis_declare_banner_and_stand_down(cli: Cli, channel: str) -> None:
    declared = ok(cli("crisis", "declare", "--reason", "Launch reported", "--profile", "delhi", "--json"))
    assert declared["crisis"]["on"] is True and declared["crisis"]["by"] == "delhi/cli"
    status = ok(cli("status", "--profile", "islamabad", "--json"))
    assert status["crisis"]["on"] is True
    assert "CRISIS MODE" in status["banner"] and "Launch reported" in status["banner"]
    human = cli("status", "--profile", "islamabad")
    assert human.code == 0 and "CRISIS MODE" in human.stdout
    refused = cli("crisis", "declare", "--reason", "again", "--profile", "islamabad", "--json")
    assert refused.code == 3 and refused.json()["error"]["code"] == "conflict"
    down = ok(
        cli("crisis", "stand-down", "--reason", "Test launch confirmed", "--profile", "excon", "--json")
    )
    assert down["crisis"]["on"] is False and down["banner"] is None
    shown = ok(cli("crisis", "show", "--profile", "islamabad", "--json"))
    assert [(h["on"], h["by"]) for h in shown["history"]] == [(True, "delhi/cli"), (False, "excon/cli")]
    assert ok(cli("status", "--profile", "islamabad", "--json"))["banner"] is None


def test_word_cap_escalation_and_withdrawal(cli: Cli, relay: Relay, channel: str) -> None:
    long = cli(
        "send",
        "--profile",
        "delhi",
        "--to",
        "islamabad",
        "--precedence",
        "flash",
        " ".join(["w"] * 201),
        "--json",
    )
    assert long.code == 1 and long.json()["error"]["code"] == "too_long"
    mid = ok(
        cli("send", "--profile", "delhi", "--to", "islamabad", "--precedence", "flash", "Answer!", "--json")
    )["message_id"]
    advance(relay, 61)
    sweep(relay)
    escalations = ok(cli("escalations", "--profile", "delhi", "--json"))["escalations"]
    assert [(e["reason"], e["desk"], e["message_id"]) for e in escalations] == [
        ("delivery_overdue", "islamabad", mid)
    ]
    status = ok(cli("status", "--profile", "delhi", "--json"))
    assert status["escalations"][-1]["message_id"] == mid
    assert status["link"]["desks"][[d["desk"] for d in status["link"]["desks"]].index("islamabad")][
        "undelivered"
    ] == [mid]
    withdrawn = ok(cli("withdraw", mid, "--reason", "overtaken", "--profile", "delhi", "--json"))
    assert withdrawn["ok"] and withdrawn["message_id"] == mid
    events = ok(cli("inbox", "--profile", "islamabad", "--json"))["events"]
    assert [e["kind"] for e in events if e["event"] == "notice"] == ["escalation", "withdrawn"]


def test_policy_and_checkins(cli: Cli, relay: Relay, channel: str, tmp_path: Path) -> None:
    now = advance(relay, 0)
    due = (now // 60_000 + 2) * 60_000
    minutes = (due // 60_000) % 1440
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps({"checkins": [{"id": "dgmo", "times": [f"{minutes // 60:02d}:{minutes % 60:02d}"]}]})
    )
    changed = ok(
        cli(
            "admin",
            "policy",
            "set",
            channel,
            "--file",
            str(policy),
            "--admin-token-file",
            str(relay.token_file),
            "--json",
        )
    )
    assert changed["version"] == 1 and changed["policy"]["checkins"][0]["id"] == "dgmo"
    shown = ok(cli("policy", "show", "--profile", "islamabad", "--json"))
    assert shown["policy"]["normal"]["deadlines"]["FLASH"] == {"deliver_s": 60, "ack_s": 600}
    assert ok(cli("checkins", "--profile", "islamabad", "--json"))["upcoming"] == [
        {"schedule": "dgmo", "due_ms": due}
    ]
    refused = cli("policy", "set", "--file", str(policy), "--profile", "islamabad", "--json")
    assert refused.code == 3 and refused.json()["error"]["code"] == "forbidden"

    advance(relay, (due - now) / 1000 + 1)
    sweep(relay)
    answered = ok(cli("checkin", "--text", "Islamabad DGMO here", "--profile", "islamabad", "--json"))
    assert [a["checkin"] for a in answered["answered"]] == [f"dgmo@{due}"]
    advance(relay, 901)
    sweep(relay)
    view = ok(cli("checkins", "--profile", "delhi", "--json"))
    [row] = view["checkins"]
    assert {d["desk"]: d["state"] for d in row["desks"]} == {"delhi": "unanswered", "islamabad": "answered"}
    human = cli("checkins", "--profile", "delhi")
    assert human.code == 0 and "UNANSWERED" in human.stdout


def test_listen_sends_due_link_tests_by_itself(cli: Cli, channel: str) -> None:
    result = cli("listen", "--profile", "islamabad", "--json", "--timeout", "3")
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert {
        k: v for k, v in next(x for x in lines if x["event"] == "link_test_sent").items() if k != "message_id"
    } == {"event": "link_test_sent", "to": "delhi"}
    ok(cli("inbox", "--profile", "delhi", "--json"))  # delhi's device answers it
    link = ok(cli("link", "--profile", "islamabad", "--json"))
    assert [(d["from"], d["state"]) for d in link["directions"]] == [("islamabad", "up")]
