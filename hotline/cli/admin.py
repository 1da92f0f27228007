"""``hotline admin …``: channels, members, invites and revocations, with the relay's admin token."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hotline.cli.common import EXIT_USAGE, JsonOption, console, emit_json, fail, fmt_ms, run
from hotline.client import AdminClient
from hotline.client.admin import read_admin_token

ROLES = ("principal", "facilitator", "operator", "controller")

admin_app = typer.Typer(
    help="Manage channels, members, invites and revocations (needs the admin token).", no_args_is_help=True
)
channel_app = typer.Typer(help="Create and list channels.", no_args_is_help=True)
admin_app.add_typer(channel_app, name="channel")

RelayOption = typer.Option(
    "http://127.0.0.1:8000", "--relay", envvar="HOTLINE_RELAY_URL", help="Relay base URL."
)
TokenFileOption = typer.Option(
    None, "--admin-token-file", help="File holding the admin token (or set HOTLINE_ADMIN_TOKEN)."
)


def admin_token(path: Path | None) -> str:
    if path is not None:
        return read_admin_token(path)
    if token := os.environ.get("HOTLINE_ADMIN_TOKEN"):
        return token.strip()
    fail(
        "give --admin-token-file PATH or set HOTLINE_ADMIN_TOKEN (the relay prints the file's path)",
        EXIT_USAGE,
    )


def parse_members(specs: list[str]) -> dict[str, str]:
    members: dict[str, str] = {}
    for spec in specs:
        name, _, role = spec.partition("=")
        if not name or role not in ROLES:
            fail(f"--member {spec!r}: use NAME=ROLE with ROLE one of {', '.join(ROLES)}", EXIT_USAGE)
        if name in members:
            fail(f"--member {name} given twice", EXIT_USAGE)
        members[name] = role
    return members


def print_invites(invites: list[dict[str, Any]]) -> None:
    table = Table(title="Enrollment invites (each works once)")
    for col in ("member", "role", "code", "browser link", "expires"):
        table.add_column(col, overflow="fold")
    for inv in invites:
        table.add_row(inv["member"], inv["role"], inv["code"], inv["url"], fmt_ms(inv["expires_ms"]))
    console.print(table)


@channel_app.command("create")
def channel_create(
    name: str = typer.Argument(..., help="Channel id, e.g. delhi-islamabad."),
    member: list[str] = typer.Option(..., "--member", "-m", help="NAME=ROLE (repeat)."),
    title: str | None = typer.Option(None, "--title", help="A human title."),
    invite_ttl: int | None = typer.Option(None, "--invite-ttl", help="Invite lifetime in seconds."),
    relay: str = RelayOption,
    token_file: Path | None = TokenFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a channel with its members; prints one enrollment invite per member."""
    members = parse_members(member)
    token = admin_token(token_file)

    async def body() -> dict[str, Any]:
        async with AdminClient(relay, token) as admin:
            return await admin.create_channel(name, members, title=title, invite_ttl_s=invite_ttl)

    result = run(body, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        console.print(f"Channel [bold]{name}[/] created.")
        print_invites(result["invites"])


@channel_app.command("list")
def channel_list(
    relay: str = RelayOption, token_file: Path | None = TokenFileOption, as_json: bool = JsonOption
) -> None:
    """List channels."""
    _channels(relay, token_file, as_json)


@admin_app.command("channels")
def channels(
    relay: str = RelayOption, token_file: Path | None = TokenFileOption, as_json: bool = JsonOption
) -> None:
    """List channels with their members and devices."""
    _channels(relay, token_file, as_json)


def _channels(relay: str, token_file: Path | None, as_json: bool) -> None:
    token = admin_token(token_file)

    async def body() -> list[dict[str, Any]]:
        async with AdminClient(relay, token) as admin:
            return await admin.channels()

    result = run(body, as_json=as_json)
    if as_json:
        emit_json({"channels": result})
        return
    table = Table(title="Channels")
    for col in ("channel", "suite", "member", "role", "status", "devices"):
        table.add_column(col)
    for ch in result:
        for m in ch.get("members", []):
            devices = ", ".join(
                d["device"] + ("" if d["status"] == "active" else f" ({d['status']})")
                for d in m.get("devices", [])
            )
            table.add_row(ch["channel"], ch["suite"], m["member"], m["role"], m["status"], devices)
    console.print(table)


@admin_app.command("invite")
def invite(
    channel: str = typer.Argument(...),
    member: str = typer.Argument(...),
    role: str | None = typer.Option(None, "--role", help="Add MEMBER to the channel with this role first."),
    ttl: int | None = typer.Option(None, "--ttl", help="Invite lifetime in seconds."),
    relay: str = RelayOption,
    token_file: Path | None = TokenFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Issue an enrollment invite for a member's (next) device; with --role, add the member first."""
    if role is not None and role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}", EXIT_USAGE)
    token = admin_token(token_file)

    async def body() -> dict[str, Any]:
        async with AdminClient(relay, token) as admin:
            if role is not None:
                added = await admin.add_member(channel, member, role)
                return dict(added["invite"])
            return await admin.invite(channel, member, ttl)

    result = run(body, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        print_invites([result])


@admin_app.command("revoke")
def revoke(
    channel: str = typer.Argument(...),
    target: str = typer.Argument(..., help="MEMBER (all its devices) or MEMBER/DEVICE."),
    relay: str = RelayOption,
    token_file: Path | None = TokenFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Revoke a member or one device; takes effect at once and every member is told."""
    token = admin_token(token_file)
    member, _, device = target.partition("/")

    async def body() -> dict[str, Any]:
        async with AdminClient(relay, token) as admin:
            if device:
                return await admin.revoke_device(channel, member, device)
            return await admin.revoke_member(channel, member)

    result = run(body, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        console.print(f"revoked {target} in {channel}")


def register(app: typer.Typer) -> None:
    app.add_typer(admin_app, name="admin")
