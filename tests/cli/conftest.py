"""Fixtures for CLI tests: a real relay (``hotline serve``) and a helper that runs the real CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

HOTLINE = [sys.executable, "-m", "hotline.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Relay:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def token_file(self) -> Path:
        return self.data_dir / "admin.token"


def start_relay(data_dir: Path, port: int | None = None) -> Relay:
    port = port or free_port()
    log = (data_dir.parent / f"relay-{port}.log").open("ab")
    process = subprocess.Popen(
        [*HOTLINE, "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"relay exited with {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return Relay(url, data_dir, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("relay did not become ready")


def stop_relay(relay: Relay) -> None:
    if relay.process.poll() is None:
        relay.process.send_signal(signal.SIGTERM)
        try:
            relay.process.wait(10)
        except subprocess.TimeoutExpired:
            relay.process.kill()
            relay.process.wait()


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    base = tmp_path_factory.mktemp("relay")
    r = start_relay(base / "data")
    yield r
    stop_relay(r)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """Runs ``hotline`` as a subprocess with its own HOTLINE_HOME."""

    def __init__(self, home: Path, relay_url: str) -> None:
        self.home = home
        self.relay_url = relay_url
        self.env_extra: dict[str, str] = {}

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        overrides = {**self.env_extra, **(env or {})}
        environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        environment.update(
            HOTLINE_HOME=str(self.home), HOTLINE_RELAY_URL=self.relay_url, NO_COLOR="1", COLUMNS="200"
        )
        environment.update(overrides)
        done = subprocess.run(
            [*HOTLINE, *args], input=input, capture_output=True, text=True, env=environment, timeout=60
        )
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(tmp_path: Path, relay: Relay) -> Cli:
    return Cli(tmp_path / "home", relay.url)
