"""Server processes under test: the relay (``hotline serve``) and the bare forwarder, on loopback.

A :class:`ServerProcess` starts its command in a subprocess on an ephemeral port of 127.0.0.1,
times how long it takes from ``Popen`` to the first ``200`` from ``/readyz``, and reads its
resident memory and CPU time from ``/proc/<pid>`` (Linux; elsewhere those figures are ``None``).
Nothing here ever binds or connects to anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 60.0
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def raise_open_files_limit() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit (children inherit it).

    Returns the new soft limit: the number of sockets a process of ours may hold at once.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_rss_bytes(pid: int) -> int | None:
    """Resident set size of a process (``VmRSS`` in ``/proc/<pid>/status``), or None if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds a process has used (``/proc/<pid>/stat``), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def system_busy_seconds() -> float | None:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``), or None.

    Read around a run, minus the server's and the load generator's own CPU, it tells how much of the
    machine other processes took meanwhile: on a shared machine that is the first thing to check.
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


class ServerProcess:
    """One server command in a subprocess; it must print ``listening on http://127.0.0.1:<port>``."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.ready_s: float | None = None
        self.listening_s: float | None = None  # spawn to the "listening on" line: start-up and imports
        self._log_offset = 0

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def start(self) -> float:
        """Start the process and wait for ``/readyz``; returns the seconds from spawn to ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log: IO[bytes] = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self._log_offset = log.tell()
        self.url = ""
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,  # a Ctrl-C of the bench reaches the bench, which stops us
        )
        log.close()
        deadline = started + READY_TIMEOUT_S
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                if not self.url:
                    self.url = self._url_from_log()
                    if self.url:
                        self.listening_s = time.perf_counter() - started
                if self.url:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(self.url + "/readyz").status_code == 200:
                            self.ready_s = time.perf_counter() - started
                            return self.ready_s
                time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def _url_from_log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        for line in text.splitlines():
            if " listening on " in line:
                url = line.rsplit(" ", 1)[-1].strip()
                if not url.startswith(f"http://{LOOPBACK}:"):
                    raise RuntimeError(f"{self.name} listens on {url}, not on loopback")
                return url
        return ""

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def rss_bytes(self) -> int | None:
        return proc_rss_bytes(self.pid)

    def cpu_seconds(self) -> float | None:
        return proc_cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def relay_process(
    data_dir: Path, db_url: str | None, settings: dict[str, str], log_path: Path
) -> ServerProcess:
    """``hotline serve`` on an ephemeral loopback port; ``settings`` become ``HOTLINE_*`` variables."""
    args = [sys.executable, "-m", "hotline.cli", "serve", "--data-dir", str(data_dir)]
    args += ["--host", LOOPBACK, "--port", "0"]
    if db_url:
        args += ["--db", db_url]
    env = {f"HOTLINE_{k.upper()}": v for k, v in settings.items()}
    return ServerProcess("relay", args, env, log_path)


def forwarder_process(log_path: Path) -> ServerProcess:
    """The bare FastAPI WebSocket forwarder (:mod:`hotline.bench.forwarder`) on a loopback port."""
    args = [sys.executable, "-m", "hotline.bench.forwarder", "--port", "0"]
    return ServerProcess("forwarder", args, {}, log_path)
