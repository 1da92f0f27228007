"""The benchmark run: the floor first, then the relay, phase by phase, into one JSON document.

Phases, each bounded in messages and in time, all on 127.0.0.1:

1. **Floor.** The bare forwarder (:mod:`hotline.bench.forwarder`): time to ready, send → recipient
   latency at each fixed rate, the step ladder of offered load, idle sockets.
2. **Relay, fresh.** ``hotline serve`` on an empty data dir (SQLite in it, or ``--db``): time to ready.
3. **Latency.** ``pairs`` channels of two desks; every desk listens on its socket. At each fixed rate,
   delhi desks send to islamabad desks; we time send → islamabad's application, the relay's accept
   (``DeskClient.send`` → verified ``relay-accepted`` receipt), and send → delhi holding islamabad's
   signed ``delivered`` receipt.
4. **Accept ladder.** Listeners off (the other desk is away: store and forward); both desks of every
   pair send, at offered rates that step up until a step is not sustained (:class:`StepCriteria`).
5. **Idle sockets.** More desks log in and open authenticated sockets that then stay idle.
6. **Audit.** The log the run wrote is exported and verified (Merkle alone, and everything).
7. **Relay, restart.** The same data dir again: time to ready with the whole log to load.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from hotline.bench import auditbench, desks, floor, idle, profiling
from hotline.bench.load import Recorder, RunResult, Sender, StepCriteria, run_open_loop
from hotline.bench.procs import ServerProcess, forwarder_process, raise_open_files_limit, relay_process
from hotline.bench.report import Row, machine_info, render_table, software_versions

FD_MARGIN = 512  # descriptors kept free for everything that is not an idle socket


@dataclass(frozen=True)
class BenchConfig:
    db_url: str | None = None
    quick: bool = False
    pairs: int = 20
    rates: tuple[float, ...] = (50.0, 200.0)
    duration_s: float = 10.0
    step_rates: tuple[float, ...] = (100.0, 200.0, 400.0, 700.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0)
    step_s: float = 4.0
    idle_sockets: int = 10_000
    sockets_per_device: int = 100
    hold_s: float = 5.0
    drain_s: float = 15.0
    criteria: StepCriteria = field(default_factory=StepCriteria)
    profile_dir: Path | None = None
    keep_dir: Path | None = None

    @classmethod
    def quick_run(cls, **changes: Any) -> BenchConfig:
        """A few seconds end to end: every phase runs, on tiny numbers (a smoke test, not a figure)."""
        base = cls(
            quick=True,
            pairs=3,
            rates=(20.0, 40.0),
            duration_s=0.75,
            step_rates=(40.0, 80.0),
            step_s=0.5,
            idle_sockets=40,
            sockets_per_device=10,
            hold_s=0.2,
            drain_s=10.0,
        )
        return replace(base, **changes)

    def relay_settings(self, idle_sockets: int) -> dict[str, str]:
        """The relay's settings for the run; each departure from the defaults is for a stated reason."""
        return {
            "log_level": "warning",
            # Every client of the benchmark shares 127.0.0.1: the per-address limit would measure itself.
            "address_rate_per_s": "1000000",
            "address_rate_burst": "1000000",
            # The accept ladder drives one desk far beyond a person's pace (the buckets are still taken).
            "rate_per_s": "1000000",
            "rate_burst": "1000000",
            # Idle sockets share a few enrolled devices (each socket authenticates on its own).
            "max_sockets_per_device": str(max(4, self.sockets_per_device)),
            "max_sockets_total": str(idle_sockets + 4 * self.pairs + 64),
        }


