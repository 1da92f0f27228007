"""Plumbing shared by every CLI command: profiles, output (human or ``--json``), errors and exit codes.

Exit codes (documented in README and ``hotline --help``):

====  =========================================================
0     success
1     failure not covered below
2     usage error (bad option or argument)
3     the relay refused the request (its error code is printed)
4     the relay could not be reached
5     profile problem: missing, damaged, or wrong passphrase
6     sending refused because a contact's keys changed unverified
====  =========================================================
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from hotline.client import FileProfileStore
from hotline.client.errors import (
    ClientError,
    KeyChangeError,
    ProfileError,
    RelayError,
    RelayUnreachableError,
)
from hotline.protocol.errors import ProtocolError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_RELAY_REFUSED = 3
EXIT_RELAY_UNREACHABLE = 4
EXIT_PROFILE = 5
EXIT_KEY_CHANGED = 6

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
ProfileOption = typer.Option(
    "default", "--profile", "-p", envvar="HOTLINE_PROFILE", help="Profile (enrolled device) to use."
)


def hotline_home() -> Path:
    """``$HOTLINE_HOME``, else ``$XDG_CONFIG_HOME/hotline``, else ``~/.config/hotline``."""
    if home := os.environ.get("HOTLINE_HOME"):
        return Path(home)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hotline"


def profile_dir(name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        fail(f"invalid profile name {name!r}", EXIT_USAGE)
    return hotline_home() / "profiles" / name


def passphrase_from_env_or_prompt(*, confirm: bool, needed: bool) -> str | None:
    """``HOTLINE_PASSPHRASE`` if set; otherwise prompt on a terminal when ``needed``."""
    if (value := os.environ.get("HOTLINE_PASSPHRASE")) is not None:
        return value
    if not needed:
        return None
    if not sys.stdin.isatty():
        fail(
            "this needs a passphrase: set HOTLINE_PASSPHRASE or run in a terminal",
            EXIT_PROFILE,
            error_code="passphrase_required",
        )
    value = typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)
    return str(value)


def profile_store(name: str) -> FileProfileStore:
    directory = profile_dir(name)
    keys = directory / "keys.json"
    sealed = False
    if keys.exists():
        try:
            sealed = json.loads(keys.read_bytes()).get("type") == "hotline-sealed-device-keys"
        except (OSError, ValueError):
            sealed = False
    return FileProfileStore(directory, passphrase_from_env_or_prompt(confirm=False, needed=sealed))


def fail(
    message: str, code: int = EXIT_FAILURE, *, error_code: str | None = None, as_json: bool = False
) -> NoReturn:
    if as_json:
        print(json.dumps({"ok": False, "error": {"code": error_code or "error", "message": message}}))
    else:
        err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def run(coro_factory: Callable[[], Awaitable[T]], *, as_json: bool = False) -> T:
    """Run an async command body, turning every expected error into a clear message and exit code."""
    try:
        return asyncio.run(_as_coroutine(coro_factory))
    except KeyChangeError as exc:
        fail(exc.message, EXIT_KEY_CHANGED, error_code=exc.code, as_json=as_json)
    except RelayUnreachableError as exc:
        fail(exc.message, EXIT_RELAY_UNREACHABLE, error_code=exc.code, as_json=as_json)
    except RelayError as exc:
        fail(
            f"the relay refused: {exc.message} ({exc.code})",
            EXIT_RELAY_REFUSED,
            error_code=exc.code,
            as_json=as_json,
        )
    except ProfileError as exc:
        fail(exc.message, EXIT_PROFILE, error_code=exc.code, as_json=as_json)
    except ClientError as exc:
        fail(exc.message, EXIT_FAILURE, error_code=exc.code, as_json=as_json)
    except ProtocolError as exc:
        fail(exc.message, EXIT_FAILURE, error_code=exc.code.value, as_json=as_json)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _as_coroutine(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "—"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def fmt_delta(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return ""
    d = end - start
    return f"+{d} ms" if d < 10_000 else f"+{d / 1000:.1f} s"
