"""Shared fixtures: an isolated AIRFLOW_HOME per worker, and a real emulator over HTTP."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Airflow reads its configuration when first imported: isolate it before that.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="apm-airflow-home-")
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# dag.test() serialises DAGs from the DAG bundle: tests write their DAG files here.
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(_AIRFLOW_HOME, "dags")
os.makedirs(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], exist_ok=True)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
for _name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
    os.environ.pop(_name)

from typing import TYPE_CHECKING, Any  # noqa: E402

import pytest  # noqa: E402
import respx.mocks  # noqa: E402

# respx mocks httpcore's connection pools by default; the provider's transport for
# direct connections is its own (client/stdlib_transport.py), so respx is told to
# stand in at httpx's choice of transport instead, whatever the transport.
respx.mocks.DEFAULT_MOCKER = respx.mocks.HTTPXMocker.name

from airflow_provider_metronome.emulator.testing import RunningEmulator, running_emulator  # noqa: E402
from tests import seeds  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = "tok_live_3f9a1c0b8e7d6a5f4e3d2c1b0a99"


@pytest.fixture(scope="session")
def airflow_home() -> str:
    """The AIRFLOW_HOME of this test process."""
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def _emulator_process() -> Iterator[RunningEmulator]:
    with running_emulator(seed=seeds.small_seed(), token=TOKEN) as emu:
        yield emu


@pytest.fixture
def emulator(_emulator_process: RunningEmulator) -> Iterator[RunningEmulator]:
    """A running emulator, reset to :func:`tests.seeds.small_seed` with no faults."""
    emu = _emulator_process
    emu.admin("reset", seeds.small_seed())
    emu.admin("faults", _NO_FAULTS)
    emu.admin("settings", {"providers_page_size": 50})
    yield emu
    emu.admin("faults", _NO_FAULTS)


_NO_FAULTS: dict[str, Any] = {**seeds.NO_FAULTS, "retry_after_ms": 50, "seed": 0}


@pytest.fixture(scope="session")
def airflow_db(airflow_home: str) -> str:
    """A migrated metadata database (SQLite in AIRFLOW_HOME), made once per test process."""
    import subprocess
    import sys
    from pathlib import Path

    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture
def metronome_conn(monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator) -> str:
    """An Airflow connection ``metronome_default`` pointing at the emulator."""
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_METRONOME_DEFAULT",
        json.dumps({"conn_type": "metronome", "host": emulator.url, "password": TOKEN}),
    )
    return "metronome_default"


AVALARA_PASSWORD = "Av4lara-P@ss-7f3e9c"


@pytest.fixture
def avalara_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow connection ``avalara_default``."""
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_AVALARA_DEFAULT",
        json.dumps(
            {
                "conn_type": "avalara",
                "login": "tax@example.com",
                "password": AVALARA_PASSWORD,
                "extra": {"environment": "SANDBOX", "commit_transactions": True},
            }
        ),
    )
    return "avalara_default"
