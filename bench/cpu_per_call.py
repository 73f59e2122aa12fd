"""Client CPU per API call: a full sync against an emulator in another process.

The emulator runs in its own process, so this process's CPU time is the client's
(and the engine's) alone. Each repeat syncs ``--rows`` new rows (the emulator is
reset between repeats) and reports the API calls sent, this process's CPU seconds,
CPU milliseconds per call and rows per second. ``--profile`` writes a cProfile of the
last repeat and prints its top entries; ``--knee`` measures rows/s at several
``max_concurrency`` values instead (at ``--latency-ms``, 20 ms by default there).

    uv run python -m bench.cpu_per_call --rows 3000 [--threads 24] [--repeats 3]
    uv run python -m bench.cpu_per_call --rows 3000 --profile bench/results/cpu.prof
    uv run python -m bench.cpu_per_call --rows 3000 --knee 8 16 24 32 48 --latency-ms 20

Prints one JSON line of the figures (the median repeat, and every repeat) and a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from typing import Any

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.emulator.testing import RunningEmulator, running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from scripts import demo_data


class _AllThreads:
    """cProfile of every thread: each thread started while it is on gets its own profiler.

    (A ``cProfile.Profile`` sees only the thread that enabled it; the requests run in
    the engine's worker threads.)
    """

    def __init__(self) -> None:
        import cProfile

        self.main = cProfile.Profile()
        self.profiles = [self.main]
        self._original = threading.Thread.run

    def __enter__(self) -> _AllThreads:
        import cProfile

        original, profiles = self._original, self.profiles

        def run(thread: threading.Thread) -> None:
            profile = cProfile.Profile()
            profiles.append(profile)
            profile.enable()
            try:
                original(thread)
            finally:
                profile.disable()

        threading.Thread.run = run  # type: ignore[method-assign,assignment]
        self.main.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        self.main.disable()
        threading.Thread.run = self._original  # type: ignore[method-assign]

    def stats(self, stream: Any) -> Any:
        import pstats

        stats = pstats.Stats(self.main, stream=stream)
        for profile in self.profiles[1:]:
            profile.create_stats()
            if profile.stats:
                stats.add(profile)
        return stats


def _one(emu: RunningEmulator, seed: dict[str, Any], rows: list[dict[str, Any]], threads: int,
         profiler: _AllThreads | None = None) -> dict[str, Any]:  # fmt: skip
    emu.admin("reset", seed)
    client = MetronomeClient(emu.url, emu.token)
    times0, cpu0, wall0 = os.times(), time.process_time(), time.perf_counter()
    with profiler if profiler is not None else contextlib.nullcontext():
        report = BillingConfigSync(client, SyncOptions(max_concurrency=threads)).run(rows)
    cpu, wall, times = time.process_time() - cpu0, time.perf_counter() - wall0, os.times()
    calls = client.api_calls
    by_endpoint = dict(getattr(client, "api_calls_by_endpoint", {}))
    client.close()
    return {
        "threads": threads,
        "calls": calls,
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_call": round(1000 * cpu / max(calls, 1), 4),
        "user_ms_per_call": round(1000 * (times.user - times0.user) / max(calls, 1), 4),
        "system_ms_per_call": round(1000 * (times.system - times0.system) / max(calls, 1), 4),
        "wall_s": round(wall, 3),
        "rows_per_second": round(len(rows) / wall, 1),
        "created": report.created,
        "calls_by_endpoint": by_endpoint,
    }


def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r[key])
    return ordered[len(ordered) // 2]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=SyncOptions().max_concurrency)
    parser.add_argument("--latency-ms", type=float, default=None,
                        help="emulator latency (default 0, or 20 with --knee)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the last repeat here")
    parser.add_argument("--top", type=int, default=15, help="profile entries printed")
    parser.add_argument("--knee", type=int, nargs="+", metavar="THREADS",
                        help="rows/s at each of these max_concurrency values")  # fmt: skip
    args = parser.parse_args(argv)
    latency = args.latency_ms if args.latency_ms is not None else (20.0 if args.knee else 0.0)
    data = demo_data.build(args.rows, with_bad_rows=False)
    out: dict[str, Any] = {"bench": "cpu_per_call", "rows": args.rows, "latency_ms": latency}
    profiler: _AllThreads | None = None
    with running_emulator(seed=data.seed, args=["--latency-ms", str(latency)]) as emu:
        _one(emu, data.seed, data.rows[: min(200, args.rows)], args.threads)  # warm up: imports, pool
        if args.knee:
            knee = []
            for threads in args.knee:
                runs = [_one(emu, data.seed, data.rows, threads) for _ in range(args.repeats)]
                best = _median(runs, "rows_per_second")
                knee.append({k: best[k] for k in ("threads", "rows_per_second", "cpu_ms_per_call", "calls")})
            out["knee"] = knee
        else:
            runs = [_one(emu, data.seed, data.rows, args.threads) for _ in range(args.repeats)]
            if args.profile:
                profiler = _AllThreads()
                runs_profiled = _one(emu, data.seed, data.rows, args.threads, profiler)
                out["profiled_cpu_ms_per_call"] = runs_profiled["cpu_ms_per_call"]
            median = _median(runs, "cpu_ms_per_call")
            out.update({k: v for k, v in median.items() if k != "calls_by_endpoint"})
            out["cpu_ms_per_call_runs"] = [r["cpu_ms_per_call"] for r in runs]
            out["calls_by_endpoint"] = median["calls_by_endpoint"]
    print(json.dumps(out))
    _print(out)
    if profiler is not None:
        stats = profiler.stats(sys.stdout)
        stats.dump_stats(args.profile)
        for order in ("cumulative", "tottime"):
            print(f"\n-- profile of one repeat, every thread, top {args.top} by {order} "
                  "(cProfile inflates every figure) --")  # fmt: skip
            stats.strip_dirs().sort_stats(order).print_stats(args.top)
    return out


def _print(out: dict[str, Any]) -> None:
    print(f"rows {out['rows']:,}, emulator latency {out['latency_ms']:g} ms (emulator in its own process)")
    if "knee" in out:
        print(f"{'max_concurrency':>16} {'rows/s':>9} {'CPU ms/call':>12} {'calls':>7}")
        for k in out["knee"]:
            print(f"{k['threads']:>16} {k['rows_per_second']:>9} {k['cpu_ms_per_call']:>12} {k['calls']:>7}")
        return
    table = [
        ("max_concurrency", out["threads"]),
        ("API calls", out["calls"]),
        ("process CPU s", out["cpu_s"]),
        ("CPU ms/call (median)", out["cpu_ms_per_call"]),
        ("CPU ms/call (each repeat)", ", ".join(map(str, out["cpu_ms_per_call_runs"]))),
        ("  of which user / system", f"{out['user_ms_per_call']} / {out['system_ms_per_call']}"),
        ("wall s", out["wall_s"]),
        ("rows/s", out["rows_per_second"]),
    ]
    for name, value in table:
        print(f"{name:<26} {value}")
    if out.get("calls_by_endpoint"):
        for name, n in sorted(out["calls_by_endpoint"].items()):
            print(f"  {name:<58} {n:>6}")


if __name__ == "__main__":
    main()
