"""The reconcile engine against the emulator over real HTTP (no Airflow)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from tests import seeds
from tests.conftest import TOKEN

if TYPE_CHECKING:
    from airflow_provider_metronome.emulator.testing import RunningEmulator
    from airflow_provider_metronome.models.report import Rejection

DIRECT = "direct_to_billing_provider"


def stripe(alias: str, cus: str, **extra: Any) -> dict[str, Any]:
    return {"ingest_alias": alias, "billing_provider": "stripe", "delivery_method": DIRECT,
            "configuration": {"stripe_customer_id": cus}, **extra}  # fmt: skip


def aws(customer_id: str, acct: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id, "billing_provider": "aws_marketplace", "delivery_method_id": seeds.AWS_DM,
        "configuration": json.dumps({"aws_customer_id": acct, "aws_product_code": "p1", "aws_region": "us-east-1"}),
    }  # fmt: skip


@pytest.fixture
def client(emulator: RunningEmulator) -> MetronomeClient:
    return MetronomeClient(emulator.url, TOKEN, retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05))


def active(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [c for c in emu.admin("state")["billing_provider_configurations"] if not c["archived_at"]]


def ops(emu: RunningEmulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in emu.admin("requests")["data"]:
        counts[r["operation"]] = counts.get(r["operation"], 0) + 1
    return counts


def run(client: MetronomeClient, rows: list[dict[str, Any]], **options: Any) -> Any:
    rejected: list[Rejection] = []
    report = BillingConfigSync(client, SyncOptions(**options), on_reject=rejected.append).run(rows)
    assert len(rejected) == report.rejected, "every rejection is streamed to on_reject"
    return report


def test_first_sync_creates_then_second_changes_nothing(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    rows = [stripe("acme", "cus_A"), stripe("globex", "cus_G"), aws(seeds.INITECH, "aws-1")]
    first = run(client, rows)
    assert (first.created, first.unchanged, first.rejected) == (3, 0, 0)
    assert first.by_provider == {"stripe": {"created": 2}, "aws_marketplace": {"created": 1}}
    state = active(emulator)
    assert sorted((c["customer_id"], c["billing_provider"]) for c in state) == sorted(
        [(seeds.ACME, "stripe"), (seeds.GLOBEX, "stripe"), (seeds.INITECH, "aws_marketplace")]
    )
    assert sorted(first.created_ids) == sorted(c["id"] for c in state)

    emulator.admin("requests", method="DELETE")
    second = run(client, rows)
    assert (second.created, second.unchanged) == (0, 3)
    assert len(active(emulator)) == 3
    assert "setCustomerBillingProviderConfigurations" not in ops(emulator)
    assert second.api_calls == sum(ops(emulator).values())


def test_report_counts_add_up(emulator: RunningEmulator, client: MetronomeClient) -> None:
    rows = [
        stripe("acme", "cus_A"),
        stripe("acme", "cus_A"),  # identical: a duplicate
        stripe("globex", "cus_G1"),
        stripe("globex", "cus_G2"),  # conflicts with the row above
        stripe("nobody", "cus_N"),  # unknown alias
        {"customer_id": "bad", "billing_provider": "stripe"},  # invalid
        aws(seeds.INITECH, "aws-1"),
    ]
    report = run(client, rows)
    assert report.rows_read == 7
    assert (report.created, report.unchanged, report.duplicates, report.rejected) == (2, 0, 1, 4)
    assert report.rows_read == report.created + report.unchanged + report.duplicates + report.rejected
    assert report.valid == report.created + report.unchanged + report.duplicates
    by_row = {r.row: r for r in report.rejections}
    assert set(by_row) == {3, 4, 5, 6}
    assert "conflicts with row(s) 4" in by_row[3].reason
    assert "conflicts with row(s) 3" in by_row[4].reason
    assert by_row[5].field == "ingest_alias"
    assert "nobody" in by_row[5].reason
    assert by_row[6].field.startswith("customer_id")
    assert by_row[5].key == "ingest_alias=nobody, billing_provider=stripe"
    assert report.by_provider["stripe"] == {"created": 1, "duplicates": 1, "rejected": 4}


def test_same_customer_by_alias_and_by_id_is_one_identity(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    by_id = {**stripe("x", "cus_A"), "customer_id": seeds.ACME}
    by_id.pop("ingest_alias")
    report = run(client, [stripe("acme", "cus_A"), by_id])
    assert (report.created, report.duplicates) == (1, 1)
    conflicting = {**by_id, "configuration": {"stripe_customer_id": "cus_OTHER"}}
    report = run(client, [stripe("globex", "cus_G"), {**conflicting, "customer_id": seeds.GLOBEX}])
    assert report.rejected == 2


def test_delivery_method_and_its_id_are_one_identity(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    by_method = aws(seeds.INITECH, "aws-1")
    by_method.pop("delivery_method_id")
    by_method["delivery_method"] = DIRECT
    report = run(client, [aws(seeds.INITECH, "aws-1"), by_method])
    assert (report.created, report.duplicates) == (1, 1)


def test_existing_configuration_with_more_keys_is_unchanged(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    client.set_billing_provider_configurations(
        [{"customer_id": seeds.ACME, "billing_provider": "stripe", "delivery_method": DIRECT,
          "configuration": {"stripe_customer_id": "cus_A", "leave_stripe_invoices_in_draft": True}}]
    )  # fmt: skip
    report = run(client, [stripe("acme", "cus_A")])
    assert (report.created, report.unchanged) == (0, 1)


def test_changed_configuration_creates_and_replace_archives(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    run(client, [stripe("acme", "cus_A"), aws(seeds.ACME, "aws-1")])
    before = {c["id"]: c for c in active(emulator)}

    keep = run(client, [stripe("acme", "cus_A2"), aws(seeds.ACME, "aws-1")])
    assert (keep.created, keep.unchanged, keep.archived) == (1, 1, 0)
    assert len(active(emulator)) == 3, "create_missing never archives"

    replaced = run(client, [stripe("acme", "cus_A2"), aws(seeds.ACME, "aws-1")], mode="replace")
    assert (replaced.created, replaced.unchanged, replaced.archived) == (0, 2, 1)
    now = active(emulator)
    assert sorted(c["configuration"].get("stripe_customer_id", "") for c in now) == ["", "cus_A2"]
    old_stripe = next(i for i, c in before.items() if c["billing_provider"] == "stripe")
    assert replaced.archived_ids == [old_stripe]

    again = run(client, [stripe("acme", "cus_A3")], mode="replace")
    assert (again.created, again.archived) == (1, 1)
    assert [
        c["configuration"].get("stripe_customer_id")
        for c in active(emulator)
        if c["billing_provider"] == "stripe"
    ] == ["cus_A3"]
    assert any(c["billing_provider"] == "aws_marketplace" for c in active(emulator)), (
        "replace only touches the providers in the rows"
    )


def test_replace_creates_before_archiving(emulator: RunningEmulator, client: MetronomeClient) -> None:
    run(client, [stripe("acme", "cus_A")])
    emulator.admin("requests", method="DELETE")
    run(client, [stripe("acme", "cus_B")], mode="replace")
    writes = [
        r["operation"]
        for r in emulator.admin("requests")["data"]
        if r["method"] == "POST" and "get" not in r["operation"] and "list" not in r["operation"]
    ]
    assert writes == [
        "setCustomerBillingProviderConfigurations",
        "archiveCustomerBillingProviderConfigurations",
    ], "the old configuration is archived only once its replacement exists"


def test_dry_run_changes_nothing_and_plans_exactly(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    run(client, [stripe("acme", "cus_A")])
    state = emulator.admin("state")
    plan = run(client, [stripe("acme", "cus_B"), stripe("globex", "cus_G")], mode="replace", dry_run=True)
    assert emulator.admin("state") == state
    assert (plan.created, plan.archived) == (2, 1)
    assert sorted((p.action, p.customer_id) for p in plan.planned) == [
        ("archive", seeds.ACME), ("create", seeds.ACME), ("create", seeds.GLOBEX)
    ]  # fmt: skip
    writes = [r for r in emulator.admin("requests")["data"] if r["operation"].startswith(("set", "archive"))]
    assert len(writes) == 1, "only the first (real) sync wrote"


def test_batches_respect_batch_size(emulator: RunningEmulator, client: MetronomeClient) -> None:
    emulator.admin("reset", seeds.many_customers(25))
    rows = [stripe(f"cust-{i}", f"cus_{i}") for i in range(25)]
    emulator.admin("requests", method="DELETE")
    report = run(client, rows, batch_size=10, max_concurrency=4)
    assert report.created == 25
    sets = [
        r
        for r in emulator.admin("requests")["data"]
        if r["operation"] == "setCustomerBillingProviderConfigurations"
    ]
    assert sorted(len(r["body"]["data"]) for r in sets) == [5, 10, 10]
    assert all(r["idempotency_key"] for r in sets)


def test_aliases_are_looked_up_once(emulator: RunningEmulator, client: MetronomeClient) -> None:
    rows = [stripe("acme", "cus_A"), aws(seeds.ACME, "x")] + [stripe("acme", "cus_A") for _ in range(5)]
    emulator.admin("requests", method="DELETE")
    run(client, rows, chunk_size=2)
    assert ops(emulator)["listCustomers"] == 1


def test_a_batch_the_api_refuses_is_split_and_good_rows_are_created(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    rows = [stripe("acme", "cus_A"), stripe("globex", "cus_G"),
            {**stripe("x", "cus_X"), "customer_id": seeds.ARCHIVED, "ingest_alias": None},
            stripe("initech", "cus_I")]  # fmt: skip
    report = run(client, rows, batch_size=10)
    assert (report.created, report.rejected) == (3, 1)
    assert report.rejections[0].row == 3
    assert report.rejections[0].field == "customer_id"
    assert "archived" in report.rejections[0].reason
    assert len(active(emulator)) == 3


def test_unknown_customer_id_is_rejected(emulator: RunningEmulator, client: MetronomeClient) -> None:
    row = {
        **stripe("x", "cus_X"),
        "customer_id": "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4aff",
        "ingest_alias": None,
    }
    report = run(client, [row, stripe("acme", "cus_A")])
    assert (report.created, report.rejected) == (1, 1)
    assert report.rejections[0].field == "customer_id"


@pytest.mark.parametrize(
    ("row", "field", "needle"),
    [
        (
            {"delivery_method": None, "delivery_method_id": "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4aff"},
            "delivery_method_id",
            "not a delivery method of this Metronome account",
        ),
        (
            {"delivery_method": None, "delivery_method_id": seeds.AWS_DM},
            "delivery_method_id",
            "is a aws_marketplace delivery method",
        ),
        (
            {"delivery_method": "aws_sqs"},
            "delivery_method",
            "no aws_sqs delivery method is configured for stripe",
        ),
    ],
)
def test_delivery_method_resolution(
    emulator: RunningEmulator, client: MetronomeClient, row: dict[str, Any], field: str, needle: str
) -> None:
    report = run(client, [{**stripe("acme", "cus_A"), **row}])
    assert report.rejected == 1
    assert report.rejections[0].field == field
    assert needle in report.rejections[0].reason


def test_ambiguous_delivery_method(emulator: RunningEmulator, client: MetronomeClient) -> None:
    emulator.admin("reset", seeds.small_seed(two_stripe_accounts=True))
    report = run(client, [stripe("acme", "cus_A")])
    assert "give delivery_method_id" in report.rejections[0].reason
    explicit = {**stripe("acme", "cus_A"), "delivery_method": None, "delivery_method_id": seeds.STRIPE_DM_2}
    assert run(client, [explicit]).created == 1


def test_both_delivery_method_and_id_are_sent_when_they_agree_and_rejected_when_not(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    agree = {**stripe("acme", "cus_A"), "delivery_method_id": seeds.STRIPE_DM}
    disagree = {**aws(seeds.INITECH, "aws-1"), "delivery_method": "aws_sqs"}  # AWS_DM is direct
    report = run(client, [agree, disagree])
    assert (report.created, report.rejected) == (1, 1)
    assert report.rejections[0].field == "delivery_method"
    assert "disagrees with delivery_method_id" in report.rejections[0].reason
    assert [c["delivery_method_id"] for c in active(emulator)] == [seeds.STRIPE_DM]


def test_required_keys_are_checked_once_a_delivery_method_id_is_resolved(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    """Keys are required for direct_to_billing_provider only; a row giving an id learns its kind late."""
    empty = {"customer_id": seeds.INITECH, "billing_provider": "aws_marketplace", "configuration": "{}"}
    direct = {**empty, "delivery_method_id": seeds.AWS_DM}
    sqs = {**empty, "delivery_method_id": seeds.AWS_SQS_DM}
    report = run(client, [direct, sqs])
    assert (report.created, report.rejected) == (1, 1)
    assert report.rejections[0].row == 1
    assert report.rejections[0].field.startswith("configuration.aws_customer_id")
    assert [c["delivery_method_id"] for c in active(emulator)] == [seeds.AWS_SQS_DM]


@pytest.mark.parametrize(
    ("fault", "p"), [("p_commit_500", 0.4), ("p_500", 0.2), ("p_reset", 0.2), ("p_429", 0.2)]
)
def test_faults_never_duplicate(
    emulator: RunningEmulator, client: MetronomeClient, fault: str, p: float
) -> None:
    emulator.admin("reset", seeds.many_customers(40))
    emulator.admin("faults", {fault: p, "seed": 11, "retry_after_ms": 5})
    rows = [stripe(f"cust-{i}", f"cus_{i}") for i in range(40)]
    report = run(client, rows, batch_size=3, max_concurrency=4)
    emulator.admin("faults", {fault: 0})
    assert report.created == 40
    state = active(emulator)
    assert sorted(c["customer_id"] for c in state) == sorted(seeds.customer_uuid(i) for i in range(40))
    assert any(r["fault"] for r in emulator.admin("requests")["data"]), "the fault never fired"
    assert run(client, rows).created == 0


def test_options_are_checked(client: MetronomeClient) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        BillingConfigSync(client, SyncOptions(mode="upsert"))
    with pytest.raises(ValueError, match="batch_size"):
        BillingConfigSync(client, SyncOptions(batch_size=0))


def test_rows_json_cannot_carry_are_rejected_and_the_good_rows_synced(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    """NaN or runaway nesting once crashed the whole write, naming no row."""
    deep: Any = "leaf"
    for _ in range(3000):
        deep = [deep]
    rows = [
        stripe("acme", "cus_A"),
        stripe("globex", "cus_G", configuration={"stripe_customer_id": "cus_G", "rate": float("nan")}),
        stripe("initech", "cus_I", configuration={"stripe_customer_id": "cus_I", "x": deep}),
        stripe("umbrella", "cus_U", configuration='{"stripe_customer_id": "cus_U", "r": Infinity}'),
    ]
    report = run(client, rows)
    assert (report.created, report.rejected) == (1, 3)
    assert sorted(r.row for r in report.rejections) == [2, 3, 4]
    assert all(r.field == "configuration" for r in report.rejections)
    assert [c["customer_id"] for c in active(emulator)] == [seeds.ACME]


def test_many_conflicting_rows_cost_linear_time_and_space(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    """N rows of one identity that disagree once named N-1 rows each: a quadratic rejects file."""
    rows = [stripe("acme", f"cus_{i % 2}") for i in range(3000)] + [stripe("globex", "cus_G")] * 2000
    report = run(client, rows)
    assert (report.rejected, report.duplicates, report.created) == (3000, 1999, 1)
    reasons = [r.reason for r in report.rejections]
    assert max(len(r) for r in reasons) < 250, max(reasons, key=len)
    assert "and 2994 more" in reasons[0]


class _RefusesOneCustomer(MetronomeClient):
    """The real client, but Metronome refuses every new configuration of one customer (a 400)."""

    refused = seeds.ACME

    def set_billing_provider_configurations(self, configurations: Any, **kwargs: Any) -> Any:
        from airflow_provider_metronome.exceptions import MetronomeBadRequestError

        if any(c["customer_id"] == self.refused for c in configurations):
            raise MetronomeBadRequestError(400, "data[0].configuration: refused for this test")
        return super().set_billing_provider_configurations(configurations, **kwargs)


def test_replace_keeps_the_old_configuration_when_the_new_one_is_refused(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    """Archiving first once left a customer with no active configuration when the create failed."""
    run(client, [stripe("acme", "cus_old"), stripe("globex", "cus_G_old")])
    refusing = _RefusesOneCustomer(emulator.url, TOKEN)
    report = run(refusing, [stripe("acme", "cus_new"), stripe("globex", "cus_G_new")], mode="replace")
    assert (report.created, report.archived, report.rejected) == (1, 1, 1)
    by_customer = {c["customer_id"]: c["configuration"]["stripe_customer_id"] for c in active(emulator)}
    assert by_customer == {seeds.ACME: "cus_old", seeds.GLOBEX: "cus_G_new"}, "Acme keeps its old one"


def test_staging_leaves_no_file_behind_even_if_killed(tmp_path: Any) -> None:
    """The staging file is unlinked once opened: a SIGKILLed task cannot leave it on disk."""
    import os

    from airflow_provider_metronome.sync.staging import StagedRow, Staging

    staging = Staging(str(tmp_path))
    assert os.listdir(tmp_path) == []
    row = StagedRow(1, "k", seeds.ACME, "stripe", seeds.STRIPE_DM, DIRECT, {"a": 1}, None, "delivery_method")
    staging.add([row, row])
    [(customer, groups)] = list(staging.iter_customers())
    assert (customer, groups[0].size, groups[0].rows) == (seeds.ACME, 2, [row])
    staging.close()


def test_the_summary_counts_calls_by_endpoint(emulator: RunningEmulator, client: MetronomeClient) -> None:
    """Alias lookups and listing pages alike show under GET /v1/customers; the counts add up."""
    emulator.admin("requests", method="DELETE")
    report = run(client, [stripe("acme", "cus_A"), stripe("globex", "cus_G"), aws(seeds.INITECH, "aws-1")])
    by_endpoint = report.summary()["api_calls_by_endpoint"]
    assert sum(by_endpoint.values()) == report.api_calls == sum(ops(emulator).values())
    assert by_endpoint["GET /v1/customers"] == ops(emulator)["listCustomers"]
    assert by_endpoint["POST /v1/getCustomerBillingProviderConfigurations"] == 3
