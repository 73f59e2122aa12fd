"""A real Airflow 3 deployment for the deployment and browser tests.

:func:`running_deployment` starts, as separate processes, the Metronome emulator and
``airflow api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and
``triggerer`` on a fresh PostgreSQL metadata database, with a temporary AIRFLOW_HOME
whose DAGs folder is a copy of the repository's ``dags/``. The warehouse is a SQLite
file; the connections reach every process as ``AIRFLOW_CONN_*`` variables.

Every process runs in its own process group and is killed at exit, whatever happened;
every log lands in ``AIRFLOW_HOME/deployment-logs`` (task logs in ``AIRFLOW_HOME/logs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests import seeds

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

REPO = Path(__file__).resolve().parents[2]
SYNC_DAG = "metronome_billing_config_sync"
AVALARA_DAG = "metronome_avalara_credentials"
MIGRATION_DAG = "metronome_customer_migration"
DAG_IDS = (SYNC_DAG, AVALARA_DAG, MIGRATION_DAG)
AIRFLOW = str(Path(sys.executable).parent / "airflow")

# Secrets the tests look for everywhere (pages, files, XCom, the metadata database).
TOKEN = "tok_deploy_6c1e0f9a8b7d4e2f3a5c9d0b1e7f"
AVALARA_USER = "tax@example.com"
AVALARA_PASSWORD = "Av4lara-Depl0y-P@ss-91c3e5"
METRONOME_APP_URL = "https://app.metronome.com"

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class DeploymentError(RuntimeError):
    """The deployment could not start, or stopped working."""


class DagImportError(Exception):
    """A DAG file of the deployment does not import: no use waiting."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, lines: int = 20, width: int = 300) -> str:
    """The last ``lines`` lines of a file, each cut to ``width`` characters."""
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"({path}: {err})"
    return "\n".join(line[:width] for line in text.splitlines()[-lines:])


