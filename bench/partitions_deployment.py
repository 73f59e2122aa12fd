"""Partitions on a real Airflow deployment: the example DAG with 1, 2 and 4 mapped sync tasks.

The deployment is the one of the deployment tests (``tests/deployment/harness.py``):
``airflow api-server``, ``scheduler`` (LocalExecutor, parallelism 8), ``dag-processor``
and ``triggerer`` as separate processes on a fresh database of the PostgreSQL server
of ``METRONOME_TEST_POSTGRES_URL``, the emulator as a process, a SQLite warehouse.
Every run is a full refresh of the same ``--rows`` rows (``scripts/demo_data.py``: a
third keyed by ingest alias) with the param ``partitions``; before each, the emulator
is reset to the seed (its latency set) and the warehouse is rewritten (the results
table dropped). After each, the emulator's active configurations must be exactly the
desired ones (no duplicate, none missing: ``tests/deployment/scenarios.py``).

Figures of a run, from the REST API: the sync's rows/s (first mapped sync task's
start to the last one's end) and the whole DAG run's (run start to end). CPU, sampled
from ``/proc`` every ``--sample-s`` while the run goes: the machine's busy cores over
the sync window, and each process group's share (the sync task processes, their
supervisors, the emulator, scheduler, api-server, the other Airflow processes,
PostgreSQL); each sync task's CPU over its life (short-lived processes are sampled, so
the last ``--sample-s`` of each may be missed).

    METRONOME_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:55440/postgres \\
        uv run python -m bench.partitions_deployment [--latency-ms 50 20] [--repeats 3]

Prints a table and one JSON line; writes ``bench/results/partitions.json``. Without
``METRONOME_TEST_POSTGRES_URL`` it prints ``skipped: ...`` (and a JSON line saying so)
and measures nothing. Starts and stops everything it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from scripts import demo_data
from tests.deployment import harness, scenarios

RESULTS = Path(__file__).resolve().parent / "results"
SYNC_TASK = "sync_billing_configs"
AIRFLOW_GROUPS = ("scheduler", "supervisors", "api-server", "dag-processor", "triggerer")
# A task process's title (airflow.sdk task_runner.startup); LocalExecutor workers are
# "airflow worker -- LocalExecutor: ...".
TASK_TITLE = re.compile(r"^airflow worker -- ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


class CpuSampler:
    """Cumulative CPU seconds of the machine and of each process group, sampled in a thread.

    Groups: each deployment process (by harness name) and its descendants, with the
    task processes (``task:<ti id>``) and the scheduler's other descendants (the
    LocalExecutor workers, which supervise the tasks: ``supervisors``) apart; the
    PostgreSQL server listening on ``postgres_port``; this process (``bench``). A
    process's CPU stays counted after it exits (its last sample).
    """

    def __init__(self, roots: dict[str, int], postgres_port: int | None, interval: float) -> None:
        self.roots = roots
        self.postgres_port = postgres_port
        self.interval = interval
        self.samples: list[tuple[float, float, float, dict[str, float]]] = []
        self._seen: dict[int, tuple[str, float]] = {}  # pid -> (group, cumulative CPU s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")
        self._postmasters: set[int] = set()

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def _machine(self) -> tuple[float, float]:
        """(busy, total) CPU seconds of the whole machine since boot."""
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:8]]
        user, nice, system, idle, iowait, irq, softirq = fields
        busy = user + nice + system + irq + softirq
        return busy / self._tick, (busy + idle + iowait) / self._tick

    def _group(self, pid: int, title: str, ancestors: list[int]) -> str | None:
        if pid == os.getpid():
            return "bench"
        task = TASK_TITLE.match(title.strip())
        if task:
            return "task:" + task.group(1)
        for name, root in self.roots.items():
            if root == pid:
                return name
            if root in ancestors:
                return "supervisors" if name == "scheduler" else name
        if any(a in self._postmasters for a in (pid, *ancestors)):
            return "postgres"
        return None

    def sample(self) -> None:
        now = time.time()
        busy, total = self._machine()
        parents: dict[int, int] = {}
        info: dict[int, tuple[str, float]] = {}
        for p in psutil.process_iter(["ppid", "cmdline", "cpu_times"]):
            cpu = p.info["cpu_times"]
            if cpu is None:
                continue
            parents[p.pid] = p.info["ppid"] or 0
            info[p.pid] = (" ".join(p.info["cmdline"] or []), cpu.user + cpu.system)
        if self.postgres_port is not None:  # the postmaster's command line names its port
            flag = f"-p {self.postgres_port}"
            self._postmasters = {pid for pid, (cmd, _) in info.items() if "postgres" in cmd and flag in cmd}
        for pid, (title, cpu) in info.items():
            ancestors: list[int] = []
            cursor = parents.get(pid, 0)
            while cursor > 1 and len(ancestors) < 20:
                ancestors.append(cursor)
                cursor = parents.get(cursor, 0)
            known = self._seen.get(pid)
            group = self._group(pid, title, ancestors)
            if group is None:
                continue
            if known is not None and known[0].startswith("task:"):
                group = known[0]  # a task keeps its group to the end
            self._seen[pid] = (group, cpu)
        groups: dict[str, float] = {}
        for group, cpu in self._seen.values():
            groups[group] = groups.get(group, 0.0) + cpu
        self.samples.append((now, busy, total, groups))

    def at(self, moment: float) -> tuple[float, dict[str, float]]:
        """(machine busy CPU s, CPU s per group) at ``moment``, interpolated between samples."""
        samples = self.samples
        after = next((i for i, s in enumerate(samples) if s[0] >= moment), len(samples) - 1)
        before = max(after - 1, 0)
        t0, b0, _, g0 = samples[before]
        t1, b1, _, g1 = samples[after]
        w = 0.0 if t1 <= t0 else min(max((moment - t0) / (t1 - t0), 0.0), 1.0)
        groups = {k: g0.get(k, 0.0) + w * (g1.get(k, 0.0) - g0.get(k, 0.0)) for k in set(g0) | set(g1)}
        return b0 + w * (b1 - b0), groups

    def final(self) -> dict[str, float]:
        return self.samples[-1][3]


def _settle(roots: dict[str, int], postgres_port: int | None, settle: tuple[float, float]) -> float:
    """Wait (at most ``settle[1]`` s) until processes outside the deployment use < ``settle[0]`` cores.

    Others may share the machine; their load is measured during each run either way.
    """
    threshold, longest = settle
    started = time.monotonic()
    while time.monotonic() - started < longest:
        with CpuSampler(roots, postgres_port, 10.0) as cpu:
            time.sleep(2.0)
        (t0, b0, _, g0), (t1, b1, _, g1) = cpu.samples[0], cpu.samples[-1]
        outside = (b1 - b0 - sum(g1.values()) + sum(g0.values())) / (t1 - t0)
        if outside < threshold:
            break
    return time.monotonic() - started


def _stamp(value: str | None) -> float:
    if not value:
        raise harness.DeploymentError("a finished task instance without start_date/end_date")
    return datetime.fromisoformat(value).timestamp()


def _postgres_port(url: str) -> int | None:
    parsed = urllib.parse.urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", None, ""):
        return None  # not on this machine: its CPU is not sampled
    return parsed.port or 5432


def _run(
    dep: harness.Deployment,
    data: demo_data.DemoData,
    partitions: int,
    latency_ms: float,
    postgres_port: int | None,
    sample_s: float,
    settle: tuple[float, float],
) -> dict[str, Any]:
    """One full-refresh DAG run with ``partitions``, from a fresh emulator and warehouse."""
    dep.wait_idle()
    dep.write_warehouse(data.rows)
    dep.emulator.reset(data.seed, latency_ms=latency_ms)
    roots = {name: p.pid for name, p in dep.processes.items()}
    waited = _settle(roots, postgres_port, settle)
    with CpuSampler(roots, postgres_port, sample_s) as cpu:
        run_id = dep.trigger(harness.SYNC_DAG, {"full_refresh": True, "partitions": partitions})
        state = dep.wait_for_runs(harness.SYNC_DAG, [run_id], timeout=1800)[run_id]
        run = dep.api("GET", f"/dags/{harness.SYNC_DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
        tis = dep.task_instances(harness.SYNC_DAG, run_id)
        time.sleep(sample_s)  # one more sample after the run's end
    calls = dep.emulator.admin("stats")["requests_total"]
    check = scenarios.compare(dep.emulator, data.rows)
    syncs = sorted((t for t in tis if t["task_id"] == SYNC_TASK), key=lambda t: t["map_index"])
    out: dict[str, Any] = {
        "partitions": partitions,
        "latency_ms": latency_ms,
        "run_id": run_id,
        "state": state,
        "task_states": {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in tis},
        "final_state": {
            "exact": check.exact,
            "desired": check.desired,
            "active": check.active,
            "duplicates": sum(n - 1 for n in check.duplicates.values()),
            "missing": len(check.missing),
            "unexpected": len(check.unexpected),
            "wrong_tax": len(check.wrong_tax),
        },
        "api_calls": calls,
    }
    if state != "success" or len(syncs) != partitions:
        out["error"] = f"run {state}, {len(syncs)} sync task(s)\n{dep.log_tails()}"
        return out
    start = min(_stamp(t["start_date"]) for t in syncs)
    end = max(_stamp(t["end_date"]) for t in syncs)
    run_start, run_end = _stamp(run["start_date"]), _stamp(run["end_date"])
    rows = len(data.rows)
    final = cpu.final()
    per_task = []
    for t in syncs:
        t_start, t_end = _stamp(t["start_date"]), _stamp(t["end_date"])
        task_cpu = final.get(f"task:{t['id']}")
        marks = _log_marks(dep, run_id, t["map_index"])
        per_task.append(
            {
                "map_index": t["map_index"],
                "seconds": round(t_end - t_start, 2),
                "cpu_s": None if task_cpu is None else round(task_cpu, 2),
                "cores": None if task_cpu is None else round(task_cpu / (t_end - t_start), 2),
                "phases": _phases(t_start, marks, t_end),
                "_marks": marks,
            }
        )
    sync_ids = {t["id"] for t in syncs}
    # The reconcile phase: from the first task's "Read ..." line to the last one's "Sync done".
    reads = [p["_marks"]["read"] for p in per_task if "read" in p["_marks"]]
    dones = [p["_marks"]["done"] for p in per_task if "done" in p["_marks"]]
    for p in per_task:
        del p["_marks"]
    sync_cpu = sum(p["cpu_s"] or 0.0 for p in per_task)
    out.update(
        {
            "sync_seconds": round(end - start, 2),
            "sync_rows_per_second": round(rows / (end - start), 1),
            "run_seconds": round(run_end - run_start, 2),
            "run_rows_per_second": round(rows / (run_end - run_start), 1),
            "sync_tasks": per_task,
            "cpu_sync_window": _cpu_between(cpu, start, end, sync_ids),
            "cpu_reconcile_window": _cpu_between(cpu, min(reads), max(dones), sync_ids)
            if len(reads) == len(dones) == partitions
            else None,
            "reconcile_rows_per_second": round(rows / (max(dones) - min(reads)), 1)
            if len(reads) == len(dones) == partitions
            else None,
            "sync_tasks_cpu_s": round(sync_cpu, 2),
            "sync_tasks_cpu_ms_per_call": round(1000 * sync_cpu / max(calls, 1), 2),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
            "waited_for_quiet_s": round(waited, 1),
        }
    )
    return out


def _cpu_between(cpu: CpuSampler, start: float, end: float, sync_ids: set[str]) -> dict[str, Any]:
    """Busy cores of the machine and of each group between two moments (CPU s per s)."""
    busy0, groups0 = cpu.at(start)
    busy1, groups1 = cpu.at(end)
    window = max(end - start, 1e-6)
    groups: dict[str, float] = {}
    for key in set(groups0) | set(groups1):
        name = key
        if key.startswith("task:"):
            name = "sync tasks" if key[5:] in sync_ids else "other tasks"
        groups[name] = groups.get(name, 0.0) + groups1.get(key, 0.0) - groups0.get(key, 0.0)
    # What the machine ran besides this deployment, its database and this process.
    groups["outside"] = max(busy1 - busy0 - sum(groups.values()), 0.0)
    return {
        "seconds": round(window, 2),
        "machine_busy_cores": round((busy1 - busy0) / window, 2),
        "cores_by_group": {k: round(v / window, 2) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
    }


# The engine's log lines that end each of its phases (the first of each in the task log).
_MARKS = (
    ("start", "Sync starts:"),
    ("delivery_methods", "The account has "),
    ("aliases", "Aliases resolved:"),
    ("read", "Read "),
    ("done", "Sync done:"),
)
PHASES = (
    ("task start to sync start", None, "start"),
    ("SDK, delivery methods", "start", "delivery_methods"),
    ("alias resolution (customer pages)", "delivery_methods", "aliases"),
    ("read, stage", "aliases", "read"),
    ("reconcile (reads, writes)", "read", "done"),
    ("results table, XCom, exit", "done", None),
)


def _log_marks(dep: harness.Deployment, run_id: str, map_index: int) -> dict[str, float]:
    """When each engine phase ended, from the task's log file (JSON lines)."""
    folder = (
        dep.home / "logs" / f"dag_id={harness.SYNC_DAG}" / f"run_id={run_id}" / f"task_id={SYNC_TASK}"
        / f"map_index={map_index}"
    )  # fmt: skip
    logs = sorted(folder.glob("attempt=*.log"))
    marks: dict[str, float] = {}
    if not logs:
        return marks
    for line in logs[-1].read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event = str(entry.get("event", ""))
        for name, prefix in _MARKS:
            if name not in marks and event.startswith(prefix) and entry.get("timestamp"):
                marks[name] = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
    return marks


