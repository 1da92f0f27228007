"""An open-loop load generator: messages go out on a fixed schedule, whatever the server's pace.

Theory of operation
-------------------
Message ``i`` of a run is *scheduled* at ``start + i / rate`` and handed to sender ``i mod n``.
Latencies are measured from the scheduled time, not from the moment a busy generator got round to
sending, so a server that falls behind cannot hide its backlog (no "coordinated omission"). A sender
sends one message at a time, as a person at a desk does; if it is still busy, the next message waits
for it, and the wait is part of the latency. Every time is ``time.perf_counter()`` of this process.

A run is bounded in count and in time: it stops scheduling once more than ``max_backlog`` messages
are waiting (the server is not keeping up: the step has failed), and waits at most ``drain_s`` for
the stragglers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hotline.bench.procs import system_busy_seconds
from hotline.bench.stats import Latency

PAYLOAD_CHARS = 480
"""Size of a benchmark message's text: a short IMMEDIATE message (the brief keeps those ≈200 words)."""


def message_text(tag: str, index: int) -> str:
    """``bench <tag> <index>`` padded to :data:`PAYLOAD_CHARS`; the index lets a recipient match it."""
    head = f"bench {tag} {index} "
    return head + "x" * max(0, PAYLOAD_CHARS - len(head))


def index_of(tag: str, text: str) -> int | None:
    """The index in a :func:`message_text` of this run, or None for anything else."""
    parts = text.split(" ", 3)
    if len(parts) < 3 or parts[0] != "bench" or parts[1] != tag:
        return None
    try:
        return int(parts[2])
    except ValueError:
        return None


class Sender(Protocol):
    """One desk that can send message ``index``; returns once the server has accepted it."""

    async def send(self, tag: str, index: int) -> None: ...


@dataclass
class Recorder:
    """What happened to each message of one run, by index (times from ``perf_counter``)."""

    tag: str
    scheduled: dict[int, float] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    accepted: dict[int, float] = field(default_factory=dict)
    delivered: dict[int, float] = field(default_factory=dict)  # the recipient's application has it
    returned: dict[int, float] = field(default_factory=dict)  # the sender has the delivered receipt
    errors: list[str] = field(default_factory=list)
    anomalies: dict[str, int] = field(default_factory=dict)
    by_message_id: dict[str, int] = field(default_factory=dict)
    pending_returns: dict[str, float] = field(default_factory=dict)
    expect_delivery: bool = True

    def note(self, what: str) -> None:
        self.anomalies[what] = self.anomalies.get(what, 0) + 1

    def on_delivered(self, index: int) -> None:
        if index in self.scheduled and index not in self.delivered:
            self.delivered[index] = time.perf_counter()

    def on_returned_index(self, index: int, at: float | None = None) -> None:
        if index in self.scheduled and index not in self.returned:
            self.returned[index] = at if at is not None else time.perf_counter()

    def on_returned_message(self, message_id: str) -> None:
        """A delivered receipt arrived; it may beat the sender's own answer, so park it if unknown."""
        index = self.by_message_id.get(message_id)
        if index is None:
            self.pending_returns[message_id] = time.perf_counter()
        else:
            self.on_returned_index(index)

    def on_message_id(self, index: int, message_id: str) -> None:
        self.by_message_id[message_id] = index
        early = self.pending_returns.pop(message_id, None)
        if early is not None:
            self.on_returned_index(index, early)

    def complete(self) -> bool:
        n = len(self.scheduled)
        if len(self.accepted) + len(self.errors) < n:
            return False
        return not self.expect_delivery or (
            len(self.delivered) >= len(self.accepted) and len(self.returned) >= len(self.accepted)
        )

    def since_scheduled(self, times: dict[int, float]) -> list[float]:
        return [t - self.scheduled[i] for i, t in times.items()]


@dataclass(frozen=True)
class RunResult:
    rate: float
    duration_s: float  # of the schedule
    elapsed_s: float  # the whole run, stragglers included: the span of the CPU figures
    scheduled: int
    accepted: int
    errors: int
    delivered: int
    returned: int
    achieved_per_s: float
    send_to_app: Latency
    send_to_receipt_back: Latency
    accept: Latency
    accept_since_scheduled: Latency
    start_lag: Latency
    stopped_early: bool
    server_cpu_s: float | None
    generator_cpu_s: float
    others_cpu_s: float | None  # the machine's busy CPU minus the server's and the generator's
    anomalies: dict[str, int]
    first_errors: list[str]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.to_json() if isinstance(value, Latency) else value
        return out


