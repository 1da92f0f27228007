"""``hotline audit …``: export the relay's audit log, verify it offline, watch tree heads, fetch proofs.

* ``export``  — the log as JSON Lines (docs/AUDITING.md), as an operator device (``--profile``, its
  channel; other channels' entries as leaf hashes) or as the admin (``--admin-token-file``, everything);
* ``verify``  — offline: recompute the tree, check every tree head, envelope, receipt and prekey
  signature against the keys the log records, the numbering, the history; the first bad index and why;
* ``head``, ``check``, ``exchange`` — a desk's view: the newest verified tree head, consistency and
  inclusion checks, sending its head to the other desks (split-view detection);
* ``proof inclusion`` / ``proof consistency`` — fetch a proof and check it here;
* ``bench``   — a synthetic signed log, and how fast ``verify`` checks it (docs/PERFORMANCE.md).

Exit codes: those of ``hotline.cli.common``; ``verify`` and ``check`` exit 1 when the log does not
check out (``--json`` says why).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hotline.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    JsonOption,
    ProfileOption,
    console,
    emit_json,
    err_console,
    fail,
    fmt_ms,
    run,
)
from hotline.client import DeskClient
from hotline.client.admin import read_admin_token
from hotline.client.api import RelayAPI
from hotline.client.audit import AuditAlarm
from hotline.client.errors import ClientError
from hotline.protocol import TreeHead, fingerprint
from hotline.protocol.audit import parse_entry
from hotline.protocol.auditlog import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    AuditLogVerifier,
    AuditReport,
    InlineSignatureChecker,
    SignatureChecker,
    SignatureFailure,
    SignatureJob,
    check_signature_jobs,
    entry_line,
    key_events,
    record_line,
    redacted_line,
    relay_id_for_key,
)
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.errors import ProtocolError
from hotline.protocol.merkle import MerkleProofError, leaf_hash, verify_consistency, verify_inclusion

audit_app = typer.Typer(
    help="The relay's tamper-evident audit log: export, verify offline, tree heads, proofs.",
    no_args_is_help=True,
)
proof_app = typer.Typer(
    help="Fetch an inclusion or consistency proof and check it here.", no_args_is_help=True
)
audit_app.add_typer(proof_app, name="proof")

PAGE = 1000
PROGRESS_MIN_BYTES = 4 * 1024 * 1024
"""Files at least this large show a progress bar (unless --no-progress or --json)."""

RelayOption = typer.Option(
    "http://127.0.0.1:8000", "--relay", envvar="HOTLINE_RELAY_URL", help="Relay base URL (admin mode)."
)
OptionalProfile = typer.Option(
    None, "--profile", "-p", help="Use this enrolled device (an operator's, for export)."
)
TokenFileOption = typer.Option(
    None,
    "--admin-token-file",
    help="Export as the admin: file holding the admin token (or HOTLINE_ADMIN_TOKEN).",
)


# --- export --------------------------------------------------------------------------------------


class _Source:
    """Where the export reads from: an operator device's channel view, or the admin's whole log."""

    def __init__(self, desk: DeskClient | None, api: RelayAPI, admin_token: str | None) -> None:
        self.desk, self.api, self.admin_token = desk, api, admin_token

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.api.request("GET", path, auth=None, params=params)

    async def entries(self, start: int, channel: str | None) -> Any:
        params: dict[str, Any] = {"start": start, "limit": PAGE}
        if self.desk is not None:
            return await self.desk._call("GET", "/audit/entries", params=params)
        if channel:
            params["channel"] = channel
        return await self.api.request(
            "GET", "/v1/admin/audit/entries", admin_token=self.admin_token, params=params
        )


async def export_log(
    source: _Source, out: Path, *, channel: str | None, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Write the log, up to the relay's newest signed tree head, as an export file at ``out``."""
    info = await source.get("/v1/relay")
    relay_key = b64d(info["public_key"], field="public_key", max_bytes=4096)
    if source.desk is not None and info["public_key"] != source.desk.state.relay_public_key:
        raise ClientError(
            "the relay's key is not the one this profile enrolled with; refusing to export", code="relay_key"
        )
    head = TreeHead.from_json((await source.get("/v1/audit/tree-head"))["tree_head"])
    head.verify(relay_key)
    size = head.size
    tmp = out.with_name(f".{out.name}.part")
    accepted: list[bytes] = []
    events: list[bytes] = []
    heads: list[bytes] = []
    withheld = 0
    with tmp.open("wb") as f:
        f.write(
            record_line(
                "header",
                {
                    "format": EXPORT_FORMAT,
                    "v": EXPORT_VERSION,
                    "relay_id": relay_id_for_key(relay_key),
                    "relay_public_key": b64e(relay_key),
                    "channel": channel,
                    "exported_at_ms": time.time_ns() // 1_000_000,
                    "size": size,
                    "source": source.api.base_url,
                },
            )
        )
        index = written = 0  # the next index to ask for; the entry lines written
        while index < size:
            page = await source.entries(index, channel)
            rows = [r for r in page["entries"] if r["index"] < size]
            if not rows:
                break  # fewer entries than the relay's own tree head: `verify` names what is missing
            for row in rows:
                # Written as the relay numbers them, holes and all: `verify` names what is wrong.
                at = int(row["index"])
                if "entry" in row:
                    raw = b64d(row["entry"], field="entry", max_bytes=1024 * 1024)
                    f.write(entry_line(at, raw))
                    with contextlib.suppress(ProtocolError):  # an entry this client does not know
                        events.extend(record_line("key-event", ev) for ev in key_events(parse_entry(raw), at))
                    if "accepted" in row:
                        accepted.append(record_line("accepted", {"index": at, "receipt": row["accepted"]}))
                else:
                    withheld += 1
                    f.write(redacted_line(at, b64d(row["leaf_hash"], field="leaf_hash", max_bytes=32)))
                written += 1
                index = at + 1
            if progress:
                progress(index, size)
        start = 0
        while True:
            page = await source.get("/v1/audit/tree-heads", {"start_size": start, "limit": PAGE})
            rows = page["tree_heads"]
            heads.extend(
                record_line("tree-head", {"tree_head": r["tree_head"]}) for r in rows if r["size"] <= size
            )
            if len(rows) < PAGE or rows[-1]["size"] >= size:
                break
            start = rows[-1]["size"] + 1
        f.writelines(heads)
        f.writelines(accepted)
        f.writelines(events)
        f.write(
            record_line(
                "end",
                {
                    "entries": written,
                    "tree_heads": len(heads),
                    "accepted": len(accepted),
                    "key_events": len(events),
                },
            )
        )
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(out)
    return {
        "ok": True,
        "out": str(out),
        "entries": written,
        "complete": written == size,
        "withheld": withheld,
        "tree_heads": len(heads),
        "accepted": len(accepted),
        "key_events": len(events),
        "channel": channel,
        "relay_id": relay_id_for_key(relay_key),
        "tree_head": {"size": head.size, "root": b64e(head.root), "at_ms": head.at_ms, **head.to_json()},
    }


