"""The benchmark's output: the machine and software it ran on, a Rich table, and the JSON file.

Each of our figures is printed next to the same figure for the bare forwarder (the floor of this
stack) and as a ratio to it, and next to its target where issue 11 sets one. A target row says
``met`` or ``missed``; nothing is rounded in our favour.
"""

from __future__ import annotations

import os
import platform
import sqlite3
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hotline.bench.stats import ratio

PACKAGES = (
    "cryptography",
    "fastapi",
    "starlette",
    "uvicorn",
    "websockets",
    "httpx",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "pydantic",
)


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, kernel and load: enough to tell two runs' machines apart."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_model": model,
        "memory_bytes": mem_total,
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def software_versions(postgres_version: str | None = None) -> dict[str, str | None]:
    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["hotline"] = metadata.version("hotline")
    except metadata.PackageNotFoundError:
        out["hotline"] = None
    if postgres_version is not None:
        out["postgres"] = postgres_version
    return out


@dataclass(frozen=True)
class Row:
    figure: str
    ours: float | None
    floor: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    lower_is_better: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "ours": self.ours,
            "floor": self.floor,
            "ratio": ratio(self.ours, self.floor),
            "unit": self.unit,
            "target": self.target or None,
            "met": self.met,
        }


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "B":
        if abs(value) >= 1024 * 1024:
            return f"{value / (1024 * 1024):,.1f} MiB"
        if abs(value) >= 1024:
            return f"{value / 1024:,.1f} KiB"
        return f"{value:,.0f} B"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:,.2f} {unit}".strip()


def render_table(rows: list[Row], title: str, console: Console) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("figure")
    table.add_column("hotline", justify="right")
    table.add_column("bare forwarder", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="left")
    for row in rows:
        r = ratio(row.ours, row.floor)
        verdict = "" if row.met is None else ("[green]met[/]" if row.met else "[red]missed[/]")
        table.add_row(
            row.figure,
            _fmt(row.ours, row.unit),
            _fmt(row.floor, row.unit),
            "—" if r is None else f"{r:g}×",
            row.target,
            verdict,
        )
    console.print(table)
