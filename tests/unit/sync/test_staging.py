"""``sync/staging.py``: rows staged on disk, grouped by identity, streamed back in source order."""

from __future__ import annotations

import inspect
import os
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_metronome.sync.staging import IdentityGroup, StagedRow, Staging

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ACME = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
GLOBEX = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a02"
INITECH = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a03"
STRIPE_DM = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d01"
STRIPE_DM_2 = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d02"
NETSUITE_DM = "9e4c4a5c-4bcf-4a8c-9e87-9d7e0a4f5b05"
DIRECT = "direct_to_billing_provider"


def staged(
    number: int,
    customer: str = ACME,
    configuration: dict[str, Any] | None = None,
    *,
    provider: str = "stripe",
    dm: str = STRIPE_DM,
    tax: str | None = None,
    **extra: Any,
) -> StagedRow:
    return StagedRow(
        row=number, key=f"customer_id={customer}", customer_id=customer, billing_provider=provider,
        delivery_method_id=dm, delivery_method=DIRECT,
        configuration={"stripe_customer_id": "cus_1"} if configuration is None else configuration,
        tax_provider=tax, given_delivery=extra.pop("given_delivery", "delivery_method"), **extra,
    )  # fmt: skip


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[Staging]:
    s = Staging(str(tmp_path))
    yield s
    s.close()


def _by_customer(staging: Staging) -> dict[str, list[IdentityGroup]]:
    return dict(staging.iter_customers())


# -- the file ------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="the file is unlinked on POSIX only")
def test_the_file_is_unlinked_as_soon_as_sqlite_has_it_open(tmp_path: Path) -> None:
    """Nothing is on disk from construction on (no journal either), yet the rows are kept."""
    s = Staging(str(tmp_path))
    try:
        assert os.listdir(tmp_path) == []
        assert not os.path.exists(s.path)
        s.add([staged(i, customer=f"{i:08d}-0000-4000-8000-000000000000") for i in range(1, 2001)])
        assert os.listdir(tmp_path) == [], "no journal or temp file beside it"
        assert s.customers() == 2000
    finally:
        s.close()
    assert os.listdir(tmp_path) == []


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    """Closing deletes the file; a second close (or a missing file) raises nothing."""
    s = Staging(str(tmp_path))
    s.close()
    s.close()
    assert os.listdir(tmp_path) == []


# -- identity groups -------------------------------------------------------------------------


def test_identical_copies_are_counted_not_kept(staging: Staging) -> None:
    """10 000 copies of one row make one group of size 10 000 holding only the first row."""
    first = staged(1)
    staging.add([first])
    staging.add([staged(n) for n in range(2, 10_001)])
    [(customer, [group])] = list(staging.iter_customers())
    assert customer == ACME
    assert group.rows == [first]
    assert (group.size, group.distinct) == (10_000, 1)


def test_key_order_does_not_make_a_copy_distinct(staging: Staging) -> None:
    """Copies are compared on canonical JSON: key order in the configuration does not matter."""
    staging.add([staged(1, configuration={"a": 1, "b": {"x": 1, "y": 2}}),
                 staged(2, configuration={"b": {"y": 2, "x": 1}, "a": 1})])  # fmt: skip
    [group] = _by_customer(staging)[ACME]
    assert (group.size, group.distinct) == (2, 1)


def test_conflicting_rows_are_counted_as_distinct(staging: Staging) -> None:
    """Rows of one identity asking for different configurations or tax providers: ``distinct`` counts them."""
    staging.add([
        staged(1, configuration={"stripe_customer_id": "A"}),
        staged(2, configuration={"stripe_customer_id": "B"}),
        staged(3, configuration={"stripe_customer_id": "A"}),
        staged(4, configuration={"stripe_customer_id": "A"}, tax="avalara"),
    ])  # fmt: skip
    [group] = _by_customer(staging)[ACME]
    assert [r.row for r in group.rows] == [1], "only the first row is kept"
    assert (group.size, group.distinct) == (4, 3)


def test_identity_is_customer_provider_and_delivery_method(staging: Staging) -> None:
    """A different customer, provider or delivery method makes a different group; each has its own counts."""
    staging.add([
        staged(1),
        staged(2, dm=STRIPE_DM_2),
        staged(3, provider="netsuite", dm=NETSUITE_DM, configuration={"netsuite_customer_id": "9"}),
        staged(4, customer=GLOBEX),
        staged(5, configuration={"stripe_customer_id": "other"}),
    ])  # fmt: skip
    groups = _by_customer(staging)
    assert sorted(groups) == [ACME, GLOBEX]
    acme = {(g.rows[0].billing_provider, g.rows[0].delivery_method_id): g for g in groups[ACME]}
    assert sorted(acme) == [("netsuite", NETSUITE_DM), ("stripe", STRIPE_DM), ("stripe", STRIPE_DM_2)]
    assert (acme["stripe", STRIPE_DM].size, acme["stripe", STRIPE_DM].distinct) == (2, 2)
    assert (acme["stripe", STRIPE_DM_2].size, acme["stripe", STRIPE_DM_2].distinct) == (1, 1)
    assert [(g.size, g.distinct) for g in groups[GLOBEX]] == [(1, 1)]


def test_customers_come_together_and_sorted_whatever_the_source_order(staging: Staging) -> None:
    """Every group of a customer arrives in one ``(customer, groups)``, customers in id order."""
    staging.add([staged(1, customer=INITECH), staged(2, customer=ACME), staged(3, customer=GLOBEX)])
    staging.add([staged(4, customer=ACME, dm=STRIPE_DM_2), staged(5, customer=INITECH, dm=STRIPE_DM_2)])
    seen = [(c, [g.rows[0].row for g in groups]) for c, groups in staging.iter_customers()]
    assert seen == [(ACME, [2, 4]), (GLOBEX, [3]), (INITECH, [1, 5])]
    assert staging.customers() == 3


