"""The real ``hotline`` command, as a subprocess, against a real relay: the full desk flow and its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Cli, Relay, free_port

MEMBERS = [
    "--member", "delhi=principal",
    "--member", "islamabad=principal",
    "--member", "washington=facilitator",
    "--member", "auditor=operator",
    "--member", "excon=controller",
]  # fmt: skip


def create_channel(cli: Cli, relay: Relay, name: str) -> dict[str, dict[str, Any]]:
    result = cli(
        "admin", "channel", "create", name, *MEMBERS, "--admin-token-file", str(relay.token_file), "--json"
    )
    assert result.code == 0, result.stderr
    invites = {inv["member"]: inv for inv in result.json()["invites"]}
    assert set(invites) == {"delhi", "islamabad", "washington", "auditor", "excon"}
    for inv in invites.values():
        assert inv["url"].endswith("#enroll=" + inv["code"])
    return invites


def enroll(cli: Cli, code: str, profile: str, device: str = "cli", *extra: str) -> dict[str, Any]:
    result = cli("enroll", code, "--profile", profile, "--device", device, "--json", *extra)
    assert result.code == 0, result.stderr
    return dict(result.json())


def test_full_desk_flow_with_json_outputs(cli: Cli, relay: Relay) -> None:
    invites = create_channel(cli, relay, "flow")
    me = enroll(cli, invites["delhi"]["code"], "delhi")
    assert (me["member"], me["device"], me["role"], me["channel"]) == ("delhi", "cli", "principal", "flow")
    enroll(cli, invites["islamabad"]["code"], "islamabad", "desk")
    # Key files are private.
    for profile in ("delhi", "islamabad"):
        for name in ("keys.json", "state.json"):
            assert (cli.home / "profiles" / profile / name).stat().st_mode & 0o777 == 0o600

    whoami = cli("whoami", "--profile", "delhi", "--json").json()
    assert whoami["member"] == "delhi" and len(whoami["fingerprint"].split()) == 8

    contacts_d = {c["member"]: c for c in cli("contacts", "--profile", "delhi", "--json").json()["contacts"]}
    contacts_i = {
        c["member"]: c for c in cli("contacts", "--profile", "islamabad", "--json").json()["contacts"]
    }
    number = contacts_d["islamabad"]["safety_number"]
    assert number == contacts_i["delhi"]["safety_number"]
    assert len(number.replace(" ", "")) == 60
    assert not contacts_d["islamabad"]["verified"]

    wrong = "0" * 60
    bad = cli("verify", "islamabad", wrong, "--profile", "delhi")
    assert bad.code == 1 and "MISMATCH" in bad.stdout
    ok = cli("verify", "islamabad", number, "--profile", "delhi", "--json")
    assert ok.code == 0 and ok.json()["ok"] is True
    contacts_d = {c["member"]: c for c in cli("contacts", "--profile", "delhi", "--json").json()["contacts"]}
    assert contacts_d["islamabad"]["verified"] is True

    text = "Are your forces on alert near the Line of Control?"
    sent = cli(
        "send", "--profile", "delhi", "--to", "islamabad", "--precedence", "flash",
        "--intent", "clarification", text, "--json",
    )  # fmt: skip
    assert sent.code == 0, sent.stderr
    sent_json = sent.json()
    message_id = sent_json["message_id"]
    assert sent_json["receipt"]["body"] and isinstance(sent_json["log_index"], int)
    assert "islamabad/desk" in sent_json["recipients"]

    inbox = cli("inbox", "--profile", "islamabad", "--json")
    assert inbox.code == 0, inbox.stderr
    messages = {m["message_id"]: m for m in inbox.json()["messages"]}
    assert messages[message_id]["text"] == text
    assert messages[message_id]["precedence"] == "FLASH"
    assert messages[message_id]["intent"] == "clarification_request"
    assert messages[message_id]["sender"] == {"member": "delhi", "device": "cli"}

    # Fetching again delivers nothing twice.
    again = cli("inbox", "--profile", "islamabad", "--json").json()
    assert [e for e in again["events"] if e["event"] == "message"] == []

    acked = cli("ack", message_id, "--reply", "No. Forces are on routine posture.", "--profile", "islamabad",
                "--json")  # fmt: skip
    assert acked.code == 0, acked.stderr
    reply_id = acked.json()["reply_id"]
    assert reply_id

    status = cli("status", "--profile", "delhi", "--json")
    assert status.code == 0, status.stderr
    ladder = status.json()["sent"][message_id]
    steps = ladder["recipients"]["islamabad/desk"]
    assert ladder["accepted_at_ms"] <= steps["delivered"] <= steps["acknowledged"]
    assert steps["reply_id"] == reply_id

    delhi_inbox = cli("inbox", "--profile", "delhi", "--json").json()
    replies = [m for m in delhi_inbox["messages"] if m["in_reply_to"] == message_id]
    assert replies and replies[0]["intent"] == "ack_reply"


def test_text_from_stdin_and_file(cli: Cli, relay: Relay, tmp_path: Path) -> None:
    invites = create_channel(cli, relay, "stdin")
    enroll(cli, invites["delhi"]["code"], "delhi")
    enroll(cli, invites["islamabad"]["code"], "islamabad")
    assert cli("send", "--profile", "delhi", "--to", "islamabad", "-", input="from stdin\n").code == 0
    body = tmp_path / "msg.txt"
    body.write_text("from a file", encoding="utf-8")
    assert cli("send", "--profile", "delhi", "--to", "islamabad", "--file", str(body)).code == 0
    texts = {m["text"] for m in cli("inbox", "--profile", "islamabad", "--json").json()["messages"]}
    assert texts == {"from stdin", "from a file"}


def test_wrong_invite_code_is_a_relay_refusal(cli: Cli) -> None:
    result = cli("enroll", "AAAAAAAAAAAAAAAAAAAAAA", "--profile", "x", "--json")
    assert result.code == 3
    assert result.json()["error"]["code"] == "invite_invalid"


def test_used_invite_is_refused(cli: Cli, relay: Relay) -> None:
    invites = create_channel(cli, relay, "used")
    enroll(cli, invites["delhi"]["code"], "one")
    again = cli("enroll", invites["delhi"]["code"], "--profile", "two", "--json")
    assert again.code == 3 and again.json()["error"]["code"] == "invite_used"


def test_relay_down_is_exit_4(cli: Cli, relay: Relay) -> None:
    invites = create_channel(cli, relay, "down")
    enroll(cli, invites["delhi"]["code"], "delhi")
    dead = f"http://127.0.0.1:{free_port()}"
    state_file = cli.home / "profiles" / "delhi" / "state.json"
    state = json.loads(state_file.read_text())
    state["relay_url"] = dead
    state_file.write_text(json.dumps(state))
    result = cli("send", "--profile", "delhi", "--to", "islamabad", "hello", "--json")
    assert result.code == 4, result.stderr
    assert result.json()["error"]["code"] == "relay_unreachable"
    assert "cannot reach the relay" in result.json()["error"]["message"]


def test_revoked_device_is_refused(cli: Cli, relay: Relay) -> None:
    invites = create_channel(cli, relay, "revoke")
    enroll(cli, invites["delhi"]["code"], "delhi")
    enroll(cli, invites["islamabad"]["code"], "islamabad")
    revoked = cli(
        "admin", "revoke", "revoke", "delhi/cli", "--admin-token-file", str(relay.token_file), "--json"
    )
    assert revoked.code == 0, revoked.stderr
    result = cli("send", "--profile", "delhi", "--to", "islamabad", "hello", "--json")
    assert result.code == 3
    assert result.json()["error"]["code"] == "device_revoked"


def test_encrypted_profile_needs_the_right_passphrase(cli: Cli, relay: Relay) -> None:
    invites = create_channel(cli, relay, "sealed")
    cli.env_extra["HOTLINE_PASSPHRASE"] = "correct horse battery staple"
    enroll(cli, invites["delhi"]["code"], "delhi", "cli", "--encrypt")
    keyfile = json.loads((cli.home / "profiles" / "delhi" / "keys.json").read_text())
    assert keyfile["type"] == "hotline-sealed-device-keys"
    assert cli("whoami", "--profile", "delhi").code == 0
    wrong = cli("whoami", "--profile", "delhi", "--json", env={"HOTLINE_PASSPHRASE": "wrong"})
    assert wrong.code == 5
    assert wrong.json()["error"]["code"] == "bad_passphrase"
    del cli.env_extra["HOTLINE_PASSPHRASE"]
    missing = cli("whoami", "--profile", "delhi", "--json")
    assert missing.code == 5 and "passphrase" in missing.stdout + missing.stderr


def test_tampered_key_file_is_refused(cli: Cli, relay: Relay) -> None:
    invites = create_channel(cli, relay, "tamper")
    enroll(cli, invites["delhi"]["code"], "delhi")
    path = cli.home / "profiles" / "delhi" / "keys.json"
    keyfile = json.loads(path.read_text())
    keyfile["member"] = "islamabad"
    path.write_text(json.dumps(keyfile))
    result = cli("whoami", "--profile", "delhi", "--json")
    assert result.code == 5
    assert "key file" in result.json()["error"]["message"]


def test_missing_profile_and_usage_errors(cli: Cli) -> None:
    missing = cli("whoami", "--profile", "nobody", "--json")
    assert missing.code == 5 and "hotline enroll" in missing.json()["error"]["message"]
    bad_precedence = cli("send", "--profile", "nobody", "--to", "x", "--precedence", "urgent", "hi")
    assert bad_precedence.code == 2 and "FLASH" in bad_precedence.stderr
    bad_member = cli(
        "admin", "channel", "create", "x", "--member", "delhi=king", "--admin-token-file", "/dev/null"
    )
    assert bad_member.code == 2


def test_key_change_blocks_sending_until_accepted(cli: Cli, relay: Relay) -> None:
    invites = create_channel(cli, relay, "keychange")
    enroll(cli, invites["delhi"]["code"], "delhi")
    enroll(cli, invites["islamabad"]["code"], "islamabad")
    assert cli("send", "--profile", "delhi", "--to", "islamabad", "first").code == 0
    second = cli(
        "admin", "invite", "keychange", "islamabad", "--admin-token-file", str(relay.token_file), "--json"
    )
    assert second.code == 0, second.stderr
    enroll(cli, second.json()["code"], "islamabad2", "phone")
    blocked = cli("send", "--profile", "delhi", "--to", "islamabad", "second", "--json")
    assert blocked.code == 6, blocked.stdout + blocked.stderr
    assert blocked.json()["error"]["code"] == "key_changed"
    contacts = {c["member"]: c for c in cli("contacts", "--profile", "delhi", "--json").json()["contacts"]}
    assert contacts["islamabad"]["key_change_pending"] is True
    assert cli("trust", "islamabad", "--profile", "delhi").code == 0
    sent = cli("send", "--profile", "delhi", "--to", "islamabad", "second", "--json")
    assert sent.code == 0, sent.stderr
    assert {"islamabad/cli", "islamabad/phone"} <= set(sent.json()["recipients"])
    # The new device gets the message sent after it enrolled, and no gap alarm for the earlier one.
    events = cli("inbox", "--profile", "islamabad2", "--json").json()["events"]
    assert [e["text"] for e in events if e["event"] == "message"] == ["second"]
    assert [e for e in events if e["event"] == "gap"] == []


def test_demo_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "hotline.cli", "demo", "--once", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_COLOR": "1", "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Demo complete" in done.stdout
    assert "acknowledged by islamabad" in done.stdout
    # Runs again without clean-up.
    again = subprocess.run(
        [sys.executable, "-m", "hotline.cli", "demo", "--once", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_COLOR": "1", "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert again.returncode == 0, again.stdout + again.stderr