@dataclass
class Emulator:
    """The emulator process and its admin API (``/_emulator/``)."""

    url: str
    token: str
    admin_token: str = ""

    def admin(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method="POST" if body is not None else "GET",
            headers={"Content-Type": "application/json", "X-Emulator-Admin-Token": self.admin_token},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def reset(self, seed: dict[str, Any], **faults: float) -> None:
        """Replace the whole state with ``seed``; set the faults (none unless given)."""
        self.admin("reset", seed)
        self.admin("faults", {**seeds.NO_FAULTS, **faults})


@dataclass
class Deployment:
    """A running deployment: REST API, emulator, warehouse, CLI, logs."""

    home: Path
    api_url: str
    emulator: Emulator
    warehouse: Path
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    jwt: str = ""

    # -- REST API -------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, *, expect: Iterable[int] = (200,)) -> Any:
        """Call the REST API (``path`` below ``/api/v2``) and return the decoded JSON."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.jwt:
            headers["Authorization"] = f"Bearer {self.jwt}"
        req = urllib.request.Request(
            f"{self.api_url}/api/v2{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        if status not in tuple(expect):
            raise DeploymentError(f"{method} /api/v2{path} answered {status}: {raw[:2000]!r}")
        return json.loads(raw) if raw else None

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Trigger a manual run (no logical date) with ``conf``; return its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100&offset={len(out)}&order_by=id")
            out.extend(page["dag_runs"])
            if not page["dag_runs"] or len(out) >= page["total_entries"]:
                return out

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        run = urllib.parse.quote(run_id, safe="")
        tis: list[dict[str, Any]] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run}/taskInstances?limit=100")[
            "task_instances"
        ]
        return tis

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Each task instance's state, by ``task_id`` (``task_id[i]`` for mapped instance ``i``)."""
        return {
            f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]: ti["state"]
            for ti in self.task_instances(dag_id, run_id)
        }

    def wait_for_runs(
        self, dag_id: str, run_ids: Iterable[str] | None = None, *, timeout: float = 240
    ) -> dict[str, str]:
        """Wait until the given runs (default: every run of the DAG) are finished; return their states.

        Raises :class:`DeploymentError` (with the unfinished runs' task states) on timeout.
        """
        wanted = set(run_ids) if run_ids is not None else None
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            runs = {r["dag_run_id"]: r["state"] for r in self.runs(dag_id)}
            if wanted is not None:
                missing = wanted - runs.keys()
                if missing:
                    raise DeploymentError(f"runs not found: {sorted(missing)}")
                runs = {k: v for k, v in runs.items() if k in wanted}
            pending = {k: v for k, v in runs.items() if v not in TERMINAL_RUN_STATES}
            if not pending:
                return runs
            if time.monotonic() > deadline:
                detail = {run_id: self.task_states(dag_id, run_id) for run_id in pending}
                raise DeploymentError(
                    f"runs of {dag_id} not finished after {timeout:.0f}s: {json.dumps(detail)}"
                )
            time.sleep(1)

    def wait_idle(self, timeout: float = 240) -> None:
        """Wait until no run of any of the example DAGs is queued or running."""
        for dag_id in DAG_IDS:
            self.wait_for_runs(dag_id, timeout=timeout)

    def xcom_values(self) -> list[tuple[str, Any]]:
        """Every XCom entry of the example DAGs with its (stringified) value, through the REST API."""
        out: list[tuple[str, Any]] = []
        for dag_id in DAG_IDS:
            entries = self.api("GET", f"/dags/{dag_id}/dagRuns/~/taskInstances/~/xcomEntries?limit=1000")
            for e in entries["xcom_entries"]:
                run = urllib.parse.quote(e["run_id"], safe="")
                key = urllib.parse.quote(e["key"], safe="")
                value = self.api(
                    "GET",
                    f"/dags/{dag_id}/dagRuns/{run}/taskInstances/{e['task_id']}/xcomEntries/{key}"
                    f"?map_index={e['map_index']}&stringify=true",
                )
                out.append((f"{dag_id}/{e['run_id']}/{e['task_id']}[{e['map_index']}]/{e['key']}", value))
        return out

    # -- CLI, warehouse -------------------------------------------------------------------------

    def airflow_cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run ``airflow ARGS`` against this deployment (its config, its metadata database)."""
        return subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def write_warehouse(self, rows: list[dict[str, Any]]) -> None:
        """Replace the warehouse table ``customer_billing_configs`` with ``rows``; drop the results table.

        Each scenario starts Metronome afresh (the emulator is reset), so the results
        table of an earlier scenario, which vouches for configurations that no longer
        exist, goes too.
        """
        import sqlite3

        from scripts import demo_data

        demo_data.write_sqlite(str(self.warehouse), rows)
        db = sqlite3.connect(self.warehouse)
        with db:
            db.execute("DROP VIEW IF EXISTS metronome_sync_results_latest")
            db.execute("DROP TABLE IF EXISTS metronome_sync_results")
        db.close()

    # -- processes and logs ---------------------------------------------------------------------

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise DeploymentError(f"deployment processes exited: {dead}\n{self.log_tails()}")

    def log_tails(self, lines: int = 20) -> str:
        """The tail of every process log, and of the most recent task logs."""
        parts = [f"== {p.name} (tail)\n{tail(p, lines)}" for p in sorted(self.log_dir.glob("*.log"))]
        task_logs = sorted(
            (self.home / "logs").glob("dag_id=*/**/*.log"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        parts += [f"== task log {p.relative_to(self.home)} (tail)\n{tail(p, 15)}" for p in task_logs[:4]]
        return f"full logs in {self.log_dir} and {self.home / 'logs'}\n" + "\n".join(parts)


def _postgres_database(server_url: str) -> tuple[str, str]:
    """Create a fresh database on the server of ``server_url``; return (its name, its SQLAlchemy URL)."""
    import psycopg2

    name = f"apm_deploy_{secrets.token_hex(4)}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    parsed = urllib.parse.urlparse(server_url)
    url = parsed._replace(scheme="postgresql+psycopg2", path=f"/{name}").geturl()
    return name, url


def _drop_database(server_url: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def _start(
    name: str, cmd: list[str], env: dict[str, str], log_dir: Path, procs: dict[str, subprocess.Popen[bytes]]
) -> None:
    log = (log_dir / f"{name}.log").open("wb")
    procs[name] = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    log.close()


def _stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process group, wait a little, then SIGKILL whatever is left."""
    for p in procs.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for p in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    for p in procs.values():
        # The group may outlive its leader (LocalExecutor workers, task supervisors).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)


