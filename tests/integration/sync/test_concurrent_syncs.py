"""Concurrent syncs of the same customers never create a duplicate (engine over real HTTP).

The deployment suite (tests/deployment) proves the same through a real scheduler;
these tests pin the mechanism down: customer locks shared by threads and processes,
partitions decided by the resolved customer, and a lock wait that gives up cleanly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.locks import FileCustomerLocks
from airflow_provider_metronome.sync.sources import bucket
from tests import seeds
from tests.conftest import TOKEN

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_metronome.emulator.testing import RunningEmulator
    from airflow_provider_metronome.models.report import SyncReport

DIRECT = "direct_to_billing_provider"
CUSTOMERS = 300


def rows(count: int = CUSTOMERS) -> list[dict[str, Any]]:
    """One Stripe row per customer: even ones keyed by id, odd ones by ingest alias."""
    out = []
    for i in range(count):
        who = {"customer_id": seeds.customer_uuid(i)} if i % 2 == 0 else {"ingest_alias": f"cust-{i}"}
        out.append({**who, "billing_provider": "stripe", "delivery_method": DIRECT,
                    "configuration": {"stripe_customer_id": f"cus_{i}"}})  # fmt: skip
    return out


def active(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [c for c in emu.admin("state")["billing_provider_configurations"] if not c["archived_at"]]


def duplicates(configs: list[dict[str, Any]]) -> int:
    seen = Counter(
        (c["customer_id"], c["billing_provider"], c["delivery_method_id"], json.dumps(c["configuration"]))
        for c in configs
    )
    return sum(n - 1 for n in seen.values())


@pytest.fixture
def many(emulator: RunningEmulator, tmp_path: Path) -> RunningEmulator:
    emulator.admin("reset", seeds.many_customers(CUSTOMERS))
    # Latency makes every read-then-write window wide open to a concurrent sync.
    emulator.admin("faults", {"latency_ms": 15})
    return emulator


def client(emu: RunningEmulator) -> MetronomeClient:
    return MetronomeClient(emu.url, TOKEN, retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05))


def sync_in_threads(emu: RunningEmulator, lock_dir: Path, jobs: list[dict[str, Any]]) -> list[SyncReport]:
    """Start one engine per job at the same moment; return their reports."""
    reports: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs), timeout=60)

    def work(i: int, job: dict[str, Any]) -> None:
        try:
            engine = BillingConfigSync(
                client(emu),
                SyncOptions(**{"batch_size": 20, **job.get("options", {})}),
                locks=FileCustomerLocks(str(lock_dir)),
            )
            start.wait()
            reports[i] = engine.run(job["rows"])
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors
    return reports


def test_two_syncs_of_the_same_rows_at_once_create_each_configuration_once(
    many: RunningEmulator, tmp_path: Path
) -> None:
    reports = sync_in_threads(many, tmp_path, [{"rows": rows()}, {"rows": rows()}])
    state = active(many)
    assert duplicates(state) == 0
    assert len(state) == CUSTOMERS, "no row lost"
    assert sum(r.created for r in reports) == CUSTOMERS, "each configuration is created by exactly one sync"
    assert all(r.created + r.unchanged == CUSTOMERS and r.rejected == 0 for r in reports)


def test_overlapping_syncs_that_plan_differently_create_nothing_twice(
    many: RunningEmulator, tmp_path: Path
) -> None:
    """A day's rows and a full refresh at once: the batches differ, the customers overlap."""
    everything = rows()
    day = everything[50:120] + everything[200:230]
    reports = sync_in_threads(
        many,
        tmp_path,
        [{"rows": everything}, {"rows": day, "options": {"batch_size": 7}}, {"rows": day[::-1]}],
    )
    state = active(many)
    assert duplicates(state) == 0
    assert len(state) == CUSTOMERS
    assert sum(r.created for r in reports) == CUSTOMERS


_PROCESS = """
import json, sys
from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.locks import FileCustomerLocks
url, token, lock_dir, rows = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.stdin.read())
report = BillingConfigSync(MetronomeClient(url, token), SyncOptions(batch_size=25),
                           locks=FileCustomerLocks(lock_dir)).run(rows)
print(json.dumps({"created": report.created, "unchanged": report.unchanged, "rejected": report.rejected}))
"""


def test_syncs_in_separate_processes_share_the_locks(many: RunningEmulator, tmp_path: Path) -> None:
    payload = json.dumps(rows())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS, many.url, TOKEN, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(payload, timeout=240)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    state = active(many)
    assert duplicates(state) == 0
    assert len(state) == CUSTOMERS
    assert sum(r["created"] for r in results) == CUSTOMERS
    assert all(r["rejected"] == 0 for r in results)


def test_partitions_are_decided_by_the_resolved_customer(many: RunningEmulator, tmp_path: Path) -> None:
    """One customer named by id in one row and by alias in another lands in one partition."""
    base = rows(40)
    twins = []
    for i in range(1, 40, 2):  # odd customers are keyed by alias in `base`: add the same row by id
        twins.append({**base[i], "customer_id": seeds.customer_uuid(i), "ingest_alias": None})
    conflict = {**base[3], "customer_id": seeds.customer_uuid(3), "ingest_alias": "",
                "configuration": {"stripe_customer_id": "cus_other"}}  # fmt: skip
    source = [*base, *twins, conflict]
    jobs = [{"rows": source, "options": {"partition": p, "partitions": 3}} for p in range(3)]
    reports = sync_in_threads(many, tmp_path, jobs)
    state = active(many)
    assert duplicates(state) == 0
    assert len(state) == 39, "every customer but the one with conflicting rows"
    assert sum(r.rows_read for r in reports) == len(source), "every row is read by exactly one partition"
    assert sum(r.duplicates for r in reports) == 19, "an id row and an alias row of one customer meet"
    rejected = [rej for r in reports for rej in r.rejections]
    assert {rej.field for rej in rejected} == {"configuration"}
    owner = bucket(seeds.customer_uuid(3), 3)
    assert reports[owner].rejected == 3, "the conflicting rows of customer 3 are judged together"
    assert sum(r.rejected for r in reports) == 3


