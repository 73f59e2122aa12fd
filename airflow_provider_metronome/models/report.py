"""What a sync did: counts, samples of created ids and of rejected rows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# The report stays small whatever the table size: the full lists go to the
# rejects file and to the logs, the report keeps the first few.
SAMPLE_LIMIT = 100


class Rejection(BaseModel):
    """A row that was not synced.

    :param row: 1-based position of the row in the source.
    :param key: the row's identity as given (customer and billing provider).
    :param field: the column (or ``configuration.<key>``) at fault.
    :param reason: what is wrong and how to fix it.
    """

    row: int
    key: str
    field: str
    reason: str

    def describe(self) -> str:
        return f"row {self.row} ({self.key}) {self.field}: {self.reason}"


class PlannedChange(BaseModel):
    """A change a dry run would make (or a sync made), for the log and the report.

    :param action: ``create``, ``archive``, ``create_customer`` or ``add_aliases``.
    :param customer_id: the customer.
    :param billing_provider: the provider.
    :param detail: the configuration to create, or the configuration id to archive.
    """

    action: str
    customer_id: str
    billing_provider: str
    detail: dict[str, Any]


class SyncReport(BaseModel):
    """Counts and samples of one sync run.

    Counts: ``rows_read`` = ``rejected`` + ``duplicates`` + ``created`` + ``unchanged``
    (a row is exactly one of those; in a dry run ``created`` counts what would be created).
    """

    mode: str = "create_missing"
    dry_run: bool = False
    rows_read: int = 0
    valid: int = 0
    created: int = 0
    unchanged: int = 0
    archived: int = 0
    duplicates: int = 0
    rejected: int = 0
    customers: int = 0
    # Rejected rows whose customer another sync held past lock_timeout (not bad data:
    # a retry syncs them).
    held_elsewhere: int = 0
    # Unchanged rows the results ledger vouched for: no Metronome call was made for them.
    settled_by_ledger: int = 0
    # Rows whose configuration recorded by the ledger was archived or changed outside
    # the sync (found by a verifying run, which repairs them).
    drift: int = 0
    # Customers created for rows whose ingest alias matched none (create_missing_customers),
    # and ingest aliases added to existing customers (in a dry run: would be).
    customers_created: int = 0
    aliases_added: int = 0
    # The customer, when the sync touched exactly one (the task's link opens its page).
    only_customer_id: str | None = None
    api_calls: int = 0
    # the same, by endpoint ("GET /v1/customers": alias lookups and listing pages alike)
    api_calls_by_endpoint: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0
    by_provider: dict[str, dict[str, int]] = Field(default_factory=dict)
    created_ids: list[str] = Field(default_factory=list)
    archived_ids: list[str] = Field(default_factory=list)
    rejections: list[Rejection] = Field(default_factory=list)
    planned: list[PlannedChange] = Field(default_factory=list)
    # The first customers created (or planned): id (None in a dry run), name, aliases.
    new_customers: list[dict[str, Any]] = Field(default_factory=list)
    # tax provider → delivery method ids of synced rows that ask for it (small: an
    # account has a handful of delivery methods). Drives the Avalara step of the DAG.
    tax_delivery_methods: dict[str, list[str]] = Field(default_factory=dict)

    # -- verbs: the only way counts change (the engine never edits a counter) -----------

    def record_read(self, n: int = 1) -> None:
        """``n`` more source rows belong to this sync."""
        self.rows_read += n

    def record_staged(self, n: int) -> None:
        """``n`` rows passed validation and resolution."""
        self.valid += n

    def record_rejected(
        self, rejection: Rejection, provider: str | None, *, staged: bool = False, held: bool = False
    ) -> None:
        """A row is not synced.

        :param rejection: which row and why.
        :param provider: its billing provider when known (for ``by_provider``).
        :param staged: the row had been counted valid (it fails later: a conflict, a
            customer that does not exist, a write Metronome refused).
        :param held: another sync kept its customer locked past ``lock_timeout``.
        """
        self.rejected += 1
        if staged:
            self.valid -= 1
        if held:
            self.held_elsewhere += 1
        if provider:
            self._count(provider, "rejected")
        if len(self.rejections) < SAMPLE_LIMIT:
            self.rejections.append(rejection)

    def record_duplicates(self, provider: str, n: int) -> None:
        """``n`` rows repeat another row exactly (the first one is synced)."""
        self.duplicates += n
        self._count(provider, "duplicates", n)

    def record_unchanged(self, provider: str, tax_provider: str | None, delivery_method_id: str) -> None:
        """A row's configuration is already active in Metronome."""
        self.unchanged += 1
        self._count(provider, "unchanged")
        self._tax_delivery_method(tax_provider, delivery_method_id)

    def record_created(
        self, provider: str, tax_provider: str | None, delivery_method_id: str, config_id: str | None
    ) -> None:
        """A row's configuration was created (``config_id`` is ``None`` in a dry run)."""
        self.created += 1
        self._count(provider, "created")
        self._tax_delivery_method(tax_provider, delivery_method_id)
        if config_id is not None and len(self.created_ids) < SAMPLE_LIMIT:
            self.created_ids.append(config_id)

    def record_archived(self, provider: str, config_id: str) -> None:
        """A configuration was archived (or would be, in a dry run)."""
        self.archived += 1
        self._count(provider, "archived")
        if len(self.archived_ids) < SAMPLE_LIMIT:
            self.archived_ids.append(config_id)

    def record_customer_created(
        self, customer_id: str | None = None, name: str | None = None, ingest_aliases: list[str] | None = None
    ) -> None:
        """A customer was created (or would be, in a dry run: ``customer_id`` is ``None``)."""
        self.customers_created += 1
        if len(self.new_customers) < SAMPLE_LIMIT:
            aliases = list(ingest_aliases or [])
            # A customer may carry 2,000 aliases: the sample keeps XCom small.
            self.new_customers.append(
                {
                    "customer_id": customer_id,
                    "name": name,
                    "ingest_aliases": aliases[:5],
                    "alias_count": len(aliases),
                }
            )

    def record_aliases_added(self, n: int) -> None:
        """``n`` ingest aliases were added to an existing customer (or would be)."""
        self.aliases_added += n

    def record_settled_by_ledger(self) -> None:
        """An unchanged row was vouched for by the results ledger, without a Metronome call."""
        self.settled_by_ledger += 1

    def record_drift(self) -> None:
        """A configuration the ledger recorded is no longer what Metronome has."""
        self.drift += 1

    def record_planned(self, change: PlannedChange) -> None:
        """Keep a sample of the changes made or planned."""
        if len(self.planned) < SAMPLE_LIMIT:
            self.planned.append(change)

    def _tax_delivery_method(self, tax_provider: str | None, delivery_method_id: str) -> None:
        if not tax_provider:
            return
        ids = self.tax_delivery_methods.setdefault(tax_provider, [])
        if delivery_method_id not in ids:
            ids.append(delivery_method_id)

    def _count(self, provider: str, outcome: str, n: int = 1) -> None:
        counter = self.by_provider.setdefault(provider, {})
        counter[outcome] = counter.get(outcome, 0) + n

    def summary(self, *, sample: int = 10) -> dict[str, Any]:
        """A small JSON-serialisable summary, fit for XCom."""
        return {
            "mode": self.mode,
            "dry_run": self.dry_run,
            "rows_read": self.rows_read,
            "valid": self.valid,
            "created": self.created,
            "unchanged": self.unchanged,
            "archived": self.archived,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "customers": self.customers,
            "held_elsewhere": self.held_elsewhere,
            "settled_by_ledger": self.settled_by_ledger,
            "drift": self.drift,
            "customers_created": self.customers_created,
            "aliases_added": self.aliases_added,
            "api_calls": self.api_calls,
            "api_calls_by_endpoint": self.api_calls_by_endpoint,
            "seconds": round(self.seconds, 2),
            "by_provider": self.by_provider,
            "tax_delivery_methods": self.tax_delivery_methods,
            "created_ids_sample": self.created_ids[:sample],
            "rejections_sample": [r.model_dump() for r in self.rejections[:sample]],
            "customers_created_sample": self.new_customers[:sample],
        }

    def text(self) -> str:
        """A few human lines."""
        verb = "would create" if self.dry_run else "created"
        averb = "would archive" if self.dry_run else "archived"
        lines = [
            f"rows read {self.rows_read}: {verb} {self.created}, unchanged {self.unchanged}, "
            f"{averb} {self.archived}, duplicates {self.duplicates}, rejected {self.rejected} "
            f"({self.customers} customers, {self.api_calls} API calls, {self.seconds:.1f}s)"
        ]
        if self.customers_created or self.aliases_added:
            cverb = "would create" if self.dry_run else "created"
            aadd = "to add" if self.dry_run else "added"
            lines.append(
                f"  customers: {cverb} {self.customers_created}; ingest aliases {aadd} to existing "
                f"customers: {self.aliases_added}"
            )
        if self.settled_by_ledger or self.drift:
            lines.append(
                f"  results ledger: {self.settled_by_ledger} unchanged rows needed no Metronome call; "
                f"drift repaired or found: {self.drift}"
            )
        for provider in sorted(self.by_provider):
            counts = ", ".join(f"{k} {v}" for k, v in sorted(self.by_provider[provider].items()))
            lines.append(f"  {provider}: {counts}")
        return "\n".join(lines)