def _phases(task_start: float, marks: dict[str, float], task_end: float) -> dict[str, float]:
    """Seconds of each phase of one sync task (a phase whose log line is missing is left out)."""
    out = {}
    for name, begin, finish in PHASES:
        b = marks.get(begin) if begin is not None else task_start
        f = marks.get(finish) if finish is not None else task_end
        if b is not None and f is not None:
            out[name] = round(f - b, 2)
    return out


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def _phase_median(runs: list[dict[str, Any]], name: str) -> float | None:
    """A phase's seconds: the mean over a run's sync tasks, then the median over runs."""
    means = [
        statistics.mean(p["phases"][name] for p in r["sync_tasks"])
        for r in runs
        if all(name in p["phases"] for p in r["sync_tasks"])
    ]
    return _median(means) if means else None


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The median figures of each (latency, partitions); speed-up against 1 partition."""
    out = []
    keys = sorted({(r["latency_ms"], r["partitions"]) for r in runs}, key=lambda k: (-k[0], k[1]))
    for latency, partitions in keys:
        mine = [r for r in runs if (r["latency_ms"], r["partitions"]) == (latency, partitions)]
        ok = [r for r in mine if "error" not in r]
        entry: dict[str, Any] = {
            "latency_ms": latency,
            "partitions": partitions,
            "runs": len(mine),
            "failed_runs": len(mine) - len(ok),
            "exact_runs": sum(1 for r in mine if r["final_state"]["exact"]),
            "max_duplicates": max(r["final_state"]["duplicates"] for r in mine),
            "max_missing": max(r["final_state"]["missing"] for r in mine),
            "active_equals_desired": all(
                r["final_state"]["active"] == r["final_state"]["desired"] for r in mine
            ),
        }
        if ok:
            groups = {g for r in ok for g in r["cpu_sync_window"]["cores_by_group"]}
            entry.update(
                {
                    "sync_rows_per_second": _median([r["sync_rows_per_second"] for r in ok]),
                    "sync_rows_per_second_runs": [r["sync_rows_per_second"] for r in ok],
                    "sync_seconds": _median([r["sync_seconds"] for r in ok]),
                    "run_seconds": _median([r["run_seconds"] for r in ok]),
                    "run_rows_per_second": _median([r["run_rows_per_second"] for r in ok]),
                    "api_calls": int(statistics.median([r["api_calls"] for r in ok])),
                    "machine_busy_cores": _median([r["cpu_sync_window"]["machine_busy_cores"] for r in ok]),
                    "cores_by_group": {
                        g: _median([r["cpu_sync_window"]["cores_by_group"].get(g, 0.0) for r in ok])
                        for g in sorted(groups)
                    },
                    "cores_per_sync_task": _median(
                        [p["cores"] for r in ok for p in r["sync_tasks"] if p["cores"] is not None]
                    ),
                    "sync_tasks_cpu_ms_per_call": _median([r["sync_tasks_cpu_ms_per_call"] for r in ok]),
                    # Each phase: the mean over the run's sync tasks, then the median over runs.
                    "phases": {name: _phase_median(ok, name) for name, _, _ in PHASES},
                }
            )
            reconciled = [r for r in ok if r["cpu_reconcile_window"] is not None]
            cores = [r["cpu_reconcile_window"]["cores_by_group"] for r in reconciled]
            if reconciled:
                entry["reconcile"] = {
                    "rows_per_second": _median([r["reconcile_rows_per_second"] for r in reconciled]),
                    "machine_busy_cores": _median(
                        [r["cpu_reconcile_window"]["machine_busy_cores"] for r in reconciled]
                    ),
                    "sync_tasks_cores": _median([c.get("sync tasks", 0.0) for c in cores]),
                    "emulator_cores": _median([c.get("emulator", 0.0) for c in cores]),
                }
        out.append(entry)
    for entry in out:
        one = next((e for e in out if e["latency_ms"] == entry["latency_ms"] and e["partitions"] == 1), None)
        if one and "sync_rows_per_second" in one and "sync_rows_per_second" in entry:
            entry["speedup_vs_1"] = round(entry["sync_rows_per_second"] / one["sync_rows_per_second"], 2)
            entry["run_speedup_vs_1"] = round(entry["run_rows_per_second"] / one["run_rows_per_second"], 2)
            if "reconcile" in one and "reconcile" in entry:
                entry["reconcile_speedup_vs_1"] = round(
                    entry["reconcile"]["rows_per_second"] / one["reconcile"]["rows_per_second"], 2
                )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[50.0, 20.0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (the median is kept)")
    parser.add_argument("--sample-s", type=float, default=0.5, help="CPU sampling interval")
    parser.add_argument(
        "--quiet-cores",
        type=float,
        nargs=2,
        default=[0.3, 120.0],
        metavar=("CORES", "SECONDS"),
        help="before each run, wait up to SECONDS while other processes use CORES or more",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("METRONOME_TEST_POSTGRES_URL"),
        help="a PostgreSQL server (default: METRONOME_TEST_POSTGRES_URL); a fresh database is made on it",
    )
    args = parser.parse_args(argv)
    if not args.postgres_url:
        reason = (
            "METRONOME_TEST_POSTGRES_URL is not set: the deployment's metadata database is PostgreSQL "
            "(e.g. METRONOME_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:55440/postgres)"
        )
        print(f"skipped: {reason}")
        skipped = {"bench": "partitions_deployment", "skipped": reason}
        print(json.dumps(skipped))
        return skipped
    data = demo_data.build(args.rows, with_bad_rows=False)
    pg_port = _postgres_port(args.postgres_url)
    out: dict[str, Any] = {
        "bench": "partitions_deployment",
        "rows": args.rows,
        "partitions": args.partitions,
        "latencies_ms": args.latency_ms,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
    }
    # A temp dir of its own for the whole deployment (inherited through TMPDIR): the
    # customer locks are a file in the temp dir, and other syncs on this machine (tests,
    # demos, over the same demo customer ids) must neither hold this bench's customers
    # nor wait for them.
    private_tmp = tempfile.mkdtemp(prefix="apm-bench-partitions-")
    os.environ["TMPDIR"] = private_tmp
    tempfile.tempdir = None
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    try:
        _measure(args, data, pg_port, out, runs, started)
    except BaseException:
        print(f"the deployment's files are kept in {private_tmp}", file=sys.stderr)
        raise
    shutil.rmtree(private_tmp, ignore_errors=True)
    out["runs"] = runs
    out["summary"] = summarize(runs)
    out["total_seconds"] = round(time.monotonic() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "partitions.json").write_text(json.dumps(out, indent=2))
    _print(out)
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}))
    if any("error" in r or not r["final_state"]["exact"] for r in runs):
        sys.exit("some runs failed or did not end exact: see bench/results/partitions.json")
    return out


def _measure(
    args: argparse.Namespace,
    data: demo_data.DemoData,
    pg_port: int | None,
    out: dict[str, Any],
    runs: list[dict[str, Any]],
    started: float,
) -> None:
    warm = demo_data.build(200, with_bad_rows=False)
    with harness.running_deployment(args.postgres_url, seed=data.seed) as dep:
        out["startup_seconds"] = round(time.monotonic() - started, 1)
        out["parallelism"] = int(dep.env["AIRFLOW__CORE__PARALLELISM"])
        print(f"deployment up in {out['startup_seconds']} s (parallelism {out['parallelism']})", flush=True)
        # Warm-up: the first task processes of a deployment pay for cold caches.
        settle = (args.quiet_cores[0], args.quiet_cores[1])
        _run(dep, warm, max(args.partitions), 0.0, pg_port, args.sample_s, (0.0, 0.0))
        for latency in args.latency_ms:
            for repeat in range(args.repeats):
                for partitions in args.partitions:
                    run = _run(dep, data, partitions, latency, pg_port, args.sample_s, settle)
                    runs.append(run)
                    _progress(run, repeat)


def _progress(run: dict[str, Any], repeat: int) -> None:
    head = f"{run['latency_ms']:g} ms, partitions {run['partitions']}, repeat {repeat + 1}: "
    if "error" in run:
        print(head + run["error"], flush=True)
        return
    cpu = run["cpu_sync_window"]
    print(
        head + f"{run['sync_rows_per_second']} rows/s sync ({run['sync_seconds']} s), DAG run "
        f"{run['run_seconds']} s, {run['api_calls']} calls, machine {cpu['machine_busy_cores']} cores busy "
        f"({cpu['cores_by_group']['outside']} outside), "
        f"tasks {[p['cores'] for p in run['sync_tasks']]} cores each; reconcile "
        f"{run['reconcile_rows_per_second']} rows/s, alias resolution "
        f"{[p['phases'].get('alias resolution (customer pages)') for p in run['sync_tasks']]} s; "
        f"exact: {run['final_state']['exact']}",
        flush=True,
    )


def _print(out: dict[str, Any]) -> None:
    print(
        f"\n{out['rows']:,} rows, full refresh, the example DAG on a LocalExecutor deployment "
        f"(parallelism {out['parallelism']}, {out['cpu_count']} cores); medians of {out['repeats']} runs"
    )
    head = (
        f"{'latency':>7} {'parts':>5} {'sync rows/s':>11} {'x vs 1':>6} {'DAG run s':>9} {'run rows/s':>10} "
        f"{'calls':>6} {'busy cores':>10} {'tasks':>5} {'per task':>8} {'emulator':>8} {'airflow':>7} "
        f"{'outside':>7} {'exact':>5} {'dup':>3} {'miss':>4}"
    )
    print(head)
    for s in out["summary"]:
        if "sync_rows_per_second" not in s:
            print(f"{s['latency_ms']:>5g}ms {s['partitions']:>5}  all {s['runs']} runs failed")
            continue
        g = s["cores_by_group"]
        airflow = sum(
            g.get(k, 0.0) for k in ("scheduler", "supervisors", "api-server", "dag-processor", "triggerer")
        )
        print(
            f"{s['latency_ms']:>5g}ms {s['partitions']:>5} {s['sync_rows_per_second']:>11} "
            f"{s.get('speedup_vs_1', 1.0):>6} {s['run_seconds']:>9} {s['run_rows_per_second']:>10} "
            f"{s['api_calls']:>6} {s['machine_busy_cores']:>10} {g.get('sync tasks', 0.0):>5} "
            f"{s['cores_per_sync_task']:>8} {g.get('emulator', 0.0):>8} {airflow:>7.2f} "
            f"{g.get('outside', 0.0):>7} {s['exact_runs']:>3}/{s['runs']} "
            f"{s['max_duplicates']:>3} {s['max_missing']:>4}"
        )
    print("\nsync task phases (s; mean over the partitions, median over runs), and the reconcile phase alone")
    names = [name for name, _, _ in PHASES]
    print(f"{'latency':>7} {'parts':>5} " + " ".join(f"{n[:14]:>14}" for n in names)
          + f" {'rec. rows/s':>11} {'x vs 1':>6} {'busy':>5} {'tasks':>5}")  # fmt: skip
    for s in out["summary"]:
        if "phases" not in s:
            continue
        rec = s.get("reconcile", {})
        print(
            f"{s['latency_ms']:>5g}ms {s['partitions']:>5} "
            + " ".join(f"{s['phases'][n]!s:>14}" for n in names)
            + f" {rec.get('rows_per_second', '-'):>11} {s.get('reconcile_speedup_vs_1', '-'):>6} "
            f"{rec.get('machine_busy_cores', '-'):>5} {rec.get('sync_tasks_cores', '-'):>5}"
        )
    print(
        "cores: CPU seconds per second of the sync window (first sync task start to last end); "
        "'tasks' = the sync task processes together, 'per task' = each one over its life; "
        "'airflow' = scheduler, task supervisors, api-server, dag-processor, triggerer; "
        "'outside' = processes of neither this deployment, its PostgreSQL nor this bench"
    )


if __name__ == "__main__":
    main()
