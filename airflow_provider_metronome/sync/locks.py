"""Customer locks: no two syncs reconcile the same customer at the same time.

``setCustomerBillingProviderConfigurations`` creates; it does not upsert, and
Metronome documents no natural key for a configuration
(https://docs.metronome.com/api-reference/customers/set-billing-provider-configurations-for-a-customer).
So "read the customer's configurations, then create what is missing" is only safe if
nobody else does the same for that customer in between. Airflow allows that in many
ways: backfill runs of several dates at once (an Airflow 3 backfill has its own
max-active-runs and ignores the DAG's), a manual run beside a scheduled one, a retry
beside a zombie, two DAGs over overlapping rows. Idempotency-Keys cannot make two
such runs collapse: their batches hold different rows, so their requests differ.

The engine therefore holds a lock on each customer from before it reads that
customer's configurations until its writes for that customer are answered. A second
sync that wants the same customer skips it for now, goes on with the others, and
comes back to it once the lock is free: it then reads what the first one created and
creates nothing twice. Locks are only ever *tried* (never waited on while others are
held), so two syncs cannot deadlock.

Two kinds of lock, both released by the operating system or the database when their
holder dies (a SIGKILLed task never leaves a stale lock):

* :class:`FileCustomerLocks` (the default): byte-range locks on one file. Every task
  on one machine shares them: LocalExecutor, ``airflow standalone``, a single
  Celery worker host.
* :class:`PostgresCustomerLocks`: PostgreSQL session-level advisory locks, shared by
  every machine that reaches the same server (Celery, Kubernetes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import uuid
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

log = logging.getLogger("airflow_provider_metronome.sync")

LOCK_DIR_ENV = "AIRFLOW_PROVIDER_METRONOME_LOCK_DIR"


class CustomerLocks(Protocol):
    """What the engine needs of a lock: try many at once, release, close."""

    #: Where the locks live, for the log (e.g. ``file /tmp/…/customers.lock``).
    description: str

    def try_acquire(self, customer_ids: Sequence[str]) -> list[str]:
        """Take every free lock of ``customer_ids``; return the ones taken (never waits)."""
        ...

    def release(self, customer_ids: Iterable[str]) -> None:
        """Release locks this holder took."""
        ...

    def close(self) -> None:
        """Release everything still held."""
        ...

    def verify(self) -> None:
        """Raise if the locks may have been lost behind the holder's back (before a write)."""
        ...


def _digest(customer_id: str) -> bytes:
    # Customer ids are UUIDs, unique across Metronome accounts, so the id alone names
    # the lock: syncs of different accounts never contend.
    return hashlib.sha256(f"airflow-provider-metronome:{customer_id.lower()}".encode()).digest()


def default_lock_dir() -> str:
    """``$AIRFLOW_PROVIDER_METRONOME_LOCK_DIR``, else a per-user folder in the temp dir."""
    configured = os.environ.get(LOCK_DIR_ENV, "").strip()
    if configured:
        return configured
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"airflow-provider-metronome-{uid}")


