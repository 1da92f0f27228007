"""Optional sampling profiles of a benchmark phase with py-spy (``pip install -e '.[dev]'``).

``hotline bench --profile DIR`` attaches ``py-spy record --nonblocking`` to the relay (and to the
load generator itself) for the relay phases and writes collapsed stacks (``<name>.txt``, one line per
stack with its sample count: the input of flamegraph.pl, speedscope and inferno) plus a short summary
of where the samples fall. Non-blocking sampling does not pause the target, so the figures of a
profiled run stay close to an unprofiled one; they are still marked as profiled in the JSON.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

SAMPLE_RATE_HZ = 200


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


class Profiler:
    """``py-spy record`` on one process until :meth:`stop`."""

    def __init__(self, out_dir: Path, name: str, pid: int) -> None:
        self.out = out_dir / f"{name}.txt"
        self.name = name
        self.pid = pid
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = py_spy_path()
        if exe is None:
            raise RuntimeError("py-spy is not installed: pip install -e '.[dev]'")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(SAMPLE_RATE_HZ),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(self.out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> Path | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        return self.out if self.out.exists() else None


def summarize(collapsed: Path, top: int = 15, prefix: str = "") -> dict[str, list[tuple[str, float]]]:
    """Share of samples per function: ``self`` (on top of the stack) and ``total`` (anywhere in it).

    With ``prefix`` (e.g. ``"hotline/relay/"``), ``ours`` lists the functions of files under it by
    total share. Threads blocked in C (a driver thread in ``fsync``, uvloop's ``epoll``) are sampled
    too, so shares say where the samples fall, not how much CPU each function used.
    """
    self_count: Counter[str] = Counter()
    total_count: Counter[str] = Counter()
    ours_count: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        self_count[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            total_count[name] += count
        if prefix:
            for name in {_short(f) for f in frames if f"({prefix}" in f or f"/{prefix}" in f}:
                ours_count[name] += count
    if samples == 0:
        return {"self": [], "total": [], "ours": []}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100.0 * v / samples, 1)) for k, v in counter.most_common(top)]

    return {"self": share(self_count), "total": share(total_count), "ours": share(ours_count)}


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``; line numbers split one function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    tail = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name} ({tail})"
