"""The ``hotline`` command: a desk, an admin and a relay in a terminal (Typer app).

Each command group lives in its own module and registers itself on the root app here.
"""

from __future__ import annotations

import typer

from hotline.cli import admin, demo, desk, serve

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
demo.register(app)


def main() -> None:
    app()
