"""``models/report.py``: the partitions' summaries add up."""

from __future__ import annotations

from airflow_provider_metronome.models.report import SyncReport, merge_summaries


def _summary(created: int, customers_created: int, by_endpoint: dict[str, int], dm: str) -> dict[str, object]:
    report = SyncReport()
    for _ in range(created):
        report.record_created("stripe", "avalara", dm, "cfg")
    for _ in range(customers_created):
        report.record_customer_created()
    report.record_aliases_added(2)
    report.api_calls = sum(by_endpoint.values())
    report.api_calls_by_endpoint = by_endpoint
    return report.summary()


def test_partition_summaries_add_up_counts_endpoints_and_avalara_methods() -> None:
    merged = merge_summaries([
        _summary(3, 1, {"GET /v1/customers": 2, "POST /v1/customers": 1}, "dm-1"),
        _summary(2, 2, {"GET /v1/customers": 1}, "dm-1"),
    ])  # fmt: skip
    assert merged["partitions"] == 2
    assert (merged["created"], merged["customers_created"], merged["aliases_added"]) == (5, 3, 4)
    assert merged["api_calls"] == 4
    assert merged["api_calls_by_endpoint"] == {"GET /v1/customers": 3, "POST /v1/customers": 1}
    assert merged["by_provider"] == {"stripe": {"created": 5}}
    assert merged["avalara_delivery_method_ids"] == ["dm-1"]


def test_the_text_names_customers_created_and_aliases_added() -> None:
    report = SyncReport(dry_run=True)
    report.record_customer_created()
    report.record_aliases_added(3)
    assert "customers: would create 1; ingest aliases to add to existing customers: 3" in report.text()
