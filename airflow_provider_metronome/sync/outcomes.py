"""What happened to each row, told once: to the report, to the rejects sink and to the log.

Both passes of the sync (:mod:`.reading`, :mod:`.reconcile`) book every outcome here, so
the counts, the samples, the rejects file and the log lines can never disagree.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.models.report import PlannedChange, Rejection
from airflow_provider_metronome.sync.progress import LogBudget

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_metronome.models.report import SyncReport
    from airflow_provider_metronome.sync.staging import StagedRow

# Rejections and planned changes logged one by one before only counting.
LOG_EACH = 200


class Outcomes:
    """Books row outcomes. Only the thread that runs the sync calls it.

    :param report: the run's report (owns the counts).
    :param dry_run: whether changes are only planned.
    :param log: where decisions are logged.
    :param on_reject: called with every rejection (e.g. a rejects file writer).
    """

    def __init__(
        self,
        report: SyncReport,
        *,
        dry_run: bool,
        log: logging.Logger,
        on_reject: Callable[[Rejection], None] | None = None,
    ) -> None:
        self.report = report
        self.dry_run = dry_run
        self.log = log
        self.on_reject = on_reject
        self._rejections = LogBudget(log, "rejections", limit=LOG_EACH, level=logging.WARNING)
        self._changes = LogBudget(log, "planned changes", limit=LOG_EACH)

    def reject(
        self,
        row: int,
        key: str,
        field: str,
        reason: str,
        provider: str | None,
        *,
        staged: bool = False,
        held: bool = False,
    ) -> None:
        """A row is not synced; see :meth:`SyncReport.record_rejected` for ``staged`` and ``held``."""
        rejection = Rejection(row=row, key=key, field=field, reason=reason)
        self.report.record_rejected(rejection, provider, staged=staged, held=held)
        if self.on_reject is not None:
            self.on_reject(rejection)
        if self._rejections.allow():
            self.log.warning("Rejected %s", rejection.describe())

    def duplicates(self, provider: str, n: int) -> None:
        """``n`` exact copies of a row that is synced once."""
        self.report.record_duplicates(provider, n)

    def unchanged(self, row: StagedRow, config_id: str) -> None:
        """``row`` is already satisfied by the active configuration ``config_id``."""
        self.report.record_unchanged(row.billing_provider, row.tax_provider, row.delivery_method_id)

    def created(self, row: StagedRow, config_id: str | None) -> None:
        """``row`` was created as ``config_id`` (``None``: a dry run would create it)."""
        self.report.record_created(row.billing_provider, row.tax_provider, row.delivery_method_id, config_id)
        self._planned(PlannedChange(
            action="create", customer_id=row.customer_id, billing_provider=row.billing_provider,
            detail=row.payload(),
        ))  # fmt: skip
        if self.dry_run and self._changes.allow():
            self.log.info("Would create (row %d, %s): %s", row.row, row.key, row.payload())

    def archived(self, customer_id: str, configs: list[dict[str, Any]]) -> None:
        """The configurations of ``customer_id`` that the source supersedes were archived (or would be)."""
        for config in sorted(configs, key=lambda c: str(c["id"])):
            self.report.record_archived(config["billing_provider"], config["id"])
            self._planned(PlannedChange(
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

    def _planned(self, change: PlannedChange) -> None:
        self.report.record_planned(change)
