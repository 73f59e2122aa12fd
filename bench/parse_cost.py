"""What each example DAG file adds to Airflow's parse time, against an empty DAG file.

Each file is executed in a fresh interpreter that has already imported
``airflow.sdk`` (as the DAG processor has), timed from the file's first line to its
end; median of repeats.

    uv run python -m bench.parse_cost --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMPTY_DAG = """
import pendulum
from airflow.sdk import DAG

with DAG("empty", schedule=None, start_date=pendulum.datetime(2024, 1, 1)) as dag:
    pass
"""
# The DAG processor has Airflow loaded when it parses a file: load it first, then time
# only what the file itself adds (its imports and its DAG definition).
TIMER = (
    "import time, runpy, sys, pendulum, airflow.sdk, airflow.sdk.definitions.dag; "
    "t = time.perf_counter(); runpy.run_path(sys.argv[1]); print(time.perf_counter() - t)"
)


def _time(path: Path, repeats: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", TIMER, str(path)], capture_output=True, text=True, env=env, check=True
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Production parsers cache bytecode: drop PYTHONDONTWRITEBYTECODE and warm the
        # cache once, so the figure is parsing, not compiling every module from source.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update({"AIRFLOW_HOME": tmp, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
        empty = Path(tmp) / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        for warm in (empty, *sorted((ROOT / "dags").glob("*.py"))):
            _time(warm, 1, env)
        base = _time(empty, args.repeats, env)
        results = {"empty_dag_ms": round(base * 1000, 1)}
        for dag in sorted((ROOT / "dags").glob("*.py")):
            cost = _time(dag, args.repeats, env)
            results[f"{dag.stem}_ms"] = round(cost * 1000, 1)
            results[f"{dag.stem}_added_ms"] = round((cost - base) * 1000, 1)
    print(json.dumps({"benchmark": "parse_cost", "repeats": args.repeats, **results}))


if __name__ == "__main__":
    main()
