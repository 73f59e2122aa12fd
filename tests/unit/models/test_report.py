"""``models/report.py``: the partitions' summaries add up."""

from __future__ import annotations

from airflow_provider_metronome.models.report import Rejection, SyncReport, merge_summaries


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


def test_created_customers_and_rejections_are_sampled_small_across_partitions() -> None:
    summaries = []
    for part in range(2):
        report = SyncReport()
        for i in range(8):
            aliases = [f"p{part}-c{i}-a{k}" for k in range(2000 if i == 0 else 1)]
            report.record_customer_created(None, f"Customer {part}.{i}", aliases)
            report.record_rejected(
                Rejection(row=i + 1, key=f"key-{part}-{i}", field="customer_name", reason="missing"), None
            )
        summaries.append(report.summary())
    first = summaries[0]["customers_created_sample"][0]
    # 2,000 aliases stay out of XCom: the first five and the count.
    assert first == {
        "customer_id": None,
        "name": "Customer 0.0",
        "ingest_aliases": [f"p0-c0-a{k}" for k in range(5)],
        "alias_count": 2000,
    }
    merged = merge_summaries(summaries, sample=10)
    assert [c["name"] for c in merged["customers_created_sample"]] == [
        *(f"Customer 0.{i}" for i in range(8)),
        "Customer 1.0",
        "Customer 1.1",
    ]
    assert len(merged["rejections_sample"]) == 10
    assert merged["rejections_sample"][8]["key"] == "key-1-0"