async def run_open_loop(
    senders: Sequence[Sender],
    recorder: Recorder,
    *,
    rate: float,
    duration_s: float,
    max_backlog: int,
    drain_s: float,
    server_cpu: Any = None,
) -> RunResult:
    """Offer ``rate`` messages per second for ``duration_s`` over ``senders``; see the module doc.

    ``server_cpu`` is a callable giving the server's CPU seconds so far (or None), read around the run.
    """
    count = max(1, int(rate * duration_s))
    locks = [asyncio.Lock() for _ in senders]
    tasks: set[asyncio.Task[None]] = set()
    waiting = 0
    stopped_early = False

    async def one(index: int) -> None:
        nonlocal waiting
        sender_no = index % len(senders)
        try:
            async with locks[sender_no]:
                recorder.started[index] = time.perf_counter()
                await senders[sender_no].send(recorder.tag, index)
                recorder.accepted[index] = time.perf_counter()
        except Exception as exc:
            recorder.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            waiting -= 1

    cpu0 = server_cpu() if server_cpu else None
    gen0 = time.process_time()
    sys0 = system_busy_seconds()
    start = time.perf_counter() + 0.05
    for index in range(count):
        at = start + index / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if waiting > max_backlog:
            stopped_early = True
            break
        recorder.scheduled[index] = at
        waiting += 1
        task = asyncio.create_task(one(index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    end_of_schedule = time.perf_counter()
    deadline = end_of_schedule + drain_s
    while not recorder.complete() and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    for task in list(tasks):
        task.cancel()
    for task in list(tasks):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    cpu1 = server_cpu() if server_cpu else None
    gen1 = time.process_time()
    sys1 = system_busy_seconds()
    others = None
    if None not in (cpu0, cpu1, sys0, sys1):
        assert cpu0 is not None and cpu1 is not None and sys0 is not None and sys1 is not None
        others = round(max(0.0, (sys1 - sys0) - (cpu1 - cpu0) - (gen1 - gen0)), 3)

    done_times = sorted(recorder.accepted.values())
    span = (done_times[-1] - start) if done_times else 0.0
    achieved = len(done_times) / span if span > 0 else 0.0
    accept = [recorder.accepted[i] - recorder.started[i] for i in recorder.accepted]
    lag = [recorder.started[i] - recorder.scheduled[i] for i in recorder.started]
    return RunResult(
        rate=rate,
        duration_s=round(end_of_schedule - start, 3),
        elapsed_s=round(time.perf_counter() - start, 3),
        scheduled=len(recorder.scheduled),
        accepted=len(recorder.accepted),
        errors=len(recorder.errors),
        delivered=len(recorder.delivered),
        returned=len(recorder.returned),
        achieved_per_s=round(achieved, 1),
        send_to_app=Latency.of_seconds(recorder.since_scheduled(recorder.delivered)),
        send_to_receipt_back=Latency.of_seconds(recorder.since_scheduled(recorder.returned)),
        accept=Latency.of_seconds(accept),
        accept_since_scheduled=Latency.of_seconds(recorder.since_scheduled(recorder.accepted)),
        start_lag=Latency.of_seconds(lag),
        stopped_early=stopped_early,
        server_cpu_s=None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 3),
        generator_cpu_s=round(gen1 - gen0, 3),
        others_cpu_s=others,
        anomalies=dict(recorder.anomalies),
        first_errors=recorder.errors[:5],
    )


@dataclass(frozen=True)
class StepCriteria:
    """A step is sustained when nearly all offered load is accepted without a runaway tail."""

    min_fraction: float = 0.95
    max_p99_ms: float = 100.0

    def sustained(self, result: RunResult) -> bool:
        p99 = result.accept_since_scheduled.p99
        return (
            not result.stopped_early
            and result.errors == 0
            and result.accepted >= self.min_fraction * result.scheduled
            and result.achieved_per_s >= self.min_fraction * result.rate
            and p99 is not None
            and p99 <= self.max_p99_ms
        )
