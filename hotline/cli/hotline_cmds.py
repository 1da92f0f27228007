"""Hotline commands: the ladder, crisis mode, link tests, check-ins, escalations, withdrawals, policy.

``hotline ladder ID``, ``hotline decline ID``, ``hotline withdraw ID``, ``hotline crisis
show|declare|stand-down``, ``hotline linktest``, ``hotline link``, ``hotline checkin``, ``hotline
checkins``, ``hotline escalations``, ``hotline policy show|set`` and ``hotline admin policy show|set``.
Every command takes ``--json``; exit codes are those of :mod:`hotline.cli.common`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hotline.cli.admin import RelayOption as AdminRelayOption
from hotline.cli.admin import TokenFileOption, admin_app, admin_token
from hotline.cli.common import (
    EXIT_USAGE,
    JsonOption,
    ProfileOption,
    console,
    emit_json,
    fail,
    fmt_delta,
    fmt_ms,
    run,
)
from hotline.client import AdminClient
from hotline.client.notices import NoticeReceived
from hotline.client.watch import banner, hotline_state

crisis_app = typer.Typer(
    help="Crisis mode: show it, declare it, stand it down (signed acts).", no_args_is_help=True
)
policy_app = typer.Typer(
    help="The channel's deadlines, word caps, link tests, check-ins and triggers.", no_args_is_help=True
)
admin_policy_app = typer.Typer(help="A channel's policy, with the admin token.", no_args_is_help=True)
admin_app.add_typer(admin_policy_app, name="policy")


def _open(profile: str, as_json: bool) -> Any:
    from hotline.cli.desk import open_desk  # the desk commands' module opens profiles

    return open_desk(profile, as_json=as_json)


# --- events -------------------------------------------------------------------------------------------


def notice_json(ev: NoticeReceived) -> dict[str, Any]:
    return {
        "event": "notice",
        "kind": ev.kind,
        "at_ms": ev.at_ms,
        "by": ev.by,
        "fields": ev.fields,
        "text": ev.text,
    }


def print_notice(ev: NoticeReceived) -> None:
    style = "bold white on red" if ev.kind in {"escalation", "crisis"} else "bold yellow"
    console.print(f"[{style}] {ev.kind.upper()} [/] {fmt_ms(ev.at_ms)} {ev.text}")


def print_banner(state: Any) -> None:
    text = banner(state)
    if text:
        console.print(f"[bold white on red] {text} [/]")


def status_extras(desk: Any) -> Any:
    """What ``hotline status`` adds: the crisis banner, each link direction, recent escalations."""

    async def body() -> dict[str, Any]:
        crisis = (await desk.watch.crisis())["crisis"]
        link = await desk.watch.link()
        st = desk.state
        return {
            "crisis": crisis,
            "banner": banner(st),
            "link": {"directions": link["directions"], "desks": link["desks"], "mode": link["mode"]},
            "escalations": hotline_state(st).get("escalations", [])[-20:],
            "checkins_due": sorted(hotline_state(st).get("checkins", {})),
        }

    return body()


def print_status_extras(extras: dict[str, Any]) -> None:
    if extras.get("banner"):
        console.print(f"[bold white on red] {extras['banner']} [/]")
    directions = extras.get("link", {}).get("directions", [])
    if directions:
        table = Table(title=f"Link ({extras['link']['mode']} mode)")
        for col in ("direction", "state", "last success", "round trip", "missed"):
            table.add_column(col)
        for d in directions:
            state = {"up": "[green]up[/]", "down": "[bold red]DOWN[/]"}.get(d["state"], d["state"])
            rtt = f"{d['rtt_ms']} ms" if d["rtt_ms"] is not None else "—"
            table.add_row(
                f"{d['from']} → {d['to']}", state, fmt_ms(d["last_success_ms"]), rtt, str(d["missed"])
            )
        console.print(table)
    for desk in extras.get("link", {}).get("desks", []):
        for key, label in (
            ("undelivered", "LINK DOWN, undelivered"),
            ("silent", "SILENT"),
            ("declined", "DECLINED"),
        ):
            for mid in desk.get(key, []):
                console.print(f"[bold red]{label}[/] {desk['desk']}: {mid}")
    for e in extras.get("escalations", [])[-5:]:
        console.print(
            f"[red]escalation[/] {fmt_ms(e.get('at_ms'))} {e.get('reason')} {e.get('desk')} "
            f"{e.get('message_id') or e.get('checkin') or ''} #{e.get('attempt')}"
        )
    for name in extras.get("checkins_due", []):
        console.print(f"[yellow]check-in due:[/] {name} (answer with `hotline checkin`)")


# --- commands ------------------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    app.add_typer(crisis_app, name="crisis")
    app.add_typer(policy_app, name="policy")

    @app.command()
    def ladder(
        message_id: str = typer.Argument(..., help="Id of a message this desk sent."),
        local: bool = typer.Option(False, "--local", help="This device's records only (no relay)."),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Each step of a sent message at every recipient: accepted, delivered, acknowledged or declined,
        rejected (and resent); each desk's state and deadlines; escalations."""

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                if local:
                    await desk.sync()
                    view = desk.watch.ladder(message_id)
                else:
                    view = await desk.watch.relay_ladder(message_id)
                out: dict[str, Any] = view.to_json()
                return out

        result = run(body, as_json=as_json)
        if as_json:
            emit_json(result)
            return
        t0 = result["created_at_ms"]
        console.print(
            f"{result['precedence']} {result['message_id']} · accepted "
            f"{fmt_delta(t0, result['accepted_at_ms'])} "
            f"· log index {result['log_index']} · {result['source']} view"
            + (
                f" · [yellow]withdrawn {fmt_ms(result['withdrawn_at_ms'])}[/]"
                if result["withdrawn_at_ms"]
                else ""
            )
        )
        desks = Table(title="Desks")
        for col in ("desk", "state", "deliver by", "acknowledge by"):
            desks.add_column(col)
        for d in result["desks"]:
            desks.add_row(d["desk"], d["state"], fmt_ms(d["deliver_by_ms"]), fmt_ms(d["ack_by_ms"]))
        console.print(desks)
        devices = Table(title="Devices")
        for col in ("device", "delivered", "acknowledged", "rejected", "resends"):
            devices.add_column(col, overflow="fold")
        for d in result["devices"]:
            acked = fmt_delta(t0, d["acknowledged_at_ms"]) + (" [red]DECLINED[/]" if d["declined"] else "")
            rejected = f"{fmt_delta(t0, d['rejected_at_ms'])} {d['reason']}" if d["rejected_at_ms"] else ""
            devices.add_row(
                d["device"], fmt_delta(t0, d["delivered_at_ms"]), acked, rejected, ", ".join(d["resends"])
            )
        console.print(devices)
        for e in result["escalations"]:
            console.print(
                f"[red]escalation #{e['attempt']}[/] {fmt_ms(e['at_ms'])} {e['reason']} {e['desk']}"
            )

    @app.command()
    def decline(
        message_id: str = typer.Argument(..., help="Id of the received message."),
        reply: str | None = typer.Option(
            None, "--reply", help="Send this reply (the reason) with the refusal."
        ),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Answer a received message with a signed refusal (an acknowledgement that declines)."""

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                await desk.sync()
                receipt = await desk.acknowledge(message_id, reply, declined=True)
                return {
                    "ok": True,
                    "message_id": message_id,
                    "declined_at_ms": receipt.at_ms,
                    "reply_id": receipt.reply_id,
                }

        result = run(body, as_json=as_json)
        if as_json:
            emit_json(result)
        else:
            console.print(
                f"declined {message_id}" + (f" with reply {result['reply_id']}" if result["reply_id"] else "")
            )

    @app.command()
    def withdraw(
        message_id: str = typer.Argument(..., help="Id of a message this desk sent."),
        reason: str = typer.Option("", "--reason", help="Why (logged, shown to the recipients)."),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Withdraw a sent message (a signed act): its escalations stop."""

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                out: dict[str, Any] = await desk.watch.withdraw(message_id, reason)
                return {"ok": True, **out}

        result = run(body, as_json=as_json)
        if as_json:
            emit_json(result)
        else:
            console.print(f"withdrew {message_id} at {fmt_ms(result['withdrawn_at_ms'])}")

    @app.command()
    def linktest(
        to: list[str] = typer.Option(
            [], "--to", help="Desk to test (repeat); default: every other testing desk."
        ),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Send a link test now; the other desk's device answers it by itself (`hotline link` shows it)."""

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                targets = list(to)
                if not targets:
                    view = await desk.watch.link()
                    me = desk.state.member
                    targets = [d for d in view["testing_desks"] if d != me]
                if not targets:
                    return {"ok": False}
                sent = {t: await desk.watch.send_link_test(t) for t in targets}
                return {"ok": True, "sent": sent}

        result = run(body, as_json=as_json)
        if not result["ok"]:
            fail(
                "no other desk tests the link in this channel; name one with --to",
                EXIT_USAGE,
                as_json=as_json,
            )
        if as_json:
            emit_json(result)
        else:
            for target, mid in result["sent"].items():
                console.print(f"link test {mid} sent to {target}")

    @app.command()
    def link(profile: str = ProfileOption, as_json: bool = JsonOption) -> None:
        """Link status per direction (last success, round trip, missed tests) and each desk's open
        messages: undelivered (link down), silent (not answered), declined (a signed refusal)."""

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                extras: dict[str, Any] = await status_extras(desk)
                return extras

        result = run(body, as_json=as_json)
        if as_json:
            emit_json(result["link"] | {"crisis": result["crisis"]})
            return
        print_status_extras({**result, "escalations": [], "checkins_due": []})
        if not result["link"]["directions"]:
            console.print(
                "No link tests yet (`hotline linktest` sends one; `hotline listen` sends them on schedule)."
            )

    @app.command()
    def checkin(
        checkin_id: str | None = typer.Argument(
            None, help="The check-in (e.g. dgmo@1732615200000); default: all owed."
        ),
        text: str = typer.Option("", "--text", help="A word with the answer (logged)."),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Answer a scheduled check-in (or every one this desk owes) with a signed act."""

        async def body() -> list[dict[str, Any]]:
            async with _open(profile, as_json) as desk:
                answers: list[dict[str, Any]] = await desk.watch.answer_checkin(checkin_id, text)
                return answers

        answers = run(body, as_json=as_json)
        if as_json:
            emit_json({"ok": True, "answered": answers})
            return
        if not answers:
            console.print("No check-in is owed.")
        for a in answers:
            console.print(
                f"answered check-in {a['checkin']}" + (" [yellow](late)[/]" if a.get("late") else "")
            )

    @app.command()
    def checkins(profile: str = ProfileOption, as_json: bool = JsonOption) -> None:
        """Recent check-ins and who answered; the next ones scheduled."""

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                view: dict[str, Any] = await desk.watch.checkins()
                return view

        view = run(body, as_json=as_json)
        if as_json:
            emit_json(view)
            return
        table = Table(title="Check-ins")
        for col in ("check-in", "due", "answer by", "desk", "state"):
            table.add_column(col)
        for c in view["checkins"]:
            for d in c["desks"]:
                state = {"unanswered": "[bold red]UNANSWERED[/]", "answered": "[green]answered[/]"}.get(
                    d["state"], d["state"]
                )
                table.add_row(c["checkin"], fmt_ms(c["due_ms"]), fmt_ms(c["answer_by_ms"]), d["desk"], state)
        console.print(table)
        for u in view["upcoming"]:
            console.print(f"next: {u['schedule']} at {fmt_ms(u['due_ms'])}")

    @app.command()
    def escalations(profile: str = ProfileOption, as_json: bool = JsonOption) -> None:
        """Escalations this desk was told about (facilitators and controllers: all of them)."""

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                view: dict[str, Any] = await desk.watch.escalations()
                return view

        view = run(body, as_json=as_json)
        if as_json:
            emit_json(view)
            return
        table = Table(title="Escalations")
        for col in ("at", "reason", "desk", "state", "subject", "#"):
            table.add_column(col, overflow="fold")
        for e in view["escalations"]:
            table.add_row(
                fmt_ms(e["at_ms"]),
                e["reason"],
                e["desk"],
                e["state"],
                e["message_id"] or e["checkin"] or "",
                str(e["attempt"]),
            )
        console.print(table)

    @crisis_app.command("show")
    def crisis_show(profile: str = ProfileOption, as_json: bool = JsonOption) -> None:
        """The channel's crisis state and every change, with who made it."""

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                view: dict[str, Any] = await desk.watch.crisis()
                view["banner"] = banner(desk.state)
                return view

        view = run(body, as_json=as_json)
        if as_json:
            emit_json(view)
            return
        if view["banner"]:
            console.print(f"[bold white on red] {view['banner']} [/]")
        else:
            console.print("[green]No crisis.[/] Normal mode.")
        for h in view["history"]:
            console.print(
                f"{fmt_ms(h['at_ms'])} epoch {h['epoch']}: "
                f"{'DECLARED' if h['on'] else 'stood down'} by {h['by']}"
                f" ({h['trigger']}) {h['reason']} · log index {h['log_index']}"
            )

    def _crisis(declare: bool, reason: str, profile: str, as_json: bool) -> None:
        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                out: dict[str, Any] = await (
                    desk.watch.declare_crisis(reason) if declare else desk.watch.stand_down(reason)
                )
                out["banner"] = banner(desk.state)
                return {"ok": True, **out}

        result = run(body, as_json=as_json)
        if as_json:
            emit_json(result)
        elif result["banner"]:
            console.print(f"[bold white on red] {result['banner']} [/]")
        else:
            console.print("[green]Crisis stood down.[/] Normal mode.")

    @crisis_app.command("declare")
    def crisis_declare(
        reason: str = typer.Option(..., "--reason", help="Why (signed, logged, shown on every client)."),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Declare crisis mode (principals and controllers): link tests every minute, shorter deadlines,
        every message needs an acknowledgement."""
        _crisis(True, reason, profile, as_json)

    @crisis_app.command("stand-down")
    def crisis_stand_down(
        reason: str = typer.Option(..., "--reason", help="Why (signed, logged, shown on every client)."),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Stand crisis mode down (principals and controllers)."""
        _crisis(False, reason, profile, as_json)

    @policy_app.command("show")
    def policy_show(profile: str = ProfileOption, as_json: bool = JsonOption) -> None:
        """The channel's policy (deadlines per precedence and mode, caps, link tests, check-ins)."""

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                view: dict[str, Any] = await desk.watch.policy()
                return view

        view = run(body, as_json=as_json)
        if as_json:
            emit_json(view)
        else:
            print_policy(view)

    @policy_app.command("set")
    def policy_set(
        file: Path = typer.Option(..., "--file", help="JSON with the fields to change (the rest is kept)."),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Change the channel's policy (controllers)."""
        changes = _read_policy(file, as_json)

        async def body() -> dict[str, Any]:
            async with _open(profile, as_json) as desk:
                view: dict[str, Any] = await desk._call("PUT", "/policy", json_body=changes)
                await desk.watch.policy()
                return view

        view = run(body, as_json=as_json)
        if as_json:
            emit_json(view)
        else:
            print_policy(view)

    @admin_policy_app.command("show")
    def admin_policy_show(
        channel: str = typer.Argument(..., help="Channel id."),
        relay: str = AdminRelayOption,
        token_file: Path | None = TokenFileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """A channel's policy and crisis state."""
        token = admin_token(token_file)

        async def body() -> dict[str, Any]:
            async with AdminClient(relay, token) as admin:
                view: dict[str, Any] = await admin.api.request(
                    "GET", f"/v1/admin/channels/{channel}/policy", admin_token=token
                )
                return view

        view = run(body, as_json=as_json)
        if as_json:
            emit_json(view)
        else:
            print_policy(view)

    @admin_policy_app.command("set")
    def admin_policy_set(
        channel: str = typer.Argument(..., help="Channel id."),
        file: Path = typer.Option(..., "--file", help="JSON with the fields to change (the rest is kept)."),
        relay: str = AdminRelayOption,
        token_file: Path | None = TokenFileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Change a channel's policy; every device is told."""
        token = admin_token(token_file)
        changes = _read_policy(file, as_json)

        async def body() -> dict[str, Any]:
            async with AdminClient(relay, token) as admin:
                view: dict[str, Any] = await admin.api.request(
                    "PUT", f"/v1/admin/channels/{channel}/policy", json_body=changes, admin_token=token
                )
                return view

        view = run(body, as_json=as_json)
        if as_json:
            emit_json(view)
        else:
            print_policy(view)


def _read_policy(file: Path, as_json: bool) -> dict[str, Any]:
    try:
        changes = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"cannot read a JSON policy from {file}: {exc}", EXIT_USAGE, as_json=as_json)
    if not isinstance(changes, dict):
        fail("the policy file must hold a JSON object", EXIT_USAGE, as_json=as_json)
    return changes


def print_policy(view: dict[str, Any]) -> None:
    policy = view["policy"]
    console.print(f"channel {view['channel']} · policy version {view['version']} · {view['mode']} mode")
    table = Table(title="Deadlines (seconds after the relay accepted the message)")
    for col in ("precedence", "deliver", "acknowledge", "crisis: deliver", "crisis: acknowledge", "word cap"):
        table.add_column(col)
    for p in ("FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"):
        n, c = policy["normal"]["deadlines"][p], policy["crisis"]["deadlines"][p]
        table.add_row(
            p,
            str(n["deliver_s"]),
            str(n["ack_s"] if n["ack_s"] is not None else "not required"),
            str(c["deliver_s"]),
            str(c["ack_s"]),
            str(policy["word_caps"].get(p, "—")),
        )
    console.print(table)
    for mode in ("normal", "crisis"):
        m = policy[mode]
        console.print(
            f"{mode}: link test every {m['link_test_interval_s']} s "
            f"(answer within {m['link_test_timeout_s']} s), "
            f"escalations repeat every {m['escalation_repeat_s']} s"
        )
    auto = policy["auto_crisis"]
    console.print(
        f"automatic crisis: on FLASH {auto['on_flash']}, on a missed link test {auto['on_missed_link_test']}"
    )
    for c in policy["checkins"]:
        days = ", ".join(c["days"]) or "every day"
        console.print(
            f"check-in {c['id']}: {days} at {', '.join(c['times'])} UTC, "
            f"answer within {c['answer_within_s']} s"
        )
