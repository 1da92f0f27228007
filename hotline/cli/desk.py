"""Desk commands: enroll a device, check contacts, send, read, acknowledge, listen, status."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hotline.cli.common import (
    EXIT_FAILURE,
    EXIT_PROFILE,
    EXIT_USAGE,
    JsonOption,
    ProfileOption,
    console,
    emit_json,
    fail,
    fmt_delta,
    fmt_ms,
    passphrase_from_env_or_prompt,
    profile_dir,
    profile_store,
    run,
)
from hotline.cli.hotline_cmds import (
    notice_json,
    print_banner,
    print_notice,
    print_status_extras,
    status_extras,
)
from hotline.client import (
    DeskClient,
    FileProfileStore,
    GapAlarm,
    KeyChanged,
    MessageReceived,
    MessageRefused,
    ReceiptReceived,
    RelayAlarm,
)
from hotline.client.desk import ClientEvent
from hotline.client.errors import ProfileError
from hotline.client.notices import NoticeReceived
from hotline.protocol import Intent, Precedence

RelayOption = typer.Option(
    "http://127.0.0.1:8000", "--relay", envvar="HOTLINE_RELAY_URL", help="Relay base URL."
)

INTENT_ALIASES = {
    "text": Intent.FREE_TEXT,
    "clarification": Intent.CLARIFICATION_REQUEST,
    "correction": Intent.CORRECTION,
    "restraint": Intent.RESTRAINT_NOTICE,
    "prenotification": Intent.PRE_NOTIFICATION,
    "pre-notification": Intent.PRE_NOTIFICATION,
    "reassurance": Intent.REASSURANCE,
    "proposal": Intent.PROPOSAL,
}


def parse_intent(value: str) -> Intent:
    value = value.strip().lower()
    if value in INTENT_ALIASES:
        return INTENT_ALIASES[value]
    try:
        return Intent(value.replace("-", "_"))
    except ValueError:
        allowed = ", ".join(sorted({*INTENT_ALIASES, *(i.value for i in Intent)}))
        fail(f"unknown intent {value!r}; choose one of: {allowed}", EXIT_USAGE)


def parse_precedence(value: str) -> Precedence:
    try:
        return Precedence(value.strip().upper())
    except ValueError:
        fail(f"unknown precedence {value!r}; choose FLASH, IMMEDIATE, PRIORITY or ROUTINE", EXIT_USAGE)


def open_desk(profile: str, *, as_json: bool = False) -> DeskClient:
    """Open a profile, or exit with code 5 and a clear message if it is missing or will not open."""
    store = profile_store(profile)
    if not store.exists():
        fail(
            f"no profile {profile!r} at {store.directory}; run `hotline enroll` first",
            EXIT_PROFILE,
            error_code="profile_missing",
            as_json=as_json,
        )
    try:
        return DeskClient.open(store)
    except ProfileError as exc:
        fail(exc.message, EXIT_PROFILE, error_code=exc.code, as_json=as_json)


def event_json(ev: ClientEvent) -> dict[str, Any]:
    if isinstance(ev, MessageReceived):
        return {
            "event": "message",
            "message_id": ev.message_id,
            "sender": str(ev.sender),
            "precedence": ev.precedence.value,
            "intent": ev.intent.value,
            "text": ev.text,
            "lang": ev.lang,
            "in_reply_to": ev.in_reply_to,
            "fields": ev.fields,
            "exercise": ev.exercise,
            "created_at_ms": ev.created_at_ms,
            "accepted_at_ms": ev.accepted_at_ms,
            "delivered_at_ms": ev.delivered_at_ms,
        }
    if isinstance(ev, ReceiptReceived):
        return {
            "event": "receipt",
            "message_id": ev.message_id,
            "kind": ev.kind.value,
            "issuer": str(ev.issuer),
            "at_ms": ev.at_ms,
            "reason": ev.reason,
            "reply_id": ev.reply_id,
        }
    if isinstance(ev, GapAlarm):
        return {"event": "gap", "sender": str(ev.sender), "first": ev.first, "last": ev.last, "text": ev.text}
    if isinstance(ev, MessageRefused):
        return {
            "event": "refused",
            "message_id": ev.message_id,
            "sender": str(ev.sender),
            "reason": ev.reason,
        }
    if isinstance(ev, KeyChanged):
        return {"event": "key_changed", "member": ev.member, "device": ev.device, "change": ev.change}
    if isinstance(ev, NoticeReceived):
        return notice_json(ev)
    assert isinstance(ev, RelayAlarm)
    return {"event": "relay_alarm", "reason": ev.reason}


def link_test_sent(as_json: bool) -> Callable[[str, str], None]:
    def show(to: str, message_id: str) -> None:
        if as_json:
            print(
                __import__("json").dumps({"event": "link_test_sent", "to": to, "message_id": message_id}),
                flush=True,
            )
        else:
            console.print(f"[dim]link test {message_id} sent to {to}[/]")

    return show


def print_event(ev: ClientEvent) -> None:
    if isinstance(ev, MessageReceived):
        tag = (
            "[bold white on red] FLASH [/]"
            if ev.precedence is Precedence.FLASH
            else f"[bold]{ev.precedence.value}[/]"
        )
        ex = " [yellow]EXERCISE[/]" if ev.exercise else ""
        console.print(f"{tag}{ex} from [cyan]{ev.sender}[/] · {ev.intent.value} · {ev.message_id}")
        console.print(f"  {ev.text}")
        if ev.precedence is Precedence.FLASH:
            sys.stdout.write("\a")
            sys.stdout.flush()
    elif isinstance(ev, ReceiptReceived):
        extra = f" reason={ev.reason}" if ev.reason else ""
        extra += f" reply={ev.reply_id}" if ev.reply_id else ""
        console.print(
            f"[green]{ev.kind.value}[/] by {ev.issuer} for {ev.message_id} at {fmt_ms(ev.at_ms)}{extra}"
        )
    elif isinstance(ev, GapAlarm):
        console.print(f"[bold red]GAP:[/] {ev.text}")
    elif isinstance(ev, MessageRefused):
        console.print(f"[bold red]REFUSED[/] message {ev.message_id} from {ev.sender}: {ev.reason}")
    elif isinstance(ev, KeyChanged):
        console.print(
            f"[bold red]KEY CHANGE:[/] {ev.member}/{ev.device} {ev.change.replace('_', ' ')} — compare "
            f"safety numbers (`hotline contacts`) before trusting it"
        )
    elif isinstance(ev, RelayAlarm):
        console.print(f"[bold red]RELAY ALARM:[/] {ev.reason}")
    elif isinstance(ev, NoticeReceived):
        print_notice(ev)


def register(app: typer.Typer) -> None:
    @app.command()
    def enroll(
        code: str = typer.Argument(..., help="Enrollment code from the invite (or the whole invite URL)."),
        relay: str = RelayOption,
        profile: str = ProfileOption,
        device: str = typer.Option("cli", "--device", help="A name for this device, e.g. laptop."),
        encrypt: bool = typer.Option(
            False, "--encrypt", help="Seal the key file with a passphrase (HOTLINE_PASSPHRASE or a prompt)."
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Generate this device's keys locally and enroll it with an invite code."""
        if "#enroll=" in code:
            code = code.split("#enroll=", 1)[1]
        passphrase = passphrase_from_env_or_prompt(confirm=True, needed=encrypt)
        store = FileProfileStore(profile_dir(profile), passphrase)

        async def body() -> dict[str, Any]:
            desk = await DeskClient.enroll(relay, code, device, store)
            async with desk:
                st = desk.state
                return {
                    "ok": True,
                    "profile": profile,
                    "path": str(store.directory),
                    "channel": st.channel,
                    "member": st.member,
                    "device": st.device,
                    "role": st.role,
                    "sealed": passphrase is not None,
                }

        result = run(body, as_json=as_json)
        if as_json:
            emit_json(result)
        else:
            console.print(
                f"Enrolled [cyan]{result['member']}/{result['device']}[/] ({result['role']}) in channel "
                f"[bold]{result['channel']}[/]; profile {profile!r} at {result['path']}"
            )

    @app.command()
    def whoami(profile: str = ProfileOption, as_json: bool = JsonOption) -> None:
        """Show this profile's device, channel, role, relay and key fingerprint."""
        from hotline.protocol import fingerprint

        desk = open_desk(profile, as_json=as_json)
        st = desk.state
        info = {
            "profile": profile,
            "relay": st.relay_url,
            "channel": st.channel,
            "member": st.member,
            "device": st.device,
            "role": st.role,
            "suite": st.suite,
            "fingerprint": fingerprint(desk.keys.signing_public_key),
        }
        if as_json:
            emit_json(info)
            return
        for key, value in info.items():
            console.print(f"[bold]{key:12}[/] {value}")

    @app.command()
    def contacts(profile: str = ProfileOption, as_json: bool = JsonOption) -> None:
        """Members, their devices and fingerprints, safety numbers, verified or not, key changes."""

        async def body() -> tuple[list[Any], list[Any]]:
            async with open_desk(profile, as_json=as_json) as desk:
                events = await desk.refresh_directory()
                return desk.contacts(), events

        people, events = run(body, as_json=as_json)
        if as_json:
            emit_json(
                {
                    "contacts": [
                        {
                            "member": c.member,
                            "role": c.role,
                            "status": c.status,
                            "verified": c.verified,
                            "key_change_pending": c.unaccepted_change,
                            "safety_number": c.safety_number,
                            "devices": [
                                {"device": d, "fingerprint": f, "status": s} for d, f, s in c.devices
                            ],
                        }
                        for c in people
                    ],
                    "events": [event_json(e) for e in events],
                }
            )
            return
        for ev in events:
            print_event(ev)
        table = Table(title="Contacts")
        for col in ("member", "role", "devices (fingerprint)", "trust", "safety number"):
            table.add_column(col)
        for c in people:
            trust = "[green]verified[/]" if c.verified else "unverified"
            if c.unaccepted_change:
                trust = "[bold red]KEY CHANGED[/]"
            devices = "\n".join(f"{d} {f}" + ("" if s == "active" else f" ({s})") for d, f, s in c.devices)
            table.add_row(c.member, c.role, devices, trust, c.safety_number or "")
        console.print(table)

    @app.command()
    def verify(
        member: str = typer.Argument(..., help="The member whose keys you compared."),
        number: str = typer.Argument(..., help="The safety number they read to you (60 digits)."),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Mark a contact verified after comparing safety numbers out of band."""

        async def body() -> bool:
            async with open_desk(profile, as_json=as_json) as desk:
                await desk.refresh_directory()
                return desk.verify_contact(member, number)

        ok = run(body, as_json=as_json)
        if as_json:
            emit_json({"ok": ok, "member": member})
        if not ok:
            if not as_json:
                console.print(
                    f"[bold red]MISMATCH:[/] the safety number for {member} does not match. Do not trust it."
                )
            raise typer.Exit(EXIT_FAILURE)
        if not as_json:
            console.print(f"[green]{member} verified.[/]")

    @app.command()
    def trust(
        member: str = typer.Argument(..., help="Member whose changed keys you accept without verifying."),
        profile: str = ProfileOption,
    ) -> None:
        """Accept a contact's key change without verifying it (it stays marked unverified)."""
        desk = open_desk(profile)
        desk.accept_key_change(member)
        console.print(f"Accepted the current keys of {member} (unverified).")

    @app.command()
    def send(
        text: str = typer.Argument(None, help="Message text; '-' or omitted reads stdin."),
        to: list[str] = typer.Option(..., "--to", help="Recipient member (repeat for several)."),
        precedence: str = typer.Option(
            "ROUTINE", "--precedence", help="FLASH, IMMEDIATE, PRIORITY or ROUTINE."
        ),
        intent: str = typer.Option(
            "text", "--intent", help="clarification, reassurance, correction, restraint, …"
        ),
        reply_to: str | None = typer.Option(None, "--reply-to", help="Message id this answers."),
        file: Path | None = typer.Option(None, "--file", help="Read the text from a file."),
        lang: str = typer.Option("en", "--lang", help="Language tag of the text."),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Seal and send a message; prints its id and the relay's signed receipt."""
        if file is not None:
            text = file.read_text(encoding="utf-8")
        elif text is None or text == "-":
            text = sys.stdin.read()
        text = text.strip("\n")
        if not text:
            fail("the message is empty", EXIT_USAGE, as_json=as_json)
        prec, purpose = parse_precedence(precedence), parse_intent(intent)

        async def body() -> dict[str, Any]:
            async with open_desk(profile, as_json=as_json) as desk:
                sent = await desk.send(
                    to, text, precedence=prec, intent=purpose, in_reply_to=reply_to, lang=lang
                )
                return {
                    "ok": True,
                    "message_id": sent.message_id,
                    "log_index": sent.log_index,
                    "accepted_at_ms": sent.receipt.at_ms,
                    "duplicate": sent.duplicate,
                    "recipients": [str(r) for r in sent.recipients],
                    "receipt": sent.receipt.to_json(),
                }

        result = run(body, as_json=as_json)
        if as_json:
            emit_json(result)
        else:
            console.print(
                f"sent {result['message_id']} · accepted by the relay at {fmt_ms(result['accepted_at_ms'])} "
                f"· log index {result['log_index']} · to {', '.join(result['recipients'])}"
            )

    @app.command()
    def inbox(
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
        all_: bool = typer.Option(False, "--all", help="Show acknowledged messages too."),
    ) -> None:
        """Fetch new messages (sending `delivered` receipts) and list received messages."""

        async def body() -> tuple[list[ClientEvent], dict[str, Any]]:
            async with open_desk(profile, as_json=as_json) as desk:
                events = await desk.sync()
                return events, desk.state.received

        events, received = run(body, as_json=as_json)
        rows = [
            {"message_id": mid, **{k: v for k, v in m.items() if k != "delivered_receipt"}}
            for mid, m in sorted(received.items(), key=lambda kv: kv[1]["accepted_at_ms"])
            if (all_ or m.get("acknowledged_at_ms") is None) and m.get("intent") != Intent.LINK_TEST.value
        ]
        if as_json:
            emit_json({"events": [event_json(e) for e in events], "messages": rows})
            return
        for ev in events:
            if not isinstance(ev, MessageReceived):
                print_event(ev)
        if not rows:
            console.print("No messages waiting for acknowledgement.")
            return
        table = Table(title="Inbox")
        for col in ("id", "from", "precedence", "intent", "text", "delivered", "acknowledged"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(
                r["message_id"],
                f"{r['sender']['member']}/{r['sender']['device']}",
                r["precedence"] + (" EXERCISE" if r["exercise"] else ""),
                r["intent"],
                r["text"],
                fmt_ms(r["delivered_at_ms"]),
                fmt_ms(r["acknowledged_at_ms"]),
            )
        console.print(table)

    @app.command()
    def ack(
        message_id: str = typer.Argument(..., help="Id of the received message."),
        reply: str | None = typer.Option(None, "--reply", help="Send this reply with the acknowledgement."),
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Acknowledge a received message as a person at this desk (optionally with a reply)."""

        async def body() -> dict[str, Any]:
            async with open_desk(profile, as_json=as_json) as desk:
                await desk.sync()
                receipt = await desk.acknowledge(message_id, reply)
                return {
                    "ok": True,
                    "message_id": message_id,
                    "acknowledged_at_ms": receipt.at_ms,
                    "reply_id": receipt.reply_id,
                }

        result = run(body, as_json=as_json)
        if as_json:
            emit_json(result)
        else:
            extra = f" with reply {result['reply_id']}" if result["reply_id"] else ""
            console.print(f"acknowledged {message_id}{extra}")

    @app.command()
    def listen(
        profile: str = ProfileOption,
        as_json: bool = JsonOption,
        count: int = typer.Option(0, "--count", help="Stop after this many messages (0: run until Ctrl-C)."),
        timeout: float = typer.Option(0, "--timeout", help="Stop after this many seconds (0: no limit)."),
        link_tests: bool = typer.Option(
            True,
            "--link-tests/--no-link-tests",
            help="Send this desk's link tests on the channel's schedule.",
        ),
    ) -> None:
        """Stream messages and receipts live; rings the bell on FLASH. Resumes after any drop.

        Answers the other desks' link tests by itself and sends this desk's on schedule (hourly; every
        minute in crisis mode). Shows escalations, crisis changes and check-ins as they come.
        """

        async def body() -> int:
            seen = 0
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            if timeout > 0:
                loop.call_later(timeout, stop.set)
            async with open_desk(profile, as_json=as_json) as desk:
                if not as_json:
                    st = desk.state
                    console.print(f"listening as {st.member}/{st.device} on {st.channel} (Ctrl-C to stop)")
                    print_banner(st)
                tester = (
                    asyncio.create_task(desk.watch.run_link_tests(stop, on_sent=link_test_sent(as_json)))
                    if link_tests
                    else None
                )
                try:
                    async for ev in desk.listen(stop=stop):
                        if as_json:
                            print(__import__("json").dumps(event_json(ev)), flush=True)
                        else:
                            print_event(ev)
                        if isinstance(ev, MessageReceived) and ev.intent is not Intent.LINK_TEST:
                            seen += 1
                            if count and seen >= count:
                                stop.set()
                finally:
                    stop.set()
                    if tester is not None:
                        await tester
            return seen

        run(body, as_json=as_json)

    @app.command()
    def status(profile: str = ProfileOption, as_json: bool = JsonOption) -> None:
        """Each of my sent messages with its ladder, and alarms (gaps, refusals, key changes)."""

        async def body() -> dict[str, Any]:
            async with open_desk(profile, as_json=as_json) as desk:
                await desk.sync()
                extras = await status_extras(desk)
                st = desk.state
                return {
                    "sent": {m: s for m, s in st.sent.items() if s.get("intent") != Intent.LINK_TEST.value},
                    "alarms": st.alarms[-50:],
                    "key_events": st.key_events[-50:],
                    "outbox": list(st.outbox),
                    **extras,
                }

        result = run(body, as_json=as_json)
        if as_json:
            emit_json(result)
            return
        print_status_extras(result)
        table = Table(title="Sent messages")
        for col in ("id", "to", "precedence", "accepted", "recipient", "delivered", "acknowledged"):
            table.add_column(col, overflow="fold")
        for mid, s in sorted(result["sent"].items(), key=lambda kv: kv[1]["created_at_ms"]):
            recipients = s["recipients"] or {"—": {}}
            for name, steps in recipients.items():
                delivered = steps.get("delivered")
                acked = steps.get("acknowledged")
                rejected = steps.get("rejected")
                table.add_row(
                    mid,
                    ", ".join(s["to"]),
                    s["precedence"],
                    fmt_delta(s["created_at_ms"], s["accepted_at_ms"]),
                    name,
                    f"[red]REJECTED {steps.get('reason')}[/]"
                    if rejected
                    else fmt_delta(s["created_at_ms"], delivered),
                    fmt_delta(s["created_at_ms"], acked) or "[yellow]waiting[/]",
                )
        console.print(table)
        for alarm in result["alarms"]:
            console.print(f"[red]alarm[/] {fmt_ms(alarm.get('at_ms'))} {alarm}")
