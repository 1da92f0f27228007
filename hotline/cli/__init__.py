"""The ``hotline`` command: a desk, an admin and a relay in a terminal (Typer app).

Each command group lives in its own module and registers itself on the root app here.
"""

from __future__ import annotations

import typer

from hotline.cli import admin, audit, bench, conformance, demo, desk, hotline_cmds, serve

app = typer.Typer(
    name="hotline",
    help="hotline: a secure crisis-communication hotline (relay, desks, audit, exercises).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

serve.register(app)
admin.register(app)
desk.register(app)
hotline_cmds.register(app)
audit.register(app)
demo.register(app)
bench.register(app)
conformance.register(app)


def main() -> None:
    app()
