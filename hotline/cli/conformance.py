"""``hotline conformance``: point the conformance probe (:mod:`hotline.conformance`) at a relay.

Exit codes: 0 every check passed or was skipped with a reason, 1 a check failed, 2 usage, 4 the relay
could not be reached. The probe leaves a throwaway channel (``conformance-<hex>``) on the relay.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import typer

from hotline.cli.admin import RelayOption, TokenFileOption, admin_token
from hotline.cli.common import EXIT_FAILURE, EXIT_RELAY_UNREACHABLE, JsonOption, console, emit_json, fail, run
from hotline.conformance import ConformanceReport, run_conformance

_STYLE = {"pass": "[green]PASS[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]SKIP[/]"}


def conformance(
    relay: str = RelayOption,
    admin_token_file: Path | None = TokenFileOption,
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify the relay's TLS certificate."),
    timeout: float = typer.Option(15.0, "--timeout", min=1.0, help="Seconds to wait for each answer."),
    as_json: bool = JsonOption,
) -> None:
    """Check from outside that a relay keeps the protocol's guarantees; one line per guarantee."""
    token = admin_token(admin_token_file)

    async def body() -> ConformanceReport:
        try:
            return await run_conformance(relay, token, verify_tls=not insecure, timeout_s=timeout)
        except httpx.TransportError as exc:
            fail(
                f"cannot reach the relay at {relay}: {type(exc).__name__}",
                EXIT_RELAY_UNREACHABLE,
                error_code="relay_unreachable",
                as_json=as_json,
            )

    report = run(body, as_json=as_json)
    if as_json:
        emit_json(report.to_json())
    else:
        console.print(f"hotline conformance: {report.relay_url} ({report.relay_id or 'relay id unknown'})")
        width = max((len(r.name) for r in report.results), default=0)
        for r in report.results:
            console.print(f"{_STYLE[r.status]}  {r.name:<{width}}  {r.guarantee}", soft_wrap=True)
            if r.detail:
                console.print(f"      {'':<{width}}  [dim]{r.detail}[/]", soft_wrap=True)
        console.print(
            f"{report.count('pass')} passed, {report.count('fail')} failed, {report.count('skip')} skipped"
            f" in {report.duration_s:.1f} s; throwaway channel {report.channel or '(none)'}"
        )
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    app.command("conformance")(conformance)
