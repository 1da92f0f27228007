"""``hotline demo``: a relay on embedded SQLite, a hotline channel, two desks and a verified exchange.

It runs the relay in this process on a free loopback port, with its data and the demo's CLI profiles
in a scratch directory (``./.hotline-demo`` by default) that each run starts afresh, so it can be run
again without clean-up. Every step goes through the real relay over HTTP with the real client library.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.table import Table

from hotline.cli.common import EXIT_FAILURE, console, fmt_ms, run
from hotline.client import AdminClient, DeskClient, FileProfileStore, MessageReceived, ReceiptReceived
from hotline.protocol import Intent, Precedence, TreeHead
from hotline.protocol.encoding import b64d

CHANNEL = "delhi-islamabad"
MEMBERS = {
    "delhi": "principal",
    "islamabad": "principal",
    "washington": "facilitator",
    "auditor": "operator",
    "excon": "controller",
}
QUESTION = (
    "Our radars show aircraft massing near the Line of Control. Are your air defence forces on "
    "heightened alert, and is any operation planned in the next 24 hours?"
)
ANSWER = (
    "No operation is planned. Air defence went to a higher readiness after your statement this "
    "morning; it is defensive only. We propose a DGMO call at 11:00 UTC."
)


def free_port(preferred: int = 0) -> int:
    """``preferred`` if it can be bound on loopback, else any free port."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port on 127.0.0.1")


class Step:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, text: str) -> None:
        self.n += 1
        console.print(f"[bold cyan]{self.n:>2}.[/] {text}")