def _admin_token(path: Path | None) -> str | None:
    if path is not None:
        return read_admin_token(path)
    return os.environ.get("HOTLINE_ADMIN_TOKEN", "").strip() or None


@audit_app.command("export")
def export(
    out: Path = typer.Option(..., "--out", "-o", help="File to write (JSON Lines)."),
    profile: str | None = OptionalProfile,
    token_file: Path | None = TokenFileOption,
    relay: str = RelayOption,
    channel: str | None = typer.Option(
        None, "--channel", help="Admin: export one channel (others as hashes)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress on a terminal."),
    as_json: bool = JsonOption,
) -> None:
    """Export the audit log up to the relay's newest tree head (an operator's channel, or all as admin)."""
    from hotline.cli.desk import open_desk

    token = None if profile else _admin_token(token_file)
    if profile is None and token is None:
        fail("give --profile (an operator device) or --admin-token-file", EXIT_USAGE, as_json=as_json)

    async def body() -> dict[str, Any]:
        if profile is not None:
            async with open_desk(profile, as_json=as_json) as desk:
                alarms = await desk.audit.check()
                src = _Source(desk, desk.api, None)
                with _progress_bar(progress and not as_json, "exporting") as tick:
                    result = await export_log(src, out, channel=desk.state.channel, progress=tick)
                result["alarms"] = [a.reason for a in alarms]
                return result
        api = RelayAPI(relay)
        try:
            with _progress_bar(progress and not as_json, "exporting") as tick:
                return await export_log(_Source(None, api, token), out, channel=channel, progress=tick)
        finally:
            await api.aclose()

    result = run(body, as_json=as_json)
    if as_json:
        emit_json(result)
        return
    for alarm in result.get("alarms", []):
        console.print(f"[bold red]RELAY ALARM:[/] {alarm}")
    withheld = f" ({result['withheld']} of other channels as leaf hashes)" if result["withheld"] else ""
    console.print(
        f"exported {result['entries']} entries{withheld}, {result['tree_heads']} tree heads, "
        f"{result['accepted']} relay receipts, {result['key_events']} key events to {result['out']}"
    )
    console.print(
        f"newest tree head: size {result['tree_head']['size']}, root {result['tree_head']['root']}, "
        f"signed {fmt_ms(result['tree_head']['at_ms'])}"
    )


