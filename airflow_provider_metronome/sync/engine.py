"""The billing-config sync: rows in → validate → resolve → diff → write → report.

Two passes, so that memory stays flat and every row can be judged against the
whole source:

1. **Read** (:mod:`.reading`): rows stream in chunks, are validated and resolved;
   good rows go to an on-disk staging file, bad rows are rejected.
2. **Reconcile** (:mod:`.reconcile`): staged rows come back grouped by customer;
   customer by customer, as one pipeline, the sync locks the customer
   (:mod:`.locks`), reads its configurations, diffs (:mod:`.diff`), creates what
   is missing in batches (:mod:`.writer`) and, in ``replace`` mode, archives what
   the new configurations supersede. Customers that do not exist yet are created
   with their configurations (:mod:`.customers`, ``create_missing_customers``).

Bad rows never sink good rows: every rejection is booked (:mod:`.outcomes`) with its
row number, key, field and reason, and the good rows are synced. Deciding whether the
number of rejections fails the run is the caller's business (the operator's tolerance).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.exceptions import MetronomeConfigError
from airflow_provider_metronome.models.report import SyncReport
from airflow_provider_metronome.sync.diff import MODES
from airflow_provider_metronome.sync.locks import (
    LOCK_DIR_ENV,
    CustomerLocks,
    FileCustomerLocks,
    NoCustomerLocks,
)
from airflow_provider_metronome.sync.outcomes import Outcomes
from airflow_provider_metronome.sync.reading import RowReader, Share, row_key
from airflow_provider_metronome.sync.reconcile import Reconciler
from airflow_provider_metronome.sync.resolve import DeliveryMethods
from airflow_provider_metronome.sync.staging import Staging

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from airflow_provider_metronome.client.api import MetronomeApi
    from airflow_provider_metronome.models.report import Rejection
    from airflow_provider_metronome.sync.ledger import LedgerReader, Spool

__all__ = ["BillingConfigSync", "SyncOptions", "row_key"]

log = logging.getLogger("airflow_provider_metronome.sync")


@dataclass
class SyncOptions:
    """How a sync runs.

    :param mode: ``create_missing`` (default: create what is missing, touch nothing
        else) or ``replace`` (also archive the other active configurations of each
        customer + billing provider in the source).
    :param dry_run: plan only: read and diff, log what would change, write nothing.
    :param batch_size: configurations per create request.
    :param max_concurrency: requests in flight at once.
    :param chunk_size: rows read, validated and staged per step.
    :param progress_interval: seconds between progress lines.
    :param staging_dir: where the staging file goes (default: the temp dir).
    :param partition: with ``partitions`` > 1, the share of customers this sync owns
        (0-based). Shares are decided by the *resolved* customer, so all rows of one
        customer land in one share however they name it (id or ingest alias).
    :param partitions: how many shares the customers are split into.
    :param prefiltered: the source already kept only this share's rows that give a
        ``customer_id`` (:func:`~.sources.partition_sql`); rows keyed by ingest alias
        are still judged here, once resolved.
    :param lock_timeout: seconds to wait for customers another sync holds before
        rejecting their rows (they are synced by the next run).
    :param verify: with a results ledger, still read every customer from Metronome
        (and look every alias up): finds and repairs configurations archived or
        changed outside the sync since the ledger recorded them (``drift``).
    :param create_missing_customers: a row whose ingest alias matches no active
        customer creates one (with its ``customer_name``, aliases, custom fields and
        configurations, in one request; :mod:`.customers`) instead of being rejected.
    """

    mode: str = "create_missing"
    dry_run: bool = False
    batch_size: int = 100
    max_concurrency: int = 48
    chunk_size: int = 2000
    progress_interval: float = 30.0
    staging_dir: str | None = None
    partition: int | None = None
    partitions: int = 1
    prefiltered: bool = False
    lock_timeout: float = 900.0
    verify: bool = False
    create_missing_customers: bool = False

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad option."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("batch_size", "max_concurrency", "chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.partition is not None and not 0 <= self.partition < self.partitions:
            raise ValueError(f"partition must be in 0..{self.partitions - 1}, got {self.partition!r}")


class BillingConfigSync:
    """Make Metronome's billing provider configurations follow a set of rows.

    :param api: the Metronome API (the Airflow hook's client or a standalone client).
    :param options: how to run.
    :param on_reject: called with every rejection as it happens (e.g. to write a
        rejects file); the report keeps only a sample.
    :param logger: where progress and decisions are logged.
    :param locks: the customer locks every sync of the same customers respects
        (:mod:`.locks`; default: :class:`~.locks.FileCustomerLocks`, shared by every
        task on this machine). The sync closes them when it ends.
    :param ledger: the results ledger to consult (:class:`~.ledger.ResultsTable`):
        rows whose latest outcome was created/unchanged with the same content cost no
        Metronome call (unless ``options.verify``).
    :param spool: where every row's outcome is kept for the ledger (the caller writes
        it to the warehouse once the sync is done).
    """

    def __init__(
        self,
        api: MetronomeApi,
        options: SyncOptions | None = None,
        *,
        on_reject: Callable[[Rejection], None] | None = None,
        logger: logging.Logger | None = None,
        locks: CustomerLocks | None = None,
        ledger: LedgerReader | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.api = api
        self.ledger = ledger
        self.options = options or SyncOptions()
        self.options.check()
        self.log = logger or log
        self.locks = locks
        self.report = SyncReport(mode=self.options.mode, dry_run=self.options.dry_run)
        self.outcomes = Outcomes(
            self.report, dry_run=self.options.dry_run, log=self.log, on_reject=on_reject, spool=spool
        )

    def run(self, rows: Iterable[Mapping[str, Any]]) -> SyncReport:
        """Sync ``rows``; return the report.

        :param rows: mappings following the warehouse row contract.
        """
        start = time.monotonic()
        calls_before = self.api.api_calls
        by_endpoint_before = self.api.api_calls_by_endpoint
        opts = self.options
        self.log.info(
            "Sync starts: mode=%s dry_run=%s batch_size=%d max_concurrency=%d create_missing_customers=%s",
            opts.mode, opts.dry_run, opts.batch_size, opts.max_concurrency, opts.create_missing_customers,
        )  # fmt: skip
        share = Share(opts.partition, opts.partitions, opts.prefiltered)
        if not share.everything:
            self.log.info("Partition %d of %d: customers are shared out once resolved",
                          (opts.partition or 0) + 1, opts.partitions)  # fmt: skip
        methods = DeliveryMethods(self.api.list_configured_billing_providers())
        self.log.info("The account has %d delivery methods", len(methods.by_id))
        staging = Staging(opts.staging_dir)
        locks = self.locks if self.locks is not None else _default_locks()
        try:
            with ThreadPoolExecutor(
                max_workers=opts.max_concurrency, thread_name_prefix="metronome-sync"
            ) as pool:
                reader = RowReader(
                    self.api, methods, share, self.outcomes, self.log,
                    chunk_size=opts.chunk_size, progress_interval=opts.progress_interval,
                    ledger=self.ledger, verify=opts.verify,
                    create_customers=opts.create_missing_customers,
                )  # fmt: skip
                reader.stage(rows, staging, pool)
                if opts.dry_run:
                    locks_used: CustomerLocks = NoCustomerLocks()
                else:
                    locks_used = locks
                    self.log.info("Customer locks: %s", locks.description)
                Reconciler(self.api, opts, self.outcomes, locks_used, pool, self.log).run(staging)
        finally:
            locks.close()
            staging.close()
            self.report.seconds = time.monotonic() - start
            self.report.api_calls = self.api.api_calls - calls_before
            self.report.api_calls_by_endpoint = {
                endpoint: n - by_endpoint_before.get(endpoint, 0)
                for endpoint, n in sorted(self.api.api_calls_by_endpoint.items())
                if n > by_endpoint_before.get(endpoint, 0)
            }
        self.log.info("Sync done: %s", self.report.text())
        return self.report


def _default_locks() -> CustomerLocks:
    try:
        return FileCustomerLocks()
    except (ImportError, OSError) as err:  # no fcntl (Windows) or no usable lock folder
        # Never sync without locks by accident: a concurrent run could then duplicate.
        raise MetronomeConfigError(
            f"Cannot take customer locks ({err}): set {LOCK_DIR_ENV} to a folder this user can "
            "write, or use a PostgreSQL lock connection (lock_conn_id)"
        ) from None
