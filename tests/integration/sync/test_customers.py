"""Customer creation and alias additions (``create_missing_customers``) against the emulator."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.ledger import Spool
from tests import seeds
from tests.conftest import TOKEN

if TYPE_CHECKING:
    from airflow_provider_metronome.emulator.testing import RunningEmulator
    from airflow_provider_metronome.models.report import Rejection, SyncReport

DIRECT = "direct_to_billing_provider"


def new_row(alias: str, cus: str, **extra: Any) -> dict[str, Any]:
    return {
        "ingest_alias": alias, "customer_name": f"Customer {alias}", "billing_provider": "stripe",
        "delivery_method": DIRECT, "configuration": {"stripe_customer_id": cus}, **extra,
    }  # fmt: skip


def netsuite_row(alias: str, ns: str, **extra: Any) -> dict[str, Any]:
    return {
        "ingest_alias": alias, "customer_name": f"Customer {alias}", "billing_provider": "netsuite",
        "delivery_method": DIRECT, "configuration": {"netsuite_customer_id": ns}, **extra,
    }  # fmt: skip


@pytest.fixture
def client(emulator: RunningEmulator) -> MetronomeClient:
    return MetronomeClient(emulator.url, TOKEN, retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05))


class Result:
    """A sync's report and every row it rejected."""

    def __init__(self, report: SyncReport, rejected: list[Rejection]) -> None:
        self.report = report
        self.rejected_rows = rejected

    def __getattr__(self, name: str) -> Any:
        return getattr(self.report, name)


def run(
    client: MetronomeClient, rows: list[dict[str, Any]], spool: Spool | None = None, **options: Any
) -> Any:
    options.setdefault("create_missing_customers", True)
    rejected: list[Rejection] = []
    sync = BillingConfigSync(client, SyncOptions(**options), on_reject=rejected.append, spool=spool)
    report = sync.run(rows)
    assert len(rejected) == report.rejected
    return Result(report, rejected)


def customers(emu: RunningEmulator) -> list[dict[str, Any]]:
    return list(emu.admin("state")["customers"])


def by_alias(emu: RunningEmulator, alias: str) -> list[dict[str, Any]]:
    return [c for c in customers(emu) if alias in c["ingest_aliases"]]