_SUMMED = (
    "rows_read", "created", "unchanged", "archived", "duplicates", "rejected", "api_calls",
    "settled_by_ledger", "drift", "held_elsewhere", "customers_created", "aliases_added",
)  # fmt: skip


def merge_summaries(summaries: list[dict[str, Any]], *, sample: int = 10) -> dict[str, Any]:
    """Add up the :meth:`SyncReport.summary` of several partitions into one small summary.

    :param summaries: one summary per partition (mapped task).
    :param sample: how many rejections and created customers the samples keep.
    :return: the counts added up, ``by_provider`` merged, ``partitions`` (how many were
        merged), ``dry_run``, ``avalara_delivery_method_ids`` (the delivery methods
        whose synced rows ask for Avalara, each once), and the first ``sample``
        rejections and created customers of the partitions in order.
    """
    total: dict[str, Any] = {"partitions": 0, "dry_run": False, **dict.fromkeys(_SUMMED, 0)}
    by_provider: dict[str, dict[str, int]] = {}
    by_endpoint: dict[str, int] = {}
    avalara: list[str] = []
    rejections: list[dict[str, Any]] = []
    new_customers: list[dict[str, Any]] = []
    for summary in summaries:
        total["partitions"] += 1
        total["dry_run"] = total["dry_run"] or bool(summary.get("dry_run"))
        for name in _SUMMED:
            total[name] += int(summary.get(name, 0))
        for provider, counts in summary.get("by_provider", {}).items():
            merged = by_provider.setdefault(provider, {})
            for outcome, n in counts.items():
                merged[outcome] = merged.get(outcome, 0) + n
        for endpoint, n in summary.get("api_calls_by_endpoint", {}).items():
            by_endpoint[endpoint] = by_endpoint.get(endpoint, 0) + int(n)
        for dm_id in summary.get("tax_delivery_methods", {}).get("avalara", []):
            if dm_id not in avalara:
                avalara.append(dm_id)
        rejections.extend(summary.get("rejections_sample", [])[: max(sample - len(rejections), 0)])
        new_customers.extend(
            summary.get("customers_created_sample", [])[: max(sample - len(new_customers), 0)]
        )
    total["by_provider"] = by_provider
    total["api_calls_by_endpoint"] = by_endpoint
    total["avalara_delivery_method_ids"] = avalara
    total["rejections_sample"] = rejections
    total["customers_created_sample"] = new_customers
    return total