class _ProcessTable:
    """The byte ranges this process holds on one lock file, and which holder owns each.

    POSIX record locks belong to the process: a second lock of the same range from
    the same process succeeds, and closing *any* descriptor of the file drops them
    all. So the process keeps one descriptor per file for its whole life, and this
    table keeps two syncs in the same process (threads, tests) apart.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.owners: dict[int, str] = {}
        self.mutex = threading.Lock()


_TABLES: dict[str, _ProcessTable] = {}
_TABLES_MUTEX = threading.Lock()


def _table(path: str) -> _ProcessTable:
    path = os.path.realpath(path)  # one descriptor per file, however the folder is spelled
    with _TABLES_MUTEX:
        table = _TABLES.get(path)
        if table is None:
            table = _TABLES[path] = _ProcessTable(path)
        return table


class FileCustomerLocks:
    """Customer locks as byte-range locks on one file (one byte per customer).

    :param directory: where the lock file lives; every sync that must exclude this one
        has to use the same folder (default: :func:`default_lock_dir`).
    """

    def __init__(self, directory: str | None = None) -> None:
        import fcntl  # POSIX only; imported here so the module imports everywhere

        self._fcntl = fcntl
        folder = directory or default_lock_dir()
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.path = os.path.join(folder, "customers.lock")
        self.description = f"file {self.path}"
        self._table = _table(self.path)
        self._me = uuid.uuid4().hex
        self._held: dict[str, int] = {}

    @staticmethod
    def _offset(customer_id: str) -> int:
        # 48 bits: collisions (two customers sharing a lock) are harmless and rare.
        return int.from_bytes(_digest(customer_id)[:6], "big")

    def try_acquire(self, customer_ids: Sequence[str]) -> list[str]:
        taken = []
        table = self._table
        with table.mutex:
            for customer_id in customer_ids:
                if customer_id in self._held:
                    taken.append(customer_id)
                    continue
                offset = self._offset(customer_id)
                if offset not in table.owners:
                    try:
                        self._fcntl.lockf(
                            table.fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB, 1, offset, os.SEEK_SET
                        )
                    except OSError:
                        continue  # another process holds it
                    table.owners[offset] = self._me
                elif table.owners[offset] != self._me:
                    continue  # another sync in this process holds it
                self._held[customer_id] = offset
                taken.append(customer_id)
        return taken

    def release(self, customer_ids: Iterable[str]) -> None:
        table = self._table
        with table.mutex:
            for customer_id in customer_ids:
                offset = self._held.pop(customer_id, None)
                if offset is None or offset in self._held.values():
                    continue  # not held, or still held for a colliding customer
                if table.owners.get(offset) == self._me:
                    del table.owners[offset]
                    self._fcntl.lockf(table.fd, self._fcntl.LOCK_UN, 1, offset, os.SEEK_SET)

    def close(self) -> None:
        self.release(list(self._held))

    def verify(self) -> None:
        return None  # the process holds them until it releases them or dies


class PostgresCustomerLocks:
    """Customer locks as PostgreSQL session-level advisory locks.

    The server releases them when the session ends, also when the task holding them
    is killed. The connection is used for nothing else and is closed by :meth:`close`.

    :param connection: a DB-API connection to PostgreSQL (psycopg2 or psycopg 3).
    :param description: what to call it in the log (e.g. the Airflow connection id).
    """

    def __init__(self, connection: Any, description: str = "PostgreSQL advisory locks") -> None:
        self.connection = connection
        self.description = description
        self.connection.autocommit = True
        self._held: dict[str, int] = {}

    @staticmethod
    def _key(customer_id: str) -> int:
        return int.from_bytes(_digest(customer_id)[:8], "big", signed=True)

    def try_acquire(self, customer_ids: Sequence[str]) -> list[str]:
        wanted = {self._key(c): c for c in customer_ids if c not in self._held}
        taken = [c for c in customer_ids if c in self._held]
        if not wanted:
            return taken
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT k, pg_try_advisory_lock(k) FROM unnest(%s::bigint[]) AS k", (list(wanted),)
            )
            for key, ok in cursor.fetchall():
                if ok:
                    self._held[wanted[int(key)]] = int(key)
                    taken.append(wanted[int(key)])
        return taken

    def release(self, customer_ids: Iterable[str]) -> None:
        keys = [self._held.pop(c) for c in customer_ids if c in self._held]
        if not keys:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(k) FROM unnest(%s::bigint[]) AS k", (keys,))
            cursor.fetchall()

    def verify(self) -> None:
        """Check the session still holds every lock taken (a dropped session drops its locks)."""
        if not self._held:
            return
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND granted"
            )
            (count,) = cursor.fetchone()
        if int(count) < len(set(self._held.values())):
            raise RuntimeError(
                f"{self.description}: the PostgreSQL session lost its advisory locks "
                "(was it reset by a pooler or the server?); stopping before any further write"
            )

    def close(self) -> None:
        if getattr(self.connection, "closed", False):
            return
        try:
            self.release(list(self._held))
        finally:
            self.connection.close()


class NoCustomerLocks:
    """No locking: for callers that guarantee a single sync per account themselves."""

    description = "none"

    def try_acquire(self, customer_ids: Sequence[str]) -> list[str]:
        return list(customer_ids)

    def release(self, customer_ids: Iterable[str]) -> None:
        return None

    def close(self) -> None:
        return None

    def verify(self) -> None:
        return None