class Bench:
    def __init__(self, config: BenchConfig, console: Console) -> None:
        self.config = config
        self.console = console
        self.results: dict[str, Any] = {}
        self.run_id = secrets.token_hex(3)

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text}")

    # --- the whole run ------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        cfg = self.config
        fd_limit = raise_open_files_limit()
        idle_count = min(cfg.idle_sockets, max(0, fd_limit - FD_MARGIN))
        workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
        self.results = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": cfg.quick,
            "machine": machine_info(),
            "config": {
                "database": "postgresql" if cfg.db_url else "sqlite (WAL, synchronous=FULL)",
                "pairs": cfg.pairs,
                "rates": list(cfg.rates),
                "duration_s": cfg.duration_s,
                "step_rates": list(cfg.step_rates),
                "step_s": cfg.step_s,
                "step_criteria": {
                    "min_fraction": cfg.criteria.min_fraction,
                    "max_p99_ms": cfg.criteria.max_p99_ms,
                },
                "idle_sockets_requested": cfg.idle_sockets,
                "idle_sockets_fd_capped": idle_count,
                "open_files_limit": fd_limit,
                "sockets_per_device": cfg.sockets_per_device,
                "relay_settings": cfg.relay_settings(idle_count),
                "client_profile_store": "MemoryProfileStore",
                "profiled": cfg.profile_dir is not None,
            },
        }
        try:
            self.results["floor"] = await self.floor_phase(workdir, idle_count)
            self.results["hotline"] = await self.relay_phases(workdir, idle_count)
        finally:
            if cfg.keep_dir is not None:
                shutil.copytree(workdir, cfg.keep_dir, dirs_exist_ok=True)
            shutil.rmtree(workdir, ignore_errors=True)
        postgres = await postgres_version(cfg.db_url) if cfg.db_url else None
        self.results["software"] = software_versions(postgres)
        self.results["machine"]["loadavg_at_end"] = list(__import__("os").getloadavg())
        self.results["rows"] = [r.to_json() for r in self.rows()]
        return self.results

    # --- the floor ----------------------------------------------------------------------------------

    async def floor_phase(self, workdir: Path, idle_count: int) -> dict[str, Any]:
        cfg = self.config
        out: dict[str, Any] = {}
        server = forwarder_process(workdir / "forwarder.log")
        self.say("floor: starting the bare forwarder")
        out["ready_s"] = round(server.start(), 3)
        out["listening_s"] = _rounded(server.listening_s)
        try:
            names = [(f"a{k}", f"b{k}") for k in range(cfg.pairs)]
            sockets = floor.FloorSockets(server.url, [n for pair in names for n in pair])
            await sockets.start()
            senders = [floor.FloorSender(server.url, a, b) for a, b in names]
            try:
                await self._warm_up(senders, sockets)
                out["latency"] = {}
                for rate in cfg.rates:
                    rec = Recorder(tag=f"f{int(rate)}")
                    sockets.recorder = rec
                    result = await self._fixed_rate(senders, rec, rate, server)
                    out["latency"][str(int(rate))] = result.to_json()
                    self.say(f"floor: {rate:g}/s  send→app p50 {result.send_to_app.p50} ms")
                sockets.recorder = None
            finally:
                await sockets.stop()
            both = senders + [floor.FloorSender(server.url, b, a) for a, b in names]
            try:
                out["steps"], out["sustained_per_s"], out["peak_per_s"] = await self._ladder(
                    both, server, "floor", expect_delivery=False
                )
            finally:
                for s in both:
                    await s.aclose()
            self.say(f"floor: {idle_count} idle sockets")
            result_idle = await idle.hold_idle_sockets(
                lambda k: floor.open_floor_idle_socket(server.url, f"idle{k}"),
                idle_count,
                server,
                hold_s=cfg.hold_s,
            )
            out["idle"] = result_idle.to_json()
        finally:
            server.stop()
        return out

    # --- the relay ----------------------------------------------------------------------------------

    async def relay_phases(self, workdir: Path, idle_count: int) -> dict[str, Any]:
        cfg = self.config
        out: dict[str, Any] = {}
        data_dir = workdir / "relay-data"
        relay = relay_process(data_dir, cfg.db_url, cfg.relay_settings(idle_count), workdir / "relay.log")
        self.say("relay: starting `hotline serve` on a fresh data dir")
        out["ready_fresh_s"] = round(relay.start(), 3)
        out["listening_fresh_s"] = _rounded(relay.listening_s)
        out["rss_at_start"] = relay.rss_bytes()
        profilers: list[profiling.Profiler] = []
        try:
            token = (data_dir / "admin.token").read_text().strip()
            if cfg.profile_dir is not None:
                import os

                profilers = [
                    profiling.Profiler(cfg.profile_dir, "relay", relay.pid),
                    profiling.Profiler(cfg.profile_dir, "generator", os.getpid()),
                ]
                for p in profilers:
                    p.start()
            self.say(f"relay: enrolling {cfg.pairs} pairs of desks")
            pairs = await desks.enroll_pairs(relay.url, token, cfg.pairs, f"bench-{self.run_id}-lat")
            try:
                listeners = desks.DeskListeners([d for p in pairs for d in p.desks])
                listeners.start()
                to_b = [desks.DeskSender(p.a, desks.MEMBERS[1], listeners) for p in pairs]
                try:
                    await self._warm_up(to_b, listeners)
                    out["latency"] = {}
                    for rate in cfg.rates:
                        rec = Recorder(tag=f"h{int(rate)}")
                        listeners.recorder = rec
                        result = await self._fixed_rate(to_b, rec, rate, relay)
                        out["latency"][str(int(rate))] = result.to_json()
                        self.say(
                            f"relay: {rate:g}/s  send→app p50 {result.send_to_app.p50} ms"
                            f"  p99 {result.send_to_app.p99} ms"
                        )
                    listeners.recorder = None
                finally:
                    await listeners.stop()
                out["listener_failures"] = listeners.failures[:5]
                to_a = [desks.DeskSender(p.b, desks.MEMBERS[0], None) for p in pairs]
                both: list[Sender] = [desks.DeskSender(p.a, desks.MEMBERS[1], None) for p in pairs]
                both += to_a
                out["steps"], out["sustained_per_s"], out["peak_per_s"] = await self._ladder(
                    both, relay, "relay", expect_delivery=False
                )
            finally:
                await desks.close_pairs(pairs)
            out["profile"] = self._stop_profilers(profilers)
            profilers = []
            out["idle"] = await self._relay_idle(relay, token, idle_count)
            out["rss_after_run"] = relay.rss_bytes()
            self.say("relay: exporting and verifying the audit log")
            log = await auditbench.export_log(relay.url, token)
            out["audit"] = auditbench.measure_audit(log, repeat=1 if cfg.quick else 3).to_json()
            if auditbench.audit_cli_available():
                self.say("relay: hotline audit export, hotline audit verify")
                try:
                    out["audit_cli"] = auditbench.measure_cli(relay.url, data_dir / "admin.token", workdir)
                except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
                    out["audit_cli"] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            self._stop_profilers(profilers)
            relay.stop()
        self.say("relay: restarting on the same data dir")
        again = relay_process(data_dir, cfg.db_url, cfg.relay_settings(idle_count), workdir / "relay.log")
        out["ready_restart_s"] = round(again.start(), 3)
        out["listening_restart_s"] = _rounded(again.listening_s)
        out["rss_after_restart"] = again.rss_bytes()
        out["restart_log_entries"] = out["audit"]["entries"]
        again.stop()
        return out

    def _stop_profilers(self, profilers: list[profiling.Profiler]) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        for p in profilers:
            path = p.stop()
            if path is not None:
                summary[p.name] = {"file": str(path), **profiling.summarize(path, prefix="hotline/")}
        return summary

    async def _relay_idle(self, relay: ServerProcess, token: str, count: int) -> dict[str, Any]:
        cfg = self.config
        devices_needed = max(1, math.ceil(count / cfg.sockets_per_device))
        self.say(f"relay: enrolling {devices_needed} devices for {count} idle sockets")
        pairs = await desks.enroll_pairs(
            relay.url, token, math.ceil(devices_needed / 2), f"bench-{self.run_id}-idle"
        )
        try:
            devices = [d for p in pairs for d in p.desks][:devices_needed]
            self.say(f"relay: opening {count} authenticated idle sockets")
            result = await idle.hold_idle_sockets(
                lambda k: desks.open_idle_socket(devices[k % len(devices)], relay.url),
                count,
                relay,
                hold_s=cfg.hold_s,
            )
        finally:
            await desks.close_pairs(pairs)
        out = result.to_json()
        out["devices"] = devices_needed
        self.say(
            f"relay: held {result.held} idle sockets, {(result.bytes_per_socket or 0) / 1024:.1f} KiB each"
        )
        return out

    # --- shared steps -------------------------------------------------------------------------------

    async def _warm_up(self, senders: list[Any], listeners: Any) -> None:
        """One message per sender, waited for: tokens, directories, connections and sockets are up."""
        rec = Recorder(tag="warm")
        listeners.recorder = rec
        await run_open_loop(
            senders, rec, rate=50.0, duration_s=len(senders) / 50.0, max_backlog=10_000, drain_s=20.0
        )
        listeners.recorder = None

    async def _fixed_rate(
        self, senders: list[Any], rec: Recorder, rate: float, server: ServerProcess
    ) -> RunResult:
        return await run_open_loop(
            senders,
            rec,
            rate=rate,
            duration_s=self.config.duration_s,
            max_backlog=max(50, int(rate * 2)),
            drain_s=self.config.drain_s,
            server_cpu=server.cpu_seconds,
        )

    async def _ladder(
        self, senders: list[Any], server: ServerProcess, who: str, *, expect_delivery: bool
    ) -> tuple[list[dict[str, Any]], float | None, float | None]:
        """Step the offered rate up until a step is not sustained; returns the steps and the best."""
        cfg = self.config
        steps: list[dict[str, Any]] = []
        sustained: float | None = None
        peak: float | None = None
        for n, rate in enumerate(cfg.step_rates):
            rec = Recorder(tag=f"s{n}", expect_delivery=expect_delivery)
            result = await run_open_loop(
                senders,
                rec,
                rate=rate,
                duration_s=cfg.step_s,
                max_backlog=max(100, int(rate * 0.5)),
                drain_s=cfg.drain_s,
                server_cpu=server.cpu_seconds,
            )
            ok = cfg.criteria.sustained(result)
            steps.append({**result.to_json(), "sustained": ok})
            peak = max(peak or 0.0, result.achieved_per_s)
            self.say(
                f"{who}: offered {rate:g}/s  accepted {result.achieved_per_s:g}/s  "
                f"p99 {result.accept_since_scheduled.p99} ms  {'ok' if ok else 'not sustained'}"
            )
            if not ok:
                break
            sustained = result.achieved_per_s
            await asyncio.sleep(0.5)
        return steps, sustained, peak

    # --- the table ----------------------------------------------------------------------------------

    def rows(self) -> list[Row]:
        r = self.results
        h, f = r["hotline"], r["floor"]
        judge = not self.config.quick
        rows: list[Row] = []

        def verdict(ok: bool) -> bool | None:
            return ok if judge else None

        ready = h["ready_fresh_s"]
        rows.append(
            Row("ready after `hotline serve`, fresh", ready, f["ready_s"], "s", "< 2 s", verdict(ready < 2.0))
        )
        rows.append(
            Row(
                "  of which: spawn → listening (imports)",
                h.get("listening_fresh_s"),
                f.get("listening_s"),
                "s",
            )
        )
        rows.append(
            Row(f"ready after restart, log of {h['restart_log_entries']:,}", h["ready_restart_s"], None, "s")
        )
        for key, ours in h["latency"].items():
            theirs = f["latency"].get(key, {})
            rate = int(key)
            for pct in ("p50", "p95", "p99", "max"):
                value = ours["send_to_app"][pct]
                target, met = "", None
                if rate == 200 and pct == "p50":
                    target, met = "≤ 5 ms", verdict(value is not None and value <= 5.0)
                if rate == 200 and pct == "p99":
                    target, met = "≤ 25 ms", verdict(value is not None and value <= 25.0)
                floor_value = theirs.get("send_to_app", {}).get(pct)
                rows.append(
                    Row(f"send → application {pct} @ {rate}/s", value, floor_value, "ms", target, met)
                )
            for label, key in (
                ("send → delivered receipt back", "send_to_receipt_back"),
                ("accept (send() → receipt)", "accept"),
            ):
                for pct in ("p50", "p99"):
                    rows.append(
                        Row(f"{label} {pct} @ {rate}/s", ours[key][pct], theirs.get(key, {}).get(pct), "ms")
                    )
            per_msg = _per_message_ms(ours)
            rows.append(Row(f"relay CPU per message @ {rate}/s", per_msg, _per_message_ms(theirs), "ms"))
            rows.append(
                Row(
                    f"load generator CPU per message @ {rate}/s",
                    _per_message_ms(ours, "generator_cpu_s"),
                    _per_message_ms(theirs, "generator_cpu_s"),
                    "ms",
                )
            )
            rows.append(Row(f"other processes' CPU during @ {rate}/s", _cores(ours), _cores(theirs), "cores"))
        sustained = h["sustained_per_s"]
        rows.append(
            Row(
                "accepted envelopes/s, sustained",
                sustained,
                f["sustained_per_s"],
                "/s",
                "≥ 2,000/s",
                verdict(sustained is not None and sustained >= 2000),
                lower_is_better=False,
            )
        )
        rows.append(Row("accepted envelopes/s, peak step", h["peak_per_s"], f["peak_per_s"], "/s"))
        hi, fi = h["idle"], f["idle"]
        rows.append(
            Row(
                "idle sockets held",
                hi["held"],
                fi["held"],
                "",
                "10,000",
                verdict(hi["held"] >= 10_000),
                lower_is_better=False,
            )
        )
        rows.append(Row("relay memory per idle socket", hi["bytes_per_socket"], fi["bytes_per_socket"], "B"))
        rss = hi["rss_held"]
        rows.append(
            Row(
                f"relay RSS holding {hi['held']:,} sockets",
                rss,
                fi["rss_held"],
                "B",
                "< 1 GiB",
                verdict(rss is not None and rss < 1 << 30 and hi["held"] >= 10_000),
            )
        )
        rows.append(
            Row("idle: server CPU while held", hi["server_cpu_idle_pct"], fi["server_cpu_idle_pct"], "%")
        )
        a = h["audit"]
        rows.append(
            Row(f"audit verify, Merkle only ({a['entries']:,})", a["merkle_per_s"], None, "entries/s")
        )
        rows.append(Row("audit verify, everything", a["everything_per_s"], None, "entries/s"))
        cli = h.get("audit_cli") or {}
        if "full_per_s" in cli:
            rows.append(Row("`hotline audit verify --tree-only`", cli["tree_only_per_s"], None, "entries/s"))
            rows.append(Row("`hotline audit verify`", cli["full_per_s"], None, "entries/s"))
            rows.append(Row("`hotline audit verify`, process wall time", cli["full_wall_s"], None, "s"))
        return rows

    def render(self) -> None:
        m = self.results["machine"]
        title = (
            f"hotline bench — {self.results['date']} — {m['cores']} cores ({m['cpu_model']}) — "
            f"{self.results['config']['database']}"
            + (" — QUICK (smoke test: not figures)" if self.config.quick else "")
        )
        render_table(self.rows(), title, self.console)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _per_message_ms(run: dict[str, Any], key: str = "server_cpu_s") -> float | None:
    cpu, n = run.get(key), run.get("accepted")
    if cpu is None or not n:
        return None
    return round(1000.0 * float(cpu) / int(n), 3)


def _cores(run: dict[str, Any]) -> float | None:
    """How many cores other processes kept busy during a run, on average (a shared machine's tax)."""
    cpu, seconds = run.get("others_cpu_s"), run.get("elapsed_s")
    if cpu is None or not seconds:
        return None
    return round(float(cpu) / float(seconds), 2)


async def postgres_version(db_url: str) -> str | None:
    import asyncpg  # type: ignore[import-untyped]

    dsn = db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except Exception:
        return None
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def run_bench(config: BenchConfig, console: Console) -> dict[str, Any]:
    bench = Bench(config, console)
    results = asyncio.run(bench.run())
    bench.render()
    return results
