"""After every other test (see conftest): no secret in any file, XCom value or metadata table.

The API token and the Avalara password reach the deployment only as ``AIRFLOW_CONN_*``
variables of its processes; ``test_browser`` checks every page and API response the UI showed.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING

import pytest

from tests.deployment import harness

if TYPE_CHECKING:
    from tests.deployment.harness import Deployment

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(300)]

SECRETS = {"API token": harness.TOKEN, "Avalara password": harness.AVALARA_PASSWORD}


def test_no_secret_in_any_file_of_airflow_home(deployment: Deployment, synced_run: str) -> None:
    files = [p for p in deployment.home.rglob("*") if p.is_file()]
    hits = [
        f"{name} in {path.relative_to(deployment.home)}"
        for path in files
        for name, secret in SECRETS.items()
        if secret.encode() in path.read_bytes()
    ]
    assert any(p.suffix == ".log" and "dag_id=" in str(p) for p in files), "task logs are expected here"
    assert not hits, hits


def test_no_secret_in_xcom(deployment: Deployment, synced_run: str) -> None:
    values = deployment.xcom_values()
    assert values, "the runs pushed XCom"
    hits = [
        f"{name} in {where}"
        for where, value in values
        for name, secret in SECRETS.items()
        if secret in json.dumps(value)
    ]
    assert not hits, hits


def test_no_secret_in_the_metadata_database(deployment: Deployment, synced_run: str) -> None:
    import psycopg2

    url = urllib.parse.urlparse(deployment.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    conn = psycopg2.connect(url._replace(scheme="postgresql").geturl())
    hits = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            tables = [t for (t,) in cur.fetchall()]
            for table in tables:
                for name, secret in SECRETS.items():
                    cur.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', (f"%{secret}%",))
                    (count,) = cur.fetchone() or (0,)
                    if count:
                        hits.append(f"{name} in {count} row(s) of {table}")
    finally:
        conn.close()
    assert len(tables) > 20, tables
    assert not hits, hits
