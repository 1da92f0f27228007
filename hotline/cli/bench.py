"""``hotline bench``: start a relay and desks on loopback, measure, print a table, write JSON.

The figures and the method are described in docs/PERFORMANCE.md. ``--quick`` runs every phase on
tiny numbers in a few seconds (the smoke test uses it); its figures are not figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hotline.cli.common import console

PIPE_WIDTH = 140  # the table's width when stdout is not a terminal (a log file, CI)


def bench(
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL for the relay (postgresql://…); default: SQLite in a temp dir"
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A few seconds on tiny numbers (smoke test)")
    ] = False,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results")] = Path(
        "bench-results.json"
    ),
    idle_sockets: Annotated[
        int | None, typer.Option("--idle-sockets", min=1, help="Idle sockets to open (default 10,000)")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.1, help="Seconds per fixed-rate run (default 10)")
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option("--profile", help="Directory for py-spy profiles of the relay and the load generator"),
    ] = None,
) -> None:
    """Benchmark the relay and the client on loopback (docs/PERFORMANCE.md)."""
    from hotline.bench.run import BenchConfig, run_bench

    changes: dict[str, object] = {"db_url": db, "profile_dir": profile}
    if idle_sockets is not None:
        changes["idle_sockets"] = idle_sockets
    if duration is not None:
        changes["duration_s"] = duration
    config = BenchConfig.quick_run(**changes) if quick else BenchConfig(**changes)  # type: ignore[arg-type]
    wide = console if console.is_terminal else Console(highlight=False, width=PIPE_WIDTH)
    results = run_bench(config, wide)
    out.write_text(json.dumps(results, indent=2) + "\n")
    wide.print(f"results written to {out}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