def _wait(
    what: str, check: Any, timeout: float, procs: dict[str, subprocess.Popen[bytes]], logs: Path
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        if dead:
            raise DeploymentError(f"while waiting for {what}, processes exited: {dead}")
        try:
            value = check()
        except (OSError, ValueError, DeploymentError) as err:
            last = err
        else:
            if value:
                return value
            last = value
        time.sleep(0.5)
    raise DeploymentError(f"{what}: not ready after {timeout:.0f}s (last: {last!r})")


def _http_json(url: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def airflow_env(home: Path, db_url: str, api_port: int, emulator_url: str, warehouse: Path) -> dict[str, str]:
    """The environment of every Airflow process (and CLI call) of the deployment."""
    from cryptography.fernet import Fernet

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST_"))}
    api_url = f"http://127.0.0.1:{api_port}"
    base.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__API__BASE_URL": f"{api_url}/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # The scheduler's and triggerer's log servers: free ports, so two deployments can coexist.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # app_url: where the task's "Metronome" button points for a non-production API.
            "AIRFLOW_CONN_METRONOME_DEFAULT": json.dumps(
                {
                    "conn_type": "metronome",
                    "host": emulator_url,
                    "password": TOKEN,
                    "extra": {"app_url": METRONOME_APP_URL},
                }
            ),
            "AIRFLOW_CONN_AVALARA_DEFAULT": json.dumps(
                {
                    "conn_type": "avalara",
                    "login": AVALARA_USER,
                    "password": AVALARA_PASSWORD,
                    "extra": {"environment": "SANDBOX", "commit_transactions": True},
                }
            ),
            "AIRFLOW_CONN_BILLING_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        }
    )
    return base


def _start_emulator(
    log_dir: Path, seed: dict[str, Any], procs: dict[str, subprocess.Popen[bytes]]
) -> Emulator:
    seed_path = log_dir / "emulator-seed.json"
    port_path = log_dir / "emulator.port"
    seed_path.write_text(json.dumps(seed))
    cmd = [
        sys.executable, "-m", "airflow_provider_metronome.emulator", "--host", "127.0.0.1", "--port", "0",
        "--token", TOKEN, "--seed", str(seed_path), "--port-file", str(port_path),
    ]  # fmt: skip
    admin_token = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["METRONOME_EMULATOR_ADMIN_TOKEN"] = admin_token
    _start("emulator", cmd, env, log_dir, procs)
    _wait("the emulator", port_path.exists, 30, procs, log_dir)
    emu = Emulator(url=f"http://127.0.0.1:{int(port_path.read_text())}", token=TOKEN, admin_token=admin_token)
    _wait("the emulator's health", lambda: emu.admin("health"), 30, procs, log_dir)
    return emu


@contextlib.contextmanager
def running_deployment(
    postgres_url: str, *, seed: dict[str, Any], keep: Callable[[], bool] = lambda: False
) -> Iterator[Deployment]:
    """Start the whole deployment; stop and clean it up on exit.

    :param postgres_url: a PostgreSQL server URL; a fresh database is created on it.
    :param seed: the emulator's initial seed.
    :param keep: asked at exit: keep the temporary AIRFLOW_HOME (logs) even when nothing raised.
    """
    home = Path(tempfile.mkdtemp(prefix="apm-deploy-"))
    log_dir = home / "deployment-logs"
    log_dir.mkdir()
    shutil.copytree(REPO / "dags", home / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    warehouse = home / "warehouse.db"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    db_name = ""
    failed = True
    try:
        db_name, db_url = _postgres_database(postgres_url)
        emu = _start_emulator(log_dir, seed, procs)
        port = free_port()
        env = airflow_env(home, db_url, port, emu.url, warehouse)
        dep = Deployment(
            home=home, api_url=f"http://127.0.0.1:{port}", emulator=emu, warehouse=warehouse, env=env,
            log_dir=log_dir, processes=procs,
        )  # fmt: skip
        dep.write_warehouse([])
        migrate = dep.airflow_cli("db", "migrate", timeout=600)
        (log_dir / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise DeploymentError(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-3000:]}")
        _start(
            "api-server",
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env,
            log_dir,
            procs,
        )
        for component in ("scheduler", "dag-processor", "triggerer"):
            _start(component, [AIRFLOW, component], env, log_dir, procs)
        _startup(dep)
        yield dep
        failed = False
    except BaseException as err:
        tails = (
            "\n".join(f"== {p.name} (tail)\n{tail(p)}" for p in sorted(log_dir.glob("*.log")))
            if log_dir.exists()
            else ""
        )
        if isinstance(err, DeploymentError):
            raise DeploymentError(f"{err}\ndeployment files: {home}\n{tails}") from err
        raise
    finally:
        _stop_all(procs)
        if db_name:
            with contextlib.suppress(Exception):
                _drop_database(postgres_url, db_name)
        if not failed and not keep():
            shutil.rmtree(home, ignore_errors=True)


def _startup(dep: Deployment) -> None:
    """Wait for health, get a JWT, wait for the DAGs (no import errors), unpause them."""
    procs, logs = dep.processes, dep.log_dir

    def healthy() -> bool:
        health = _http_json(f"{dep.api_url}/api/v2/monitor/health")
        return all(
            health.get(c, {}).get("status") == "healthy"
            for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    _wait("/api/v2/monitor/health: every component healthy", healthy, 180, procs, logs)
    token = _http_json(f"{dep.api_url}/auth/token")
    dep.jwt = token["access_token"]

    def dags_parsed() -> bool:
        errors = dep.api("GET", "/importErrors")["import_errors"]
        if errors:
            raise DagImportError(f"DAG import errors: {json.dumps(errors)[:3000]}")
        found = {d["dag_id"] for d in dep.api("GET", "/dags?limit=100")["dags"]}
        return set(DAG_IDS) <= found

    try:
        _wait("the example DAGs in /api/v2/dags", dags_parsed, 120, procs, logs)
    except DagImportError as err:
        raise DeploymentError(str(err)) from err
    for dag_id in DAG_IDS:
        dep.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