async def wait_for(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("a demo step did not complete in time")
        await asyncio.sleep(0.05)


async def run_demo(workdir: Path, port: int, once: bool) -> bool:
    import uvicorn

    from hotline.relay.app import create_app
    from hotline.relay.settings import RelaySettings

    step = Step()
    if workdir.exists():
        shutil.rmtree(workdir)
    data_dir = workdir / "relay"
    home = workdir / "home"
    base = f"http://127.0.0.1:{port}"
    settings = RelaySettings(data_dir=data_dir, host="127.0.0.1", port=port, public_url=base)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("the relay did not start")
            await asyncio.sleep(0.02)
        step(f"Relay running at {base} on embedded SQLite ({data_dir / 'hotline.db'})")
        token = (data_dir / "admin.token").read_text().strip()
        async with AdminClient(base, token) as admin:
            created = await admin.create_channel(CHANNEL, MEMBERS, title="Delhi–Islamabad hotline")
        invites = {inv["member"]: inv for inv in created["invites"]}
        step(f"Channel [bold]{CHANNEL}[/] created; one enrollment invite per member:")
        table = Table(show_header=True)
        for col in ("member", "role", "browser enrollment link"):
            table.add_column(col, overflow="fold")
        for name, inv in invites.items():
            table.add_row(name, inv["role"], inv["url"])
        console.print(table)

        delhi = await DeskClient.enroll(
            base, invites["delhi"]["code"], "cli", FileProfileStore(home / "profiles" / "delhi")
        )
        islamabad = await DeskClient.enroll(
            base, invites["islamabad"]["code"], "cli", FileProfileStore(home / "profiles" / "islamabad")
        )
        step("Desks [cyan]delhi/cli[/] and [cyan]islamabad/cli[/] enrolled; each made its own keys locally")
        await delhi.refresh_directory()
        await islamabad.refresh_directory()
        number_d = delhi.safety_number_with("islamabad")
        number_i = islamabad.safety_number_with("delhi")
        assert number_d == number_i, "safety numbers differ"
        delhi.verify_contact("islamabad", number_i)
        islamabad.verify_contact("delhi", number_d)
        step(f"Safety numbers compared and equal on both sides: [bold]{number_d}[/]")

        sent = await delhi.send(
            ["islamabad"], QUESTION, precedence=Precedence.FLASH, intent=Intent.CLARIFICATION_REQUEST
        )
        step(
            f"delhi sent a FLASH clarification request {sent.message_id}; relay receipt at log index "
            f"{sent.log_index}, signature checked"
        )

        received: list[MessageReceived] = []
        received.extend(e for e in await islamabad.sync() if isinstance(e, MessageReceived))
        if not received or received[0].message_id != sent.message_id:
            raise RuntimeError("islamabad did not receive the message")
        step(
            f"islamabad verified and decrypted it and returned a signed [green]delivered[/] receipt: "
            f"“{received[0].text[:60]}…”"
        )

        await islamabad.acknowledge(sent.message_id, reply=ANSWER)
        step("A person at islamabad acknowledged it, with a reply")

        async def ladder_complete() -> bool:
            events = await delhi.sync()
            _ = [e for e in events if isinstance(e, ReceiptReceived)]
            steps = delhi.ladder(sent.message_id)["recipients"].get("islamabad/cli", {})
            return "delivered" in steps and "acknowledged" in steps

        await wait_for(ladder_complete)
        reply = [m for m in delhi.state.received.values() if m.get("in_reply_to") == sent.message_id]
        if not reply:
            raise RuntimeError("delhi did not receive the reply")
        step(f"delhi received the reply: “{reply[0]['text'][:60]}…”")

        ladder = delhi.ladder(sent.message_id)
        steps = ladder["recipients"]["islamabad/cli"]
        t0 = ladder["created_at_ms"]
        table = Table(title=f"Ladder of {sent.message_id} (FLASH)")
        for col in ("step", "time (UTC)", "after sending"):
            table.add_column(col)
        table.add_row("sent", fmt_ms(t0), "")
        table.add_row(
            "accepted by relay", fmt_ms(ladder["accepted_at_ms"]), f"{ladder['accepted_at_ms'] - t0} ms"
        )
        table.add_row(
            "delivered to islamabad/cli", fmt_ms(steps["delivered"]), f"{steps['delivered'] - t0} ms"
        )
        table.add_row(
            "acknowledged by islamabad", fmt_ms(steps["acknowledged"]), f"{steps['acknowledged'] - t0} ms"
        )
        console.print(table)

        await delhi.aclose()
        async with httpx.AsyncClient(timeout=10) as http:
            relay_key = b64d((await http.get(f"{base}/v1/relay")).json()["public_key"], field="public_key")
            # The relay signs a new tree head every few seconds while entries arrive.
            deadline = time.monotonic() + 15
            while True:
                head_json = (await http.get(f"{base}/v1/audit/tree-head")).json()
                head = TreeHead.from_json(head_json.get("tree_head", head_json))
                head.verify(relay_key)
                if head.size > ladder["log_index"]:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("no signed tree head covers the message")
                await asyncio.sleep(0.2)
        step(f"Audit log: signed tree head verified — {head.size} entries, root {head.root.hex()[:16]}…")
        await islamabad.aclose()

        console.print()
        console.print("[bold green]Demo complete.[/] Continue by hand in another terminal:")
        for line in (
            f"export HOTLINE_HOME={home} HOTLINE_RELAY_URL={base}",
            "hotline listen --profile islamabad",
            "hotline send --profile delhi --to islamabad --precedence immediate "
            "--intent reassurance 'No escalation.'",
            "hotline inbox --profile islamabad",
            "hotline status --profile delhi",
            "hotline contacts --profile delhi",
            f"hotline admin channels --admin-token-file {data_dir / 'admin.token'}",
        ):
            console.print("  " + line, soft_wrap=True, markup=False)
        if not once:
            console.print("\nThe relay keeps running; press Ctrl-C to stop it.")
            await serving
        return True
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        once: bool = typer.Option(
            False, "--once", help="Run the scripted exchange and exit (0 only if every step passed)."
        ),
        workdir: Path = typer.Option(
            Path(".hotline-demo"), "--dir", help="Scratch directory (recreated each run)."
        ),
        port: int = typer.Option(0, "--port", help="Relay port (0: a free one)."),
    ) -> None:
        """Start a relay, create the delhi–islamabad hotline, and run a verified FLASH exchange."""
        chosen = port or free_port(8000)
        try:
            ok = run(lambda: run_demo(workdir.resolve(), chosen, once))
        except (RuntimeError, TimeoutError, AssertionError) as exc:
            console.print(f"[bold red]demo failed:[/] {exc}")
            raise typer.Exit(EXIT_FAILURE) from exc
        if not ok:
            raise typer.Exit(EXIT_FAILURE)