def active_configs(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [c for c in emu.admin("state")["billing_provider_configurations"] if not c["archived_at"]]


def ops(emu: RunningEmulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in emu.admin("requests")["data"]:
        counts[r["operation"]] = counts.get(r["operation"], 0) + 1
    return counts


def test_without_the_option_an_unknown_alias_is_rejected_with_a_hint(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    report = run(client, [new_row("newco", "cus_N")], create_missing_customers=False)
    assert (report.created, report.rejected, report.customers_created) == (0, 1, 0)
    rejection = report.rejected_rows[0]
    assert rejection.field == "ingest_alias"
    assert "create_missing_customers" in rejection.reason
    assert by_alias(emulator, "newco") == []


def test_a_new_customer_is_created_once_with_its_aliases_fields_and_configurations(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    rows = [
        new_row(
            "newco", "cus_N", ingest_aliases='["newco-eu", "newco-us"]', custom_fields='{"region": "emea"}'
        ),
        netsuite_row("newco", "ns-1", ingest_aliases="newco-eu, newco-us", custom_fields={"region": "emea"}),
    ]
    emulator.admin("requests", method="DELETE")
    report = run(client, rows)
    assert (report.created, report.rejected, report.customers_created) == (2, 0, 1)
    [customer] = by_alias(emulator, "newco")
    assert customer["name"] == "Customer newco"
    assert customer["ingest_aliases"] == ["newco", "newco-eu", "newco-us"]
    assert customer["custom_fields"] == {"region": "emea"}
    configs = [c for c in active_configs(emulator) if c["customer_id"] == customer["id"]]
    assert sorted(c["billing_provider"] for c in configs) == ["netsuite", "stripe"]
    # One request for the customer and both configurations; one lookup of each alias.
    calls = ops(emulator)
    assert calls.get("createCustomer") == 1
    assert "setCustomerBillingProviderConfigurations" not in calls
    assert report.summary()["customers_created"] == 1

    # The second run finds it and changes nothing.
    emulator.admin("requests", method="DELETE")
    again = run(client, rows)
    assert (again.created, again.unchanged, again.customers_created, again.aliases_added) == (0, 2, 0, 0)
    assert "createCustomer" not in ops(emulator)
    assert len(by_alias(emulator, "newco")) == 1


def test_results_table_records_the_new_customer_and_its_configuration_ids(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    spool = Spool("run-1")
    run(client, [new_row("newco", "cus_N"), netsuite_row("newco", "ns-1")], spool=spool)
    records = [dict(zip(("run_id", "partition", *_columns()), r, strict=True)) for r in spool.records()]
    spool.close()
    [customer] = by_alias(emulator, "newco")
    configs = {
        c["billing_provider"]: c["id"] for c in active_configs(emulator) if c["customer_id"] == customer["id"]
    }
    assert {(r["billing_provider"], r["outcome"], r["customer_id"], r["configuration_id"], r["customer_created"])
            for r in records} == {
        ("stripe", "created", customer["id"], configs["stripe"], True),
        ("netsuite", "created", customer["id"], configs["netsuite"], True),
    }  # fmt: skip


def _columns() -> tuple[str, ...]:
    from airflow_provider_metronome.sync.ledger import COLUMNS

    return COLUMNS[2:]


def test_dry_run_plans_the_customer_and_creates_nothing(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    before = len(customers(emulator))
    report = run(client, [new_row("newco", "cus_N"), netsuite_row("newco", "ns-1")], dry_run=True)
    assert (report.created, report.customers_created) == (2, 1)
    assert [p.action for p in report.planned].count("create_customer") == 1
    assert len(customers(emulator)) == before
    assert "createCustomer" not in ops(emulator)


def test_rows_that_disagree_about_the_new_customer_are_rejected(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    rows = [new_row("newco", "cus_N"), netsuite_row("newco", "ns-1", customer_name="Other name")]
    report = run(client, rows)
    assert (report.created, report.rejected, report.customers_created) == (0, 2, 0)
    assert {r.field for r in report.rejected_rows} == {"customer_name"}
    assert by_alias(emulator, "newco") == []


def test_a_new_customer_needs_a_name(emulator: RunningEmulator, client: MetronomeClient) -> None:
    row = new_row("newco", "cus_N")
    del row["customer_name"]
    report = run(client, [row])
    assert report.rejected == 1
    assert report.rejected_rows[0].field == "customer_name"


def test_aliases_an_existing_customer_lacks_are_added_and_none_removed(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    emulator.admin("requests", method="DELETE")
    rows = [
        {**new_row("acme", "cus_A"), "ingest_aliases": "acme-eu, acme-us"},
        {"customer_id": seeds.GLOBEX, "billing_provider": "netsuite", "delivery_method": DIRECT,
         "configuration": json.dumps({"netsuite_customer_id": "ns-g"}), "ingest_aliases": ["globex-2"]},
    ]  # fmt: skip
    report = run(client, rows)
    assert (report.created, report.rejected, report.customers_created, report.aliases_added) == (2, 0, 0, 3)
    [acme] = by_alias(emulator, "acme")
    assert acme["id"] == seeds.ACME
    assert acme["ingest_aliases"] == ["acme", "acme-eu", "acme-us"]
    [globex] = by_alias(emulator, "globex")
    assert globex["ingest_aliases"] == ["globex", "globex-2"]
    assert ops(emulator).get("setIngestAliases") == 2

    emulator.admin("requests", method="DELETE")
    again = run(client, rows)
    assert (again.unchanged, again.aliases_added) == (2, 0)
    assert "setIngestAliases" not in ops(emulator)


def test_an_alias_owned_by_another_customer_is_rejected_naming_both(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    rows = [
        {**new_row("acme", "cus_A"), "ingest_aliases": "globex"},
        new_row("newco", "cus_N", ingest_aliases=["initech"]),
    ]
    report = run(client, rows)
    assert (report.created, report.rejected) == (0, 2)
    reasons = {r.key.split(",")[0]: (r.field, r.reason) for r in report.rejected_rows}
    field, reason = reasons["ingest_alias=acme"]
    assert field == "ingest_aliases"
    assert seeds.GLOBEX in reason
    assert seeds.ACME in reason
    field, reason = reasons["ingest_alias=newco"]
    assert field == "ingest_aliases"
    assert seeds.INITECH in reason
    assert by_alias(emulator, "acme")[0]["ingest_aliases"] == ["acme"]
    assert by_alias(emulator, "newco") == []


def test_an_alias_held_by_an_archived_customer_is_rejected_naming_it(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    report = run(client, [new_row("gone", "cus_G")])
    assert (report.created, report.rejected, report.customers_created) == (0, 1, 0)
    rejection = report.rejected_rows[0]
    assert rejection.field == "ingest_alias"
    assert seeds.ARCHIVED in rejection.reason
    assert "archived" in rejection.reason


def test_a_customer_created_meanwhile_is_synced_not_created_again(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    """Another sync created the customer after this one looked its alias up: the 409 is followed."""
    rows = [new_row("newco", "cus_N"), netsuite_row("newco", "ns-1")]
    original = client.find_customer_by_ingest_alias
    calls = 0

    def late_lookup(alias: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # the reading's lookup misses: someone else creates it right after
            found = original(alias)
            client.create_customer(
                name="Made elsewhere", ingest_aliases=["newco"],
                configurations=[{"billing_provider": "stripe", "delivery_method": DIRECT,
                                 "configuration": {"stripe_customer_id": "cus_N"}}],
            )  # fmt: skip
            return found
        return original(alias)

    client.find_customer_by_ingest_alias = late_lookup  # type: ignore[method-assign]
    report = run(client, rows)
    [customer] = by_alias(emulator, "newco")
    configs = [c for c in active_configs(emulator) if c["customer_id"] == customer["id"]]
    assert sorted(c["billing_provider"] for c in configs) == ["netsuite", "stripe"], "no duplicate"
    assert (report.customers_created, report.created, report.unchanged) == (0, 1, 1)


def test_concurrent_syncs_create_each_customer_once(emulator: RunningEmulator) -> None:
    rows = [
        r for i in range(60) for r in (new_row(f"new-{i}", f"cus_{i}"), netsuite_row(f"new-{i}", f"ns-{i}"))
    ]
    reports: list[SyncReport] = []

    def one() -> None:
        api = MetronomeClient(emulator.url, TOKEN, retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05))
        reports.append(BillingConfigSync(api, SyncOptions(create_missing_customers=True)).run(rows))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reports) == 3
    news = [c for c in customers(emulator) if c["ingest_aliases"][0].startswith("new-")]
    assert len(news) == 60, "each customer created once"
    configs = [c for c in active_configs(emulator) if c["customer_id"] in {n["id"] for n in news}]
    assert len(configs) == 120, "each configuration created once"
    assert all(r.rejected == 0 for r in reports)


def test_two_partitions_never_create_the_same_customer(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    rows = [
        r for i in range(40) for r in (new_row(f"new-{i}", f"cus_{i}"), netsuite_row(f"new-{i}", f"ns-{i}"))
    ]
    reports = [run(client, rows, partition=p, partitions=2) for p in (0, 1)]
    assert sum(r.customers_created for r in reports) == 40
    assert all(r.customers_created > 0 for r in reports)
    # Each row created by exactly one partition. A customer created by one partition
    # before the other read its alias is also read there (and found unchanged).
    assert sum(r.created for r in reports) == len(rows)
    assert sum(r.rejected for r in reports) == 0
    assert len([c for c in customers(emulator) if c["ingest_aliases"][0].startswith("new-")]) == 40
    assert len(active_configs(emulator)) == 80


def test_new_customers_are_created_exactly_once_through_chaos(emulator: RunningEmulator) -> None:
    """429s, 500s, commit-then-500 (the customer exists, the answer is lost) and resets."""
    rows = [
        r for i in range(150) for r in (new_row(f"new-{i}", f"cus_{i}"), netsuite_row(f"new-{i}", f"ns-{i}"))
    ]
    emulator.admin(
        "faults",
        {"p_429": 0.1, "p_500": 0.05, "p_commit_500": 0.05, "p_reset": 0.02, "retry_after_ms": 20, "seed": 7},
    )
    api = MetronomeClient(
        emulator.url, TOKEN, retry=RetryPolicy(max_retries=12, initial_backoff=0.01, max_backoff=0.05)
    )
    report = BillingConfigSync(api, SyncOptions(create_missing_customers=True)).run(rows)
    faults: dict[str, int] = {}
    for entry in emulator.admin("requests")["data"]:
        if entry["fault"] and entry["operation"] == "createCustomer":
            faults[entry["fault"]] = faults.get(entry["fault"], 0) + 1
    emulator.admin("faults", {"p_429": 0, "p_500": 0, "p_commit_500": 0, "p_reset": 0})
    assert "commit_then_500" in faults, faults
    news = [c for c in customers(emulator) if c["ingest_aliases"][0].startswith("new-")]
    assert len(news) == 150, "each customer created exactly once"
    configs = [c for c in active_configs(emulator) if c["customer_id"] in {n["id"] for n in news}]
    assert len(configs) == 300, "each configuration exactly once"
    assert report.rejected == 0
    again = run(MetronomeClient(emulator.url, TOKEN), rows)
    assert (again.created, again.unchanged, again.customers_created) == (0, 300, 0)


def test_a_sync_that_created_one_customer_links_to_it(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    report = run(client, [new_row("newco", "cus_N")])
    [customer] = by_alias(emulator, "newco")
    assert report.only_customer_id == customer["id"]
    assert run(client, [new_row("other", "cus_O")], dry_run=True).only_customer_id is None
