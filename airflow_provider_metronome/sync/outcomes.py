"""What happened to each row, told once: to the report, the rejects sink, the ledger and the log.

Both passes of the sync (:mod:`.reading`, :mod:`.reconcile`) book every outcome here, so
the counts, the samples, the rejects file, the results ledger (:mod:`.ledger`) and the
log lines can never disagree.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.models.report import PlannedChange, Rejection
from airflow_provider_metronome.sync.ledger import RowFacts
from airflow_provider_metronome.sync.progress import LogBudget

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from airflow_provider_metronome.models.report import SyncReport
    from airflow_provider_metronome.sync.ledger import Spool
    from airflow_provider_metronome.sync.staging import StagedRow

# Rejections and planned changes logged one by one before only counting.
LOG_EACH = 200


class Outcomes:
    """Books row outcomes. Only the thread that runs the sync calls it.

    :param report: the run's report (owns the counts).
    :param dry_run: whether changes are only planned.
    :param log: where decisions are logged.
    :param on_reject: called with every rejection (e.g. a rejects file writer).
    :param spool: where each row's outcome waits for the results ledger, if one is kept.
    """

    def __init__(
        self,
        report: SyncReport,
        *,
        dry_run: bool,
        log: logging.Logger,
        on_reject: Callable[[Rejection], None] | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.report = report
        self.dry_run = dry_run
        self.log = log
        self.on_reject = on_reject
        self.spool = spool
        self._rejections = LogBudget(log, "rejections", limit=LOG_EACH, level=logging.WARNING)
        self._changes = LogBudget(log, "planned changes", limit=LOG_EACH)
        self._drift = LogBudget(log, "drift", limit=LOG_EACH, level=logging.WARNING)

    def reject(
        self,
        facts: RowFacts,
        key: str,
        field: str,
        reason: str,
        provider: str | None,
        *,
        staged: bool = False,
        held: bool = False,
    ) -> None:
        """A row is not synced; see :meth:`SyncReport.record_rejected` for ``staged`` and ``held``.

        :param facts: the row, as the ledger records it.
        :param key: the row's identity as given, for people.
        """
        rejection = Rejection(row=facts.row_number, key=key, field=field, reason=reason)
        self.report.record_rejected(rejection, provider, staged=staged, held=held)
        if self.on_reject is not None:
            self.on_reject(rejection)
        if self.spool is not None:
            self.spool.add(facts, "rejected", field=field, reason=reason)
        if self._rejections.allow():
            self.log.warning("Rejected %s", rejection.describe())

    def duplicates(self, first: StagedRow, copies: Iterable[StagedRow]) -> None:
        """Exact copies of ``first``, which is synced once."""
        n = 0
        for copy in copies:
            n += 1
            if self.spool is not None:
                self.spool.add(copy.facts(), "duplicate")
        self.report.record_duplicates(first.billing_provider, n)

    def unchanged(self, row: StagedRow, config_id: str, *, without_call: bool = False) -> None:
        """``row`` is already satisfied by the active configuration ``config_id``.

        :param without_call: the results ledger said so; Metronome was not asked.
        """
        self.report.record_unchanged(row.billing_provider, row.tax_provider, row.delivery_method_id)
        if without_call:
            self.report.record_settled_by_ledger()
        if self.spool is not None:
            self.spool.add(row.facts(), "unchanged", configuration_id=config_id)

    def drifted(self, row: StagedRow, found: str | None) -> None:
        """The ledger's configuration for ``row`` is no longer what Metronome has.

        :param found: the active configuration that satisfies the row now, or ``None``
            (it was archived or changed outside the sync: it is created again).
        """
        self.report.record_drift()
        if self._drift.allow():
            now = f"now satisfied by {found}" if found else "no longer active: creating it again"
            self.log.warning(
                "Drift (row %d, %s): the ledger recorded configuration %s, %s",
                row.row,
                row.key,
                row.settled_id,
                now,
            )

    def created(self, row: StagedRow, config_id: str | None) -> None:
        """``row`` was created as ``config_id`` (``None``: a dry run would create it, or it was
        created with its new customer and not read back)."""
        self.report.record_created(row.billing_provider, row.tax_provider, row.delivery_method_id, config_id)
        if self.spool is not None:
            self.spool.add(row.facts(), "planned" if self.dry_run else "created", configuration_id=config_id)
        self.report.record_planned(PlannedChange(
            action="create", customer_id=row.customer_id, billing_provider=row.billing_provider,
            detail=row.payload(),
        ))  # fmt: skip
        if self.dry_run and self._changes.allow():
            self.log.info("Would create (row %d, %s): %s", row.row, row.key, row.payload())

    def customer_created(self, customer_id: str | None, ingest_alias: str, request: dict[str, Any]) -> None:
        """A customer was created for the rows naming ``ingest_alias`` (``customer_id`` is
        ``None`` in a dry run: it would be)."""
        self.report.record_customer_created(customer_id, request.get("name"), request.get("ingest_aliases"))
        self.report.record_planned(PlannedChange(
            action="create_customer", customer_id=customer_id or f"(new: {ingest_alias})",
            billing_provider="", detail={k: v for k, v in request.items() if k != "configurations"},
        ))  # fmt: skip
        if not self.dry_run or self._changes.allow():
            self.log.info(
                "%s customer %s for ingest alias %r: name %r, aliases %s",
                "Would create" if self.dry_run else "Created", customer_id or "(new)", ingest_alias,
                request["name"], ", ".join(request["ingest_aliases"]),
            )  # fmt: skip

    def aliases_added(self, customer_id: str, aliases: list[str]) -> None:
        """Ingest aliases were added to an existing customer (or would be)."""
        self.report.record_aliases_added(len(aliases))
        self.report.record_planned(PlannedChange(
            action="add_aliases", customer_id=customer_id, billing_provider="",
            detail={"ingest_aliases": aliases},
        ))  # fmt: skip
        if not self.dry_run or self._changes.allow():
            self.log.info(
                "%s ingest aliases %s to customer %s",
                "Would add" if self.dry_run else "Added", ", ".join(aliases), customer_id,
            )  # fmt: skip

    def archived(self, customer_id: str, configs: list[dict[str, Any]]) -> None:
        """The configurations of ``customer_id`` that the source supersedes were archived (or would be)."""
        for config in sorted(configs, key=lambda c: str(c["id"])):
            self.report.record_archived(config["billing_provider"], config["id"])
            if self.spool is not None and not self.dry_run:
                facts = RowFacts(
                    0,
                    None,
                    None,
                    customer_id,
                    None,
                    config["billing_provider"],
                    config.get("delivery_method_id"),
                )
                self.spool.add(facts, "archived", configuration_id=config["id"])
            self.report.record_planned(PlannedChange(
                action="archive", customer_id=customer_id, billing_provider=config["billing_provider"],
                detail={"id": config["id"], "configuration": config.get("configuration", {})},
            ))  # fmt: skip
            # Real archives are always logged (rare, and they take something away);
            # planned ones share the dry run's budget.
            if not self.dry_run or self._changes.allow():
                self.log.info(
                    "%s configuration %s of customer %s (%s): superseded",
                    "Would archive" if self.dry_run else "Archived",
                    config["id"], customer_id, config["billing_provider"],
                )  # fmt: skip