# --- verify --------------------------------------------------------------------------------------


class PoolSignatureChecker:
    """Runs signature jobs in worker processes, keeping a bounded number of batches in flight."""

    def __init__(self, executor: ProcessPoolExecutor, in_flight: int) -> None:
        self._executor = executor
        self._in_flight = in_flight
        self._futures: deque[Future[list[SignatureFailure]]] = deque()
        self._failures: list[SignatureFailure] = []

    def submit(self, jobs: list[SignatureJob]) -> None:
        while len(self._futures) >= self._in_flight:
            self._failures.extend(self._futures.popleft().result())
        self._futures.append(self._executor.submit(check_signature_jobs, jobs))

    def failures(self) -> list[SignatureFailure]:
        while self._futures:
            self._failures.extend(self._futures.popleft().result())
        return self._failures


@contextmanager
def _progress_bar(enabled: bool, what: str) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled or not err_console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn(f"{what}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield tick


def verify_file(
    path: Path,
    *,
    jobs: int = 1,
    check_entries: bool = True,
    expected_relay_key: bytes | None = None,
    extra_heads: list[tuple[str, TreeHead]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Stream the file through :class:`AuditLogVerifier`; signatures on ``jobs`` processes."""
    total = path.stat().st_size
    executor = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 and check_entries else None
    checker: SignatureChecker = (
        PoolSignatureChecker(executor, in_flight=4 * jobs) if executor else InlineSignatureChecker()
    )
    verifier = AuditLogVerifier(
        check_entries=check_entries,
        signature_checker=checker,
        expected_relay_key=expected_relay_key,
        extra_tree_heads=extra_heads or [],
        batch_size=512,
    )
    try:
        with path.open("rb") as f:
            for count, line in enumerate(f, 1):
                verifier.feed(line)
                if progress is not None and count % 4096 == 0:
                    progress(f.tell(), total)
        return verifier.finish()
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)


def _read_head(path: Path) -> TreeHead:
    """A tree head from a file: ``{"body","sig"}``, or the JSON of ``hotline audit head --json``."""
    import json

    obj = json.loads(path.read_bytes())
    if isinstance(obj, dict) and "tree_head" in obj and isinstance(obj["tree_head"], dict):
        obj = obj["tree_head"]
    if isinstance(obj, dict):
        obj = {"body": obj.get("body"), "sig": obj.get("sig")}
    return TreeHead.from_json(obj)


def _print_report(report: AuditReport, path: Path) -> None:
    status = "[bold green]OK[/]" if report.ok else "[bold red]FAILED[/]"
    console.print(f"{status} — {path}")
    if report.relay_public_key:
        console.print(
            f"relay       {report.relay_id}  (key fingerprint {fingerprint(report.relay_public_key)})"
        )
    span = ""
    if report.first_at_ms is not None:
        span = f", {fmt_ms(report.first_at_ms)} → {fmt_ms(report.last_at_ms)}"
    withheld = f" ({report.withheld} of other channels as leaf hashes)" if report.withheld else ""
    scope = f" · channel {report.channel}" if report.channel else ""
    console.print(f"entries     {report.entries:,}{withheld}{span}{scope}")
    head = report.newest_tree_head
    if head is not None:
        console.print(
            f"tree heads  {report.tree_heads:,} signed; the newest "
            f"(size {head.size:,}, {fmt_ms(head.at_ms)}) "
            f"covers {report.covered:,} of {report.entries:,} entries"
        )
    if report.checked_signatures:
        sigs = " · ".join(f"{k} {v:,}" for k, v in sorted(report.signatures.items()))
        console.print(f"signatures  {sigs}")
    elif not report.checked_entries:
        console.print("entries     not checked (--tree-only): only the tree and the tree heads")
    if report.types:
        console.print("types       " + " · ".join(f"{k} {v:,}" for k, v in sorted(report.types.items())))
    for channel, members in sorted(report.channels.items()):
        table = Table(title=f"channel {channel}", title_justify="left")
        for col in ("member", "role", "devices", "sent", "received", "delivered", "acknowledged", "rejected"):
            table.add_column(col, justify="right" if col not in {"member", "role", "devices"} else "left")
        table.add_column("auth refused", justify="right")
        for name, m in sorted(members.items()):
            table.add_row(
                name + (" (revoked)" if m.revoked else ""),
                m.role,
                ", ".join(m.devices),
                str(m.sent),
                str(m.received),
                str(m.receipts.get("delivered", 0)),
                str(m.receipts.get("acknowledged", 0)),
                str(m.receipts.get("rejected", 0)),
                str(m.auth_refused),
            )
        console.print(table)
    console.print(f"escalations {report.escalations}")
    for warning in report.warnings[:10]:
        console.print(f"[yellow]warning:[/] {warning}")
    if report.problems:
        first = report.problems[0]
        where = (
            f"index {first.index}"
            if first.exact
            else f"index {first.index}–{first.last_index}"
            if first.index is not None
            else f"line {first.line}"
            if first.line is not None
            else "the file"
        )
        console.print(
            f"[bold red]FIRST BAD {where.upper() if first.index is None else where}: {first.kind.value}[/]"
        )
        console.print(f"  {first.reason}")
        rest = len(report.problems) - 1 + report.more_problems
        for p in report.problems[1:10]:
            console.print(f"  also: {p}")
        if rest > 9:
            console.print(f"  … {rest - 9} more (--json lists them)")
    else:
        console.print("[green]The log is complete and unaltered as far as its signed tree heads reach.[/]")


@audit_app.command("verify")
def verify(
    file: Path = typer.Argument(..., help="An export file (hotline audit export)."),
    tree_head: list[Path] = typer.Option(
        [], "--tree-head", help="A tree head obtained elsewhere (e.g. `hotline audit head --json` of a desk)."
    ),
    relay_key: str | None = typer.Option(
        None, "--relay-key", help="The relay's public key (base64url) as known out of band."
    ),
    jobs: int = typer.Option(
        os.cpu_count() or 1, "--jobs", "-j", min=1, help="Processes checking signatures."
    ),
    tree_only: bool = typer.Option(
        False, "--tree-only", help="Only recompute the tree and check tree heads."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress on a terminal."),
    as_json: bool = JsonOption,
) -> None:
    """Verify an exported log offline; prints a summary, or the first bad index and why (exit 1)."""
    if not file.is_file():
        fail(f"no such file: {file}", EXIT_USAGE, as_json=as_json)
    try:
        extra = [(f"from {p.name}", _read_head(p)) for p in tree_head]
        expected = b64d(relay_key, field="--relay-key", max_bytes=4096) if relay_key else None
    except (OSError, ValueError, ProtocolError) as exc:
        fail(f"cannot read a tree head or key: {exc}", EXIT_USAGE, as_json=as_json)
    big = file.stat().st_size >= PROGRESS_MIN_BYTES
    started = time.perf_counter()
    with _progress_bar(progress and big and not as_json, "verifying") as tick:
        report = verify_file(
            file,
            jobs=jobs,
            check_entries=not tree_only,
            expected_relay_key=expected,
            extra_heads=extra,
            progress=tick,
        )
    seconds = time.perf_counter() - started
    if as_json:
        emit_json({**report.to_json(), "seconds": round(seconds, 3)})
    else:
        _print_report(report, file)
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


# --- a desk's view -------------------------------------------------------------------------------


def _head_out(head: TreeHead | None) -> dict[str, Any] | None:
    if head is None:
        return None
    return {"size": head.size, "root": b64e(head.root), "at_ms": head.at_ms, "tree_head": head.to_json()}


@audit_app.command("head")
def head(
    profile: str | None = OptionalProfile,
    relay: str = RelayOption,
    as_json: bool = JsonOption,
) -> None:
    """The newest tree head: as a desk verified it (--profile), or as the relay signs it now."""
    from hotline.cli.desk import open_desk

    async def body() -> dict[str, Any]:
        if profile is None:
            api = RelayAPI(relay)
            try:
                info = await api.request("GET", "/v1/relay", auth=None)
                raw = await api.request("GET", "/v1/audit/tree-head", auth=None)
            finally:
                await api.aclose()
            latest = TreeHead.from_json(raw["tree_head"])
            latest.verify(b64d(info["public_key"], field="public_key", max_bytes=4096))
            return {"ok": True, "source": "relay", "relay_id": info["relay_id"], **(_head_out(latest) or {})}
        async with open_desk(profile, as_json=as_json) as desk:
            alarms = await desk.audit.check()
            verified = desk.audit.verified_head()
            return {
                "ok": not alarms,
                "source": f"profile {profile}",
                "relay_id": desk.state.relay_id,
                **(_head_out(verified) or {"size": None}),
                "alarms": [a.reason for a in alarms],
            }

    result = run(body, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        for alarm in result.get("alarms", []):
            console.print(f"[bold red]RELAY ALARM:[/] {alarm}")
        if result.get("size") is None:
            console.print("no tree head verified yet")
        else:
            console.print(
                f"tree head ({result['source']}): size {result['size']}, root {result['root']}, "
                f"signed {fmt_ms(result['at_ms'])}"
            )
    if not result["ok"]:
        raise typer.Exit(EXIT_FAILURE)


@audit_app.command("check")
def check(profile: str = ProfileOption, as_json: bool = JsonOption) -> None:
    """Check the relay as this desk: consistency of its newest head, inclusion of own messages."""
    from hotline.cli.desk import open_desk

    async def body() -> dict[str, Any]:
        async with open_desk(profile, as_json=as_json) as desk:
            events = await desk.audit.check()
            alarms = [e for e in events if isinstance(e, AuditAlarm)]
            return {
                "ok": not alarms and not desk.audit.alarms(),
                "new_alarms": [{"kind": a.kind, "reason": a.reason} for a in alarms],
                **desk.audit.summary(),
            }

    result = run(body, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        head = result["tree_head"]
        if head:
            console.print(f"verified tree head: size {head['size']}, signed {fmt_ms(head['at_ms'])}")
        console.print(
            f"own messages and receipts proven in the log: {result['included']} (pending {result['pending']})"
        )
        for peer, seen in sorted(result["peers"].items()):
            console.print(
                f"tree head from {peer}: size {seen['tree_head']['size']} — {seen['status']} "
                f"({fmt_ms(seen['at_ms'])})"
            )
        for alarm in result["alarms"]:
            console.print(f"[bold red]ALARM {alarm['kind']}:[/] {alarm['reason']} ({fmt_ms(alarm['at_ms'])})")
        if result["ok"]:
            console.print("[green]no audit alarms[/]")
    if not result["ok"]:
        raise typer.Exit(EXIT_FAILURE)


@audit_app.command("exchange")
def exchange(
    to: list[str] = typer.Option(
        ..., "--to", help="Member to send this desk's verified tree head to (repeat)."
    ),
    profile: str = ProfileOption,
    as_json: bool = JsonOption,
) -> None:
    """Send this desk's newest verified tree head to other desks (a signed link test)."""
    from hotline.cli.desk import open_desk

    async def body() -> dict[str, Any]:
        async with open_desk(profile, as_json=as_json) as desk:
            sent = await desk.audit.send_tree_head(to)
            verified = desk.audit.verified_head()
            return {"ok": True, "message_id": sent.message_id, "tree_head": _head_out(verified)}

    result = run(body, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"sent tree head of size {result['tree_head']['size']} to {', '.join(to)} "
            f"({result['message_id']})"
        )


# --- proofs --------------------------------------------------------------------------------------


@proof_app.command("inclusion")
def proof_inclusion(
    profile: str = ProfileOption,
    index: int | None = typer.Option(None, "--index", min=0, help="Log index of the entry."),
    message_id: str | None = typer.Option(None, "--message-id", help="A message of this desk's member."),
    size: int | None = typer.Option(None, "--size", min=1, help="Tree size (default: the verified head's)."),
    as_json: bool = JsonOption,
) -> None:
    """Prove that an entry is in the log this desk verified; checks the proof here."""
    from hotline.cli.desk import open_desk

    if (index is None) == (message_id is None):
        fail("give exactly one of --index and --message-id", EXIT_USAGE, as_json=as_json)

    async def body() -> dict[str, Any]:
        async with open_desk(profile, as_json=as_json) as desk:
            await desk.audit.check()
            verified = desk.audit.verified_head()
            want = size or (verified.size if verified else None)
            params: dict[str, Any] = {"size": want} if want else {}
            params.update({"index": index} if index is not None else {"message_id": message_id})
            answer = await desk._call("GET", "/audit/inclusion", params=params)
            raw = b64d(answer["entry"], field="entry", max_bytes=1024 * 1024)
            proof = [b64d(p, field="proof", max_bytes=32) for p in answer["proof"]]
            root = None
            if verified is not None and verified.size == answer["size"]:
                root = verified.root
            elif answer.get("tree_head"):
                signed = TreeHead.from_json(answer["tree_head"])
                signed.verify(b64d(desk.state.relay_public_key, field="relay_public_key", max_bytes=4096))
                root = signed.root
            checked = False
            if root is not None:
                verify_inclusion(leaf_hash(raw), answer["index"], answer["size"], proof, root)
                checked = True
            return {
                "ok": checked,
                "index": answer["index"],
                "size": answer["size"],
                "leaf_hash": b64e(leaf_hash(raw)),
                "proof": answer["proof"],
                "entry": raw.decode("utf-8", "replace"),
                "checked_against": b64e(root) if root else None,
            }

    try:
        result = run(body, as_json=as_json)
    except MerkleProofError as exc:
        fail(
            f"the inclusion proof does not verify: {exc}",
            EXIT_FAILURE,
            error_code="bad_proof",
            as_json=as_json,
        )
    if as_json:
        emit_json(result)
    else:
        console.print(f"entry {result['index']} of {result['size']}: {result['entry']}")
        console.print(f"proof ({len(result['proof'])} hashes): {' '.join(result['proof'])}")
        if result["ok"]:
            console.print(f"[green]verified[/] against the signed root {result['checked_against']}")
        else:
            console.print("[yellow]not checked: no signed tree head of that size is known here[/]")
    if not result["ok"]:
        raise typer.Exit(EXIT_FAILURE)


@proof_app.command("consistency")
def proof_consistency(
    old: int = typer.Option(..., "--old", min=0, help="Size of the older signed tree head."),
    new: int | None = typer.Option(None, "--new", min=0, help="Size of the newer one (default: newest)."),
    profile: str = ProfileOption,
    as_json: bool = JsonOption,
) -> None:
    """Prove that the log of size --old is a prefix of the log of size --new; checks it here."""
    from hotline.cli.desk import open_desk

    async def body() -> dict[str, Any]:
        async with open_desk(profile, as_json=as_json) as desk:
            key = b64d(desk.state.relay_public_key, field="relay_public_key", max_bytes=4096)
            newest = await desk.audit.fetch_latest()
            new_size = new if new is not None else (newest.size if newest else 0)
            heads = []
            for s in (old, new_size):
                h = TreeHead.from_json(
                    (await desk.api.request("GET", f"/v1/audit/tree-heads/{s}", auth=None))["tree_head"]
                )
                h.verify(key)
                heads.append(h)
            answer = await desk._call(
                "GET", "/audit/consistency", params={"old_size": old, "new_size": new_size}
            )
            proof = [b64d(p, field="proof", max_bytes=32) for p in answer["proof"]]
            verify_consistency(old, new_size, heads[0].root, heads[1].root, proof)
            return {"ok": True, "old_size": old, "new_size": new_size, "proof": answer["proof"]}

    try:
        result = run(body, as_json=as_json)
    except MerkleProofError as exc:
        fail(
            f"SPLIT VIEW: the consistency proof does not verify: {exc}",
            EXIT_FAILURE,
            error_code="bad_proof",
            as_json=as_json,
        )
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"[green]verified[/]: the log of {result['old_size']} entries is a prefix of the log of "
            f"{result['new_size']} ({len(result['proof'])} hashes)"
        )


# --- bench ---------------------------------------------------------------------------------------


@audit_app.command("bench")
def bench(
    messages: int = typer.Option(
        33_400, "--messages", min=1, help="Messages (3 entries each: envelope, 2 receipts)."
    ),
    jobs: int = typer.Option(
        os.cpu_count() or 1, "--jobs", "-j", min=1, help="Processes checking signatures."
    ),
    keep: Path | None = typer.Option(None, "--file", help="Write (or reuse) the synthetic log here."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Runs of each measurement; the best is reported."),
    as_json: bool = JsonOption,
) -> None:
    """Generate a synthetic signed log and measure `hotline audit verify` (docs/PERFORMANCE.md)."""
    import platform
    import tempfile

    from hotline.cli.audit_bench import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        path = keep or Path(tmp) / "bench.jsonl"
        started = time.perf_counter()
        if keep is None or not keep.exists():
            synthesize(path, messages=messages)
        made = time.perf_counter() - started

        def measure(**kw: Any) -> tuple[float, float, AuditReport]:
            best_wall, best_cpu, report = float("inf"), float("inf"), None
            for _ in range(rounds):
                wall0, cpu0 = time.perf_counter(), time.process_time()
                report = verify_file(path, **kw)
                best_wall = min(best_wall, time.perf_counter() - wall0)
                best_cpu = min(best_cpu, time.process_time() - cpu0)
            assert report is not None
            if not report.ok:
                raise typer.Exit(EXIT_FAILURE)
            return best_wall, best_cpu, report

        tree_wall, _, report = measure(jobs=1, check_entries=False)
        one_wall, _, _ = measure(jobs=1, check_entries=True)
        full_wall, _, full = measure(jobs=jobs, check_entries=True)
        n = report.entries
        result: dict[str, Any] = {
            "entries": n,
            "file_bytes": path.stat().st_size,
            "generate_s": round(made, 2),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "tree_only": {"seconds": round(tree_wall, 3), "entries_per_s": round(n / tree_wall)},
            "full_one_process": {"seconds": round(one_wall, 3), "entries_per_s": round(n / one_wall)},
            "full": {"jobs": jobs, "seconds": round(full_wall, 3), "entries_per_s": round(n / full_wall)},
            "signatures": dict(full.signatures),
        }
    if as_json:
        emit_json(result)
        return
    console.print(f"synthetic log: {n:,} entries, {result['file_bytes'] / 1e6:.1f} MB (made in {made:.1f} s)")
    console.print(
        f"recompute the tree and check {report.tree_heads} tree heads, one core: "
        f"{result['tree_only']['entries_per_s']:,} entries/s ({tree_wall:.2f} s)"
    )
    console.print(
        f"check everything, one process: {result['full_one_process']['entries_per_s']:,} entries/s "
        f"({one_wall:.2f} s)"
    )
    console.print(
        f"check everything, {jobs} processes: {result['full']['entries_per_s']:,} entries/s "
        f"({full_wall:.2f} s); "
        f"signatures: " + ", ".join(f"{k} {v:,}" for k, v in sorted(full.signatures.items()))
    )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