def test_the_kept_row_is_the_first_in_source_order(staging: Staging) -> None:
    """Across chunks, the group keeps the row staged first."""
    staging.add([staged(7, configuration={"stripe_customer_id": "first"})])
    staging.add([staged(3, configuration={"stripe_customer_id": "second"})])
    [group] = _by_customer(staging)[ACME]
    assert group.rows[0].configuration == {"stripe_customer_id": "first"}


def test_an_empty_staging_yields_nothing(staging: Staging) -> None:
    """No rows: no customers, no groups."""
    assert list(staging.iter_customers()) == []
    assert staging.groups_of(ACME) == []
    assert staging.customers() == 0


# -- groups_of and rows_of -------------------------------------------------------------------------


def test_groups_of_one_customer(staging: Staging) -> None:
    """``groups_of`` gives the same groups ``iter_customers`` gave for that customer, and ``[]`` for others."""
    staging.add([staged(1), staged(2, customer=GLOBEX), staged(3, dm=STRIPE_DM_2), staged(4)])
    assert staging.groups_of(ACME) == _by_customer(staging)[ACME]
    assert [(g.rows[0].row, g.size) for g in staging.groups_of(ACME)] == [(1, 2), (3, 1)]
    assert [g.rows[0].row for g in staging.groups_of(GLOBEX)] == [2]
    assert staging.groups_of(INITECH) == []


def test_groups_of_counts_distinct_within_the_customer_only(staging: Staging) -> None:
    """A customer's ``distinct`` ignores other customers' rows of the same provider and method."""
    staging.add([staged(1), staged(2, customer=GLOBEX, configuration={"stripe_customer_id": "other"})])
    [group] = staging.groups_of(ACME)
    assert (group.size, group.distinct) == (1, 1)


def test_rows_of_streams_every_row_of_the_identity_in_source_order(staging: Staging) -> None:
    """Conflicts and copies come back one by one, with every field as staged."""
    rows = [staged(n, configuration={"stripe_customer_id": f"cus_{n % 3}"}) for n in range(1, 2501)]
    staging.add(rows[:1000])
    staging.add([staged(9999, customer=GLOBEX)])
    staging.add(rows[1000:])
    [group] = staging.groups_of(ACME)
    streamed = staging.rows_of(group)
    assert inspect.isgenerator(streamed), "streamed, not built as a list"
    assert list(streamed) == rows


def test_rows_round_trip_every_field(staging: Staging) -> None:
    """Every field of a staged row, unicode and the ledger's fields included, comes back equal."""
    full = staged(
        42, configuration={"stripe_customer_id": "cus_ñandú_🚀", "nested": {"list": [1, 2.5, None, True]}},
        tax="avalara", given_delivery="delivery_method_id", ingest_alias="acme@example.com",
        row_key="rk-1", row_hash="rh-1", settled_id="cfg-1",
    )  # fmt: skip
    staging.add([full])
    [group] = staging.groups_of(ACME)
    assert group.rows == [full]
    assert list(staging.rows_of(group)) == [full]


def _grouping_peak(staging: Staging, rows: int) -> int:
    """Stage ``rows`` rows of one identity (1 kB of configuration each); the peak bytes of grouping them."""
    big = "x" * 1000
    for start in range(0, rows, 2000):
        staging.add([staged(n, configuration={"blob": big, "n": n}) for n in range(start + 1, start + 2001)])
    tracemalloc.start()
    try:
        [(_customer, [group])] = list(staging.iter_customers())
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (group.size, group.distinct, len(group.rows)) == (rows, rows, 1)
    return peak


def test_grouping_a_large_identity_keeps_memory_flat(tmp_path: Path) -> None:
    """Grouping 16 000 rows (16 MB of configuration) takes no more memory than grouping 4 000."""
    small, large = Staging(str(tmp_path)), Staging(str(tmp_path))
    try:
        peak_small = _grouping_peak(small, 4000)
        peak_large = _grouping_peak(large, 16_000)
    finally:
        small.close()
        large.close()
    assert peak_large < 16_000_000 / 4, f"grouping held {peak_large} bytes"
    assert peak_large < peak_small * 1.5 + 200_000, (peak_small, peak_large)


# -- StagedRow ---------------------------------------------------------------------------------


def test_payload_names_the_delivery_method_as_the_row_did() -> None:
    """The API item carries ``delivery_method`` or ``delivery_method_id``, whichever the row gave."""
    by_name = staged(1).payload()
    assert by_name == {"customer_id": ACME, "billing_provider": "stripe",
                       "configuration": {"stripe_customer_id": "cus_1"}, "delivery_method": DIRECT}  # fmt: skip
    by_id = staged(1, given_delivery="delivery_method_id").payload()
    assert "delivery_method" not in by_id
    assert by_id["delivery_method_id"] == STRIPE_DM


def test_payload_carries_the_tax_provider_only_when_set() -> None:
    """``tax_provider`` is sent only when the row has one."""
    assert "tax_provider" not in staged(1).payload()
    assert staged(1, tax="avalara").payload()["tax_provider"] == "avalara"


def test_facts_are_what_the_ledger_records() -> None:
    """``facts()`` carries the row's number, ledger identity, customer, alias, provider and method."""
    facts = staged(7, ingest_alias="acme", row_key="rk", row_hash="rh").facts()
    assert (facts.row_number, facts.row_key, facts.row_hash, facts.customer_id, facts.ingest_alias,
            facts.billing_provider, facts.delivery_method_id) == (
        7, "rk", "rh", ACME, "acme", "stripe", STRIPE_DM)  # fmt: skip
