"""The sans-I/O boundary of ``hotline/protocol/``, enforced by reading its source with ``ast``.

The core takes time (``now_ms``) and randomness (``rng``) as parameters and does no I/O, so every module
is checked for imports of I/O, concurrency, clock and randomness modules, and for calls that read the clock
or the system's random source even through an allowed module (``datetime.now()``). Only ``crypto.py`` may
import pyca/cryptography. The checker itself is tested on small snippets, so it cannot pass by seeing
nothing.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "hotline" / "protocol"
PACKAGE = "hotline.protocol"
CRYPTO_MODULE = "crypto.py"

FORBIDDEN_MODULES = frozenset(
    {
        # I/O, network and servers
        "asyncio",
        "fastapi",
        "starlette",
        "sqlalchemy",
        "alembic",
        "aiosqlite",
        "asyncpg",
        "httpx",
        "requests",
        "urllib",
        "http",
        "websockets",
        "uvicorn",
        "socket",
        "ssl",
        "select",
        "selectors",
        "pathlib",
        "shutil",
        "tempfile",
        "logging",
        # processes and threads
        "os",
        "sys",
        "subprocess",
        "threading",
        "multiprocessing",
        "concurrent",
        "signal",
        # clock and randomness
        "time",
        "random",
        "secrets",
        # dynamic imports, which would hide everything above
        "importlib",
    }
)

# Attribute names that read the clock wherever they hang (datetime.now, date.today, dt.datetime.utcnow).
CLOCK_ATTRIBUTES = frozenset({"now", "utcnow", "today"})
# (object, attribute) pairs that read the clock or the system random source.
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        ("time", "time"),
        ("time", "time_ns"),
        ("time", "monotonic"),
        ("time", "monotonic_ns"),
        ("time", "perf_counter"),
        ("os", "urandom"),
        ("os", "getrandom"),
        ("uuid", "uuid1"),
        ("uuid", "uuid4"),
    }
)
FORBIDDEN_BUILTINS = frozenset({"open", "input", "print", "__import__", "exec", "eval", "breakpoint"})


@dataclass(frozen=True)
class Violation:
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def imported_modules(tree: ast.AST, module_name: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import, relative ones resolved against ``module_name``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_name.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # "from hotline import protocol" style imports name modules in the aliases too.
            found.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names)
    return found


def dotted(node: ast.expr) -> list[str]:
    """``a.b.c`` as ["a", "b", "c"]; anything that is not a plain name chain ends the list early."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


def violations(source: str, module_name: str = f"{PACKAGE}.example") -> list[Violation]:
    """Everything in ``source`` that crosses the sans-I/O boundary."""
    tree = ast.parse(source)
    found: list[Violation] = []
    for line, name in imported_modules(tree, module_name):
        root = name.split(".")[0]
        if root in FORBIDDEN_MODULES:
            found.append(Violation(line, f"imports {name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain = dotted(node)
            if node.attr in CLOCK_ATTRIBUTES:
                found.append(Violation(node.lineno, f"reads the clock: {'.'.join(chain) or node.attr}"))
            elif len(chain) >= 2 and (chain[-2], chain[-1]) in FORBIDDEN_ATTRIBUTES:
                found.append(Violation(node.lineno, f"uses {'.'.join(chain)}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_BUILTINS
        ):
            found.append(Violation(node.lineno, f"calls {node.func.id}()"))
    return sorted(found, key=lambda v: v.line)


def protocol_modules() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def module_name(path: Path) -> str:
    """The dotted name relative imports resolve against (``__init__`` kept: ``.`` is its package)."""
    relative = path.relative_to(PACKAGE_DIR).with_suffix("")
    return ".".join([PACKAGE, *relative.parts])


MODULES = protocol_modules()


def test_the_walk_finds_the_protocol_modules() -> None:
    names = {p.name for p in MODULES}
    assert {"__init__.py", "crypto.py", "envelope.py", "keys.py", "receiver.py", "content.py"} <= names
    assert len(MODULES) >= 12


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_protocol_module_does_no_io_and_reads_no_clock_or_randomness(path: Path) -> None:
    found = violations(path.read_text(encoding="utf-8"), module_name(path))
    assert not found, f"{path.name} crosses the sans-I/O boundary: " + "; ".join(map(str, found))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_only_crypto_module_imports_cryptography(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    uses = sorted(
        {
            name
            for _, name in imported_modules(tree, module_name(path))
            if name.split(".")[0] == "cryptography"
        }
    )
    if path.name == CRYPTO_MODULE and path.parent == PACKAGE_DIR:
        assert uses, "crypto.py is where the calls into cryptography.hazmat live"
    else:
        assert uses == [], f"{path.name} imports {uses}; use hotline.protocol.crypto instead"


# --- the checker itself -------------------------------------------------------------------------------

CAUGHT = [
    "import os",
    "import os.path",
    "import asyncio",
    "from asyncio import sleep",
    "import sqlalchemy.orm as orm",
    "from fastapi import FastAPI",
    "from starlette.requests import Request",
    "import httpx",
    "import websockets",
    "import uvicorn",
    "import socket",
    "import random",
    "from random import randbytes",
    "import secrets",
    "import time",
    "from time import time",
    "import subprocess",
    "import threading",
    "import importlib",
    "from datetime import datetime\nstamp = datetime.now()",
    "import datetime\nstamp = datetime.datetime.utcnow()",
    "from datetime import date\nday = date.today()",
    "from datetime import datetime as DT\nclock = DT.now",
    "import datetime as dt\nstamp = dt.datetime.now(dt.timezone.utc)",
    "stamp = time.time()",
    "stamp = time.monotonic_ns()",
    "key = os.urandom(32)",
    "import uuid\nmessage_id = uuid.uuid4()",
    "data = open('keys.json').read()",
    "print('debug')",
    "os = __import__('os')",
]

ALLOWED = [
    "from __future__ import annotations",
    "import hashlib\nimport hmac\nimport json\nimport re\nimport base64",
    "from datetime import datetime\nparsed = datetime.fromisoformat(text)\nms = parsed.timestamp()",
    "from hotline.protocol import crypto\nplain = crypto.aead_open(key, nonce, ct, aad)",
    "from . import crypto",
    "secret.open(sealed, info)",
    "timestamp = header.created_at_ms",
]


@pytest.mark.parametrize("source", CAUGHT)
def test_checker_catches(source: str) -> None:
    assert violations(source), f"not caught: {source!r}"


@pytest.mark.parametrize("source", ALLOWED)
def test_checker_allows(source: str) -> None:
    assert violations(source) == []


def test_checker_resolves_relative_imports() -> None:
    tree = ast.parse("from . import crypto\nfrom ..protocol.keys import DeviceKeys")
    names = [name for _, name in imported_modules(tree, "hotline.protocol.envelope")]
    assert "hotline.protocol.crypto" in names
    assert "hotline.protocol.keys" in names
