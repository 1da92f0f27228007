"""``hotline serve`` and ``hotline db upgrade`` (written by the relay work; placeholder until then)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the relay commands to the root app."""
