"""Customer locks: exclusive across syncs in one process, across processes, released on death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_metronome.sync.locks import FileCustomerLocks, NoCustomerLocks, PostgresCustomerLocks

if TYPE_CHECKING:
    from pathlib import Path

A, B, C = "cust-a", "cust-b", "cust-c"


def test_two_holders_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    first, second = FileCustomerLocks(str(tmp_path)), FileCustomerLocks(str(tmp_path))
    assert first.try_acquire([A, B]) == [A, B]
    assert second.try_acquire([A, B, C]) == [C]
    assert first.try_acquire([A]) == [A], "a holder may ask again for what it holds"
    first.release([A])
    assert second.try_acquire([A, B]) == [A]
    first.close()
    assert second.try_acquire([B]) == [B]
    second.close()


def test_locks_of_other_folders_are_independent(tmp_path: Path) -> None:
    one = FileCustomerLocks(str(tmp_path / "one"))
    two = FileCustomerLocks(str(tmp_path / "two"))
    assert one.try_acquire([A]) == [A]
    assert two.try_acquire([A]) == [A]
    one.close()
    two.close()


_HOLDER = """
import sys, time
from airflow_provider_metronome.sync.locks import FileCustomerLocks
locks = FileCustomerLocks(sys.argv[1])
print(",".join(locks.try_acquire(sys.argv[2].split(","))), flush=True)
time.sleep(600)
"""


def test_another_process_is_excluded_until_it_dies(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path), f"{A},{B}"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"{A},{B}"
        mine = FileCustomerLocks(str(tmp_path))
        assert mine.try_acquire([A, B, C]) == [C]
        os.kill(proc.pid, signal.SIGKILL)  # a killed task leaves no stale lock
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while sorted(mine.try_acquire([A, B])) != [A, B] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(mine.try_acquire([A, B])) == [A, B]
        mine.close()
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_file_is_private(tmp_path: Path) -> None:
    locks = FileCustomerLocks(str(tmp_path / "locks"))
    assert os.stat(locks.path).st_mode & 0o077 == 0
    assert os.stat(tmp_path / "locks").st_mode & 0o077 == 0
    locks.close()


def test_no_locks_grants_everything() -> None:
    locks = NoCustomerLocks()
    assert locks.try_acquire([A, B]) == [A, B]
    locks.close()


@pytest.mark.postgres
def test_postgres_advisory_locks_exclude_sessions_and_die_with_them() -> None:
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    import psycopg2

    first = PostgresCustomerLocks(psycopg2.connect(url))
    second = PostgresCustomerLocks(psycopg2.connect(url))
    try:
        assert sorted(first.try_acquire([A, B])) == [A, B]
        assert second.try_acquire([A, B, C]) == [C]
        first.release([A])
        assert second.try_acquire([A]) == [A]
        first.connection.close()  # the session ends: the server drops its locks
        # The server ends the backend a moment after the client closes its socket,
        # so poll: the lock must come free, within seconds, without anyone releasing it.
        deadline = time.monotonic() + 10
        got: list[str] = []
        while not got and time.monotonic() < deadline:
            got = second.try_acquire([B])
            if not got:
                time.sleep(0.05)
        assert got == [B]
    finally:
        second.close()


def test_one_folder_however_it_is_spelled(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    first = FileCustomerLocks(str(tmp_path / "d"))
    second = FileCustomerLocks(f"{tmp_path}/./d/")
    assert first.try_acquire([A]) == [A]
    assert second.try_acquire([A]) == []
    first.close()
    second.close()


def test_a_sync_without_usable_locks_refuses_to_write(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_provider_metronome.exceptions import MetronomeConfigError
    from airflow_provider_metronome.sync.engine import _default_locks
    from airflow_provider_metronome.sync.locks import LOCK_DIR_ENV

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(LOCK_DIR_ENV, str(blocker))
    with pytest.raises(MetronomeConfigError, match=LOCK_DIR_ENV):
        _default_locks()


@pytest.mark.postgres
def test_postgres_locks_notice_a_lost_session() -> None:
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    import psycopg2

    locks = PostgresCustomerLocks(psycopg2.connect(url))
    admin = psycopg2.connect(url)
    admin.autocommit = True
    try:
        assert locks.try_acquire([A]) == [A]
        locks.verify()
        with locks.connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            (pid,) = cur.fetchone()
        with admin.cursor() as cur:
            # Wait (up to 5 s) until the backend is gone: the check below must see a dead session.
            cur.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        with pytest.raises(Exception):  # noqa: B017, PT011 - psycopg2's error or ours: never silence
            locks.verify()
    finally:
        admin.close()
        locks.connection.close()
