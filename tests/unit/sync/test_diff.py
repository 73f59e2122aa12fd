"""``sync/diff.py``: when a configuration satisfies a row, and what a customer's plan is."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_metronome.sync.diff import (
    CREATE_MISSING,
    MODES,
    REPLACE,
    CustomerPlan,
    matches,
    plan_customer,
)
from airflow_provider_metronome.sync.staging import StagedRow

CUSTOMER = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
STRIPE_DM = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d01"
NETSUITE_DM = "9e4c4a5c-4bcf-4a8c-9e87-9d7e0a4f5b05"
DIRECT = "direct_to_billing_provider"


def row(
    configuration: dict[str, Any] | None = None,
    *,
    provider: str = "stripe",
    dm: str = STRIPE_DM,
    tax: str | None = None,
    number: int = 1,
) -> StagedRow:
    return StagedRow(
        row=number, key=f"row {number}", customer_id=CUSTOMER, billing_provider=provider,
        delivery_method_id=dm, delivery_method=DIRECT,
        configuration={"stripe_customer_id": "cus_1"} if configuration is None else configuration,
        tax_provider=tax, given_delivery="delivery_method",
    )  # fmt: skip


def config(
    cid: str,
    configuration: dict[str, Any] | None = None,
    *,
    provider: str = "stripe",
    dm: str = STRIPE_DM,
    tax: str | None = None,
    archived_at: str | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": cid, "customer_id": CUSTOMER, "billing_provider": provider, "delivery_method_id": dm,
        "delivery_method": DIRECT, "archived_at": archived_at,
        "configuration": {"stripe_customer_id": "cus_1"} if configuration is None else configuration,
    }  # fmt: skip
    if tax is not None:
        found["tax_provider"] = tax
    return found


# -- matches ---------------------------------------------------------------------------------


def test_an_identical_active_configuration_matches() -> None:
    """Same provider, delivery method, configuration and (no) tax provider: satisfied."""
    assert matches(row(), config("c1"))


def test_keys_the_row_does_not_give_are_metronomes_business() -> None:
    """Extra keys Metronome filled in (defaults) do not stop a match."""
    existing = config(
        "c1", {"stripe_customer_id": "cus_1", "stripe_collection_method": "charge_automatically"}
    )
    assert matches(row(), existing)
    assert matches(row({}), existing), (
        "a row giving no keys is satisfied by any configuration of its identity"
    )


@pytest.mark.parametrize(
    ("desired", "existing", "why"),
    [
        (row(), config("c1", archived_at="2024-01-01T00:00:00Z"), "archived"),
        (row(), config("c1", provider="netsuite"), "other provider"),
        (row(), config("c1", dm=NETSUITE_DM), "other delivery method"),
        (row(tax="avalara"), config("c1"), "row wants a tax provider the configuration lacks"),
        (row(), config("c1", tax="avalara"), "configuration has a tax provider the row does not want"),
        (row(tax="avalara"), config("c1", tax="anrok"), "other tax provider"),
        (row({"stripe_customer_id": "cus_2"}), config("c1"), "a given key differs"),
        (row({"stripe_customer_id": "cus_1", "x": 1}), config("c1"), "a given key is missing"),
        (
            row({"stripe_customer_id": "1"}),
            config("c1", {"stripe_customer_id": 1}),
            "same text, other JSON type",
        ),
        (row({"n": {"a": [1, 2]}}), config("c1", {"n": {"a": [2, 1]}}), "nested values compared whole"),
    ],
)
def test_what_stops_a_match(desired: StagedRow, existing: dict[str, Any], why: str) -> None:
    """Archived, or any difference in provider, delivery method, tax provider or a given key: no match."""
    assert not matches(desired, existing), why


def test_a_configuration_without_configuration_matches_only_rows_giving_no_keys() -> None:
    """A missing or null ``configuration`` counts as empty."""
    bare = config("c1")
    bare["configuration"] = None
    assert matches(row({}), bare)
    assert not matches(row(), bare)
    del bare["configuration"]
    assert matches(row({}), bare)


def test_the_tax_provider_must_agree_when_both_give_it() -> None:
    """Same tax provider on both sides: a match."""
    assert matches(row(tax="avalara"), config("c1", tax="avalara"))


# -- plan_customer ----------------------------------------------------------------------------


def test_modes() -> None:
    """The two modes the diff knows."""
    assert MODES == (CREATE_MISSING, REPLACE) == ("create_missing", "replace")


def test_create_missing_creates_what_no_configuration_satisfies_and_archives_nothing() -> None:
    """Satisfied rows are unchanged (with the satisfying id); the rest created; nothing archived."""
    kept, new = row(number=1), row({"stripe_customer_id": "cus_2"}, dm=NETSUITE_DM, number=2)
    existing = [config("c-stale", {"stripe_customer_id": "old"}), config("c-ok")]
    plan = plan_customer(CUSTOMER, [kept, new], existing, CREATE_MISSING)
    assert plan == CustomerPlan(CUSTOMER, create=[new], unchanged=[(kept, "c-ok")], archive=[])


def test_replace_archives_the_unmatched_configurations_of_the_rows_providers() -> None:
    """Replace: every active configuration of a provider the rows name, not kept by a row, is archived."""
    desired = row(number=1)
    ok = config("c-ok")
    stale = config("c-stale", {"stripe_customer_id": "old"})
    other_dm = config("c-other-dm", dm=NETSUITE_DM)
    other_provider = config("c-netsuite", {"netsuite_customer_id": "9"}, provider="netsuite", dm=NETSUITE_DM)
    archived = config("c-archived", {"stripe_customer_id": "old"}, archived_at="2024-01-01T00:00:00Z")
    plan = plan_customer(CUSTOMER, [desired], [stale, ok, other_dm, other_provider, archived], REPLACE)
    assert plan.unchanged == [(desired, "c-ok")]
    assert plan.create == []
    assert [c["id"] for c in plan.archive] == ["c-stale", "c-other-dm"], (
        "other providers' and already archived configurations are left alone"
    )


def test_replace_with_a_changed_row_creates_and_archives_the_old_one() -> None:
    """A row whose configuration changed: the new one is created and the old one archived."""
    changed = row({"stripe_customer_id": "cus_new"})
    old = config("c-old")
    plan = plan_customer(CUSTOMER, [changed], [old], REPLACE)
    assert (plan.create, plan.unchanged, plan.archive) == ([changed], [], [old])


def test_replace_with_no_rows_archives_nothing() -> None:
    """No rows name a provider, so replace archives nothing."""
    plan = plan_customer(CUSTOMER, [], [config("c1"), config("c2", provider="netsuite")], REPLACE)
    assert plan == CustomerPlan(CUSTOMER)


def test_archived_configurations_never_satisfy_a_row() -> None:
    """A row whose only match is archived is created again, and the archived one is not re-archived."""
    desired = row()
    plan = plan_customer(CUSTOMER, [desired], [config("c-gone", archived_at="2024-01-01")], REPLACE)
    assert (plan.create, plan.unchanged, plan.archive) == ([desired], [], [])


def test_rows_keep_their_order_and_each_takes_its_first_match() -> None:
    """Created rows stay in the given order; a row matching two configurations takes the first."""
    rows = [row({"stripe_customer_id": f"cus_{i}"}, dm=f"dm-{i}", number=i) for i in (3, 1, 2)]
    existing = [
        config("first", {"stripe_customer_id": "cus_1", "extra": True}, dm="dm-1"),
        config("second", {"stripe_customer_id": "cus_1"}, dm="dm-1"),
    ]
    plan = plan_customer(CUSTOMER, rows, existing, REPLACE)
    assert [r.row for r in plan.create] == [3, 2]
    assert plan.unchanged == [(rows[1], "first")]
    assert [c["id"] for c in plan.archive] == ["second"], "the duplicate a row did not keep goes in replace"