def test_a_row_no_customer_matches_is_reported_by_one_partition(
    many: RunningEmulator, tmp_path: Path
) -> None:
    source = [
        {"ingest_alias": "nobody", "billing_provider": "stripe", "delivery_method": DIRECT,
         "configuration": {"stripe_customer_id": "cus_x"}},
        {"ingest_alias": "", "customer_id": None, "billing_provider": "stripe", "delivery_method": DIRECT,
         "configuration": {"stripe_customer_id": "cus_y"}},
    ]  # fmt: skip
    jobs = [{"rows": source, "options": {"partition": p, "partitions": 4}} for p in range(4)]
    reports = sync_in_threads(many, tmp_path, jobs)
    assert sum(r.rejected for r in reports) == 2
    assert sum(r.rows_read for r in reports) == 2


def test_a_customer_held_too_long_is_rejected_and_synced_next_time(
    many: RunningEmulator, tmp_path: Path
) -> None:
    holder = FileCustomerLocks(str(tmp_path))
    assert holder.try_acquire([seeds.customer_uuid(0)]) == [seeds.customer_uuid(0)]
    source = rows(4)
    report = BillingConfigSync(
        client(many), SyncOptions(lock_timeout=0.3), locks=FileCustomerLocks(str(tmp_path))
    ).run(source)
    assert (report.created, report.rejected) == (3, 1)
    assert report.rejections[0].field == "customer_id"
    assert "locked" in report.rejections[0].reason
    assert report.rows_read == report.created + report.unchanged + report.rejected + report.duplicates
    holder.close()
    again = BillingConfigSync(client(many), SyncOptions(), locks=FileCustomerLocks(str(tmp_path))).run(source)
    assert (again.created, again.unchanged, again.rejected) == (1, 3, 0)
    assert duplicates(active(many)) == 0


def test_a_sync_waits_for_a_customer_another_sync_is_writing(many: RunningEmulator, tmp_path: Path) -> None:
    holder = FileCustomerLocks(str(tmp_path))
    holder.try_acquire([seeds.customer_uuid(2)])
    threading.Timer(0.5, holder.close).start()
    report = BillingConfigSync(client(many), SyncOptions(), locks=FileCustomerLocks(str(tmp_path))).run(
        rows(4)
    )
    assert (report.created, report.rejected) == (4, 0), "synced once the other sync let go"


def test_every_lock_is_released_when_the_sync_ends(many: RunningEmulator, tmp_path: Path) -> None:
    many.admin("faults", {"latency_ms": 0, "p_500": 0.2, "seed": 3})
    BillingConfigSync(client(many), SyncOptions(batch_size=5), locks=FileCustomerLocks(str(tmp_path))).run(
        rows(60)
    )
    other = FileCustomerLocks(str(tmp_path))
    ids = [seeds.customer_uuid(i) for i in range(60)]
    assert sorted(other.try_acquire(ids)) == sorted(ids)
    other.close()


def test_a_customer_id_in_an_unusual_shape_lands_with_its_customer(
    many: RunningEmulator, tmp_path: Path
) -> None:
    """A trailing CR, a tab, upper case or spaces must not split one customer across partitions."""
    cid = seeds.customer_uuid(7)
    spellings = [f"{cid}\r", cid.upper(), f"\t{cid}", f"  {cid}  "]
    source = [
        {"customer_id": spelled, "billing_provider": "stripe", "delivery_method": DIRECT,
         "configuration": {"stripe_customer_id": f"cus_{n}"}}
        for n, spelled in enumerate(spellings)
    ]  # fmt: skip
    jobs = [{"rows": source, "options": {"partition": p, "partitions": 4}} for p in range(4)]
    reports = sync_in_threads(many, tmp_path, jobs)
    assert sum(r.rows_read for r in reports) == 4
    assert [r.rejected for r in reports].count(4) == 1, "the four conflicting rows are judged together"
    assert active(many) == []


class _KeyStillInUse(MetronomeClient):
    """Metronome keeps answering 409: the key is in use by a request it has not finished."""

    def set_billing_provider_configurations(self, configurations: Any, **kwargs: Any) -> Any:
        from airflow_provider_metronome.exceptions import MetronomeConflictError

        raise MetronomeConflictError(409, "Idempotency-Key is in use by a concurrent request")


def test_a_write_whose_outcome_is_unknown_is_never_split_and_keeps_its_locks(
    many: RunningEmulator, tmp_path: Path
) -> None:
    from airflow_provider_metronome.exceptions import MetronomeConflictError

    api = _KeyStillInUse(many.url, TOKEN, timeout=1.0)
    other = FileCustomerLocks(str(tmp_path))
    held: list[list[str]] = []
    threading.Timer(2.0, lambda: held.append(other.try_acquire([seeds.customer_uuid(0)]))).start()
    started = time.monotonic()
    with pytest.raises(MetronomeConflictError):
        BillingConfigSync(api, SyncOptions(batch_size=4), locks=FileCustomerLocks(str(tmp_path))).run(rows(4))
    assert time.monotonic() - started >= 6.0, "locks kept for the request timeout plus a margin"
    assert held == [[]], "another sync could not take the customer meanwhile"
    assert active(many) == [], "no batch was split and re-sent under new keys"
    assert other.try_acquire([seeds.customer_uuid(0)]) == [seeds.customer_uuid(0)], "released in the end"
    other.close()
