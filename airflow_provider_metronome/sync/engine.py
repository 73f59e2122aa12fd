"""The billing-config sync: rows in → validate → resolve → diff → write → report.

Two passes, so that memory stays flat and every row can be judged against the
whole source:

1. **Read.** Rows stream in chunks; each is validated (:func:`~..models.row.parse_row`),
   its ingest alias resolved (cached, in parallel) and its delivery method resolved
   against ``listConfiguredBillingProviders``; good rows go to an on-disk staging
   file (:class:`~.staging.Staging`), bad rows to the report.
2. **Reconcile.** Staged rows come back grouped by customer. Identical rows collapse
   into one (the others count as duplicates); rows that disagree about the same
   customer + billing provider + delivery method are all rejected (never guess).
   Customer by customer, as one pipeline, the engine locks each customer
   (:mod:`.locks`), reads its configurations (``max_concurrency`` requests in
   flight), diffs (:mod:`.diff`), creates what is missing in batches
   (:mod:`.writer`) and then, in ``replace`` mode, archives what the new
   configurations supersede.

Bad rows never sink good rows: every rejection is reported with its row number,
key, field and reason, and the good rows are synced. Deciding whether the number of
rejections fails the run is the caller's business (the operator's tolerance).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client.idempotency import idempotency_key
from airflow_provider_metronome.exceptions import (
    MetronomeAPIError,
    MetronomeConfigError,
    MetronomeNotFoundError,
)
from airflow_provider_metronome.models.report import PlannedChange, Rejection, SyncReport
from airflow_provider_metronome.models.row import BillingConfigRow, RowProblem, parse_row
from airflow_provider_metronome.models.rules import BILLING_PROVIDERS
from airflow_provider_metronome.sync.diff import MODES, CustomerPlan, plan_customer
from airflow_provider_metronome.sync.locks import (
    LOCK_DIR_ENV,
    CustomerLocks,
    FileCustomerLocks,
    NoCustomerLocks,
)
from airflow_provider_metronome.sync.progress import Progress
from airflow_provider_metronome.sync.resolve import AliasResolver, DeliveryMethods
from airflow_provider_metronome.sync.sources import bucket, customer_key, placed_by_sql
from airflow_provider_metronome.sync.staging import IdentityGroup, StagedRow, Staging
from airflow_provider_metronome.sync.writer import BatchWriter, Created, Rejected

if TYPE_CHECKING:
    from airflow_provider_metronome.client.api import MetronomeApi

log = logging.getLogger("airflow_provider_metronome.sync")

# How many rejections and planned changes are logged one by one before only counting.
_LOG_EACH = 200
_KEY_VALUE_LIMIT = 60
# Customers locked per call to the lock backend (one round trip for PostgreSQL).
_LOCK_BLOCK = 64
# Seconds the oldest queued create may wait for its batch to fill.
_PENDING_MAX_SECONDS = 2.0
# Other rows named in a conflict's reason.
_CONFLICTS_NAMED = 5


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
    """

    mode: str = "create_missing"
    dry_run: bool = False
    batch_size: int = 100
    max_concurrency: int = 24
    chunk_size: int = 2000
    progress_interval: float = 30.0
    staging_dir: str | None = None
    partition: int | None = None
    partitions: int = 1
    prefiltered: bool = False
    lock_timeout: float = 900.0

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


def row_key(raw: Any) -> str:
    """A short, printable identity of a raw row: who and which provider."""
    if not isinstance(raw, Mapping):
        return "unreadable row"
    parts = []
    for name in ("customer_id", "ingest_alias", "billing_provider"):
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        text = str(value)
        if len(text) > _KEY_VALUE_LIMIT:
            text = f"{text[:_KEY_VALUE_LIMIT]}…"
        parts.append(f"{name}={text}")
    return ", ".join(parts) or "no customer_id, ingest_alias or billing_provider"


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


class BillingConfigSync:
    """Make Metronome's billing provider configurations follow a set of rows.

    :param api: the Metronome API (the Airflow hook or a standalone client).
    :param options: how to run.
    :param on_reject: called with every rejection as it happens (e.g. to write a
        rejects file); the report keeps only a sample.
    :param logger: where progress and decisions are logged.
    :param locks: the customer locks every sync of the same customers respects
        (:mod:`.locks`; default: :class:`~.locks.FileCustomerLocks`, shared by every
        task on this machine). The sync closes them when it ends.
    """

    def __init__(
        self,
        api: MetronomeApi,
        options: SyncOptions | None = None,
        *,
        on_reject: Callable[[Rejection], None] | None = None,
        logger: logging.Logger | None = None,
        locks: CustomerLocks | None = None,
    ) -> None:
        self.api = api
        self.options = options or SyncOptions()
        self.options.check()
        self.on_reject = on_reject
        self.log = logger or log
        self.locks = locks
        self.report = SyncReport(mode=self.options.mode, dry_run=self.options.dry_run)
        self._logged = 0

    # -- bookkeeping --------------------------------------------------------------------

    def _reject(self, row: int, key: str, field: str, reason: str, provider: str | None) -> None:
        rejection = Rejection(row=row, key=key, field=field, reason=reason)
        self.report.add_rejection(rejection, provider)
        if self.on_reject is not None:
            self.on_reject(rejection)
        if self.report.rejected <= _LOG_EACH:
            self.log.warning("Rejected %s", rejection.describe())
        elif self.report.rejected == _LOG_EACH + 1:
            self.log.warning("More rejections: only counting from here (see the rejects file or the report)")

    def _plan_line(self, change: PlannedChange) -> None:
        if len(self.report.planned) < 100:
            self.report.planned.append(change)
        self._logged += 1
        if self._logged <= _LOG_EACH or not self.options.dry_run:
            return
        if self._logged == _LOG_EACH + 1:
            self.log.info("More planned changes: only counting from here")

    # -- the run ---------------------------------------------------------------------------

    def run(self, rows: Iterable[Mapping[str, Any]]) -> SyncReport:
        """Sync ``rows``; return the report.

        :param rows: mappings following the warehouse row contract.
        """
        start = time.monotonic()
        calls_before = self.api.api_calls
        opts = self.options
        self.log.info(
            "Sync starts: mode=%s dry_run=%s batch_size=%d max_concurrency=%d",
            opts.mode, opts.dry_run, opts.batch_size, opts.max_concurrency,
        )  # fmt: skip
        if opts.partition is not None and opts.partitions > 1:
            self.log.info("Partition %d of %d: customers are shared out once resolved",
                          opts.partition + 1, opts.partitions)  # fmt: skip
        methods = DeliveryMethods(self.api.list_configured_billing_providers())
        self.log.info("The account has %d delivery methods", len(methods.by_id))
        staging = Staging(opts.staging_dir)
        locks = self.locks if self.locks is not None else _default_locks()
        try:
            with ThreadPoolExecutor(
                max_workers=opts.max_concurrency, thread_name_prefix="metronome-sync"
            ) as pool:
                self._read(rows, methods, staging, pool)
                if not opts.dry_run:
                    self.log.info("Customer locks: %s", locks.description)
                self._reconcile(staging, pool, locks if not opts.dry_run else NoCustomerLocks())
        finally:
            locks.close()
            staging.close()
            self.report.seconds = time.monotonic() - start
            self.report.api_calls = self.api.api_calls - calls_before
        self.log.info("Sync done: %s", self.report.text())
        return self.report

    # -- pass 1: read, validate, resolve, stage --------------------------------------------

    def _read(
        self,
        rows: Iterable[Mapping[str, Any]],
        methods: DeliveryMethods,
        staging: Staging,
        pool: ThreadPoolExecutor,
    ) -> None:
        aliases = AliasResolver(lambda alias: pool.submit(self.api.find_customer_by_ingest_alias, alias))
        progress = Progress(self.log, "Rows read", interval=self.options.progress_interval)
        share = _Share.of(self.options)
        number = 0
        for chunk in _chunks(rows, self.options.chunk_size):
            # (row number, key, row, whether this share owns it: None = once resolved)
            parsed: list[tuple[int, str, BillingConfigRow, bool | None]] = []
            for raw in chunk:
                number += 1
                owned = share.owns_raw(raw)
                if owned is False:
                    continue
                result = parse_row(raw)
                if isinstance(result, list):
                    if owned is None and not share.owns_resolved(_raw_key_text(raw), None):
                        continue
                    self.report.rows_read += 1
                    key = row_key(raw)
                    provider = raw.get("billing_provider") if isinstance(raw, Mapping) else None
                    for problem in _merge(result):
                        self._reject(number, key, problem.field, problem.reason, _known(provider))
                    continue
                if owned is None and result.customer_id is not None:
                    # An id in an unusual shape: placed by its parsed (canonical) form.
                    owned = share.owns_resolved("", result.customer_id)
                    if not owned:
                        continue
                if owned:
                    self.report.rows_read += 1
                parsed.append((number, row_key(raw), result, owned))
            wanted = [r.ingest_alias for _, _, r, _ in parsed if r.ingest_alias is not None]
            resolved = aliases.resolve_many(wanted) if wanted else {}
            staged: list[StagedRow] = []
            for row_no, key, r, owned in parsed:
                customer_id = r.customer_id
                if customer_id is None:
                    customer_id = resolved.get(r.ingest_alias or "")
                    if owned is None:
                        if not share.owns_resolved(r.ingest_alias or "", customer_id):
                            continue
                        self.report.rows_read += 1
                    if customer_id is None:
                        self._reject(
                            row_no, key, "ingest_alias",
                            f"no active Metronome customer has ingest alias {r.ingest_alias!r}",
                            r.billing_provider,
                        )  # fmt: skip
                        continue
                dm, field, reason = methods.resolve(
                    r.billing_provider, r.delivery_method, r.delivery_method_id
                )
                if dm is None:
                    self._reject(row_no, key, field, reason, r.billing_provider)
                    continue
                staged.append(
                    StagedRow(
                        row=row_no,
                        key=key,
                        customer_id=customer_id,
                        billing_provider=r.billing_provider,
                        delivery_method_id=dm["delivery_method_id"],
                        delivery_method=dm["delivery_method"],
                        configuration=r.configuration,
                        tax_provider=r.tax_provider,
                        given_delivery="delivery_method" if r.delivery_method else "delivery_method_id",
                    )
                )
            staging.add(staged)
            self.report.valid += len(staged)
            progress.update(number)
        self.log.info(
            "Read %d rows: %d valid, %d rejected, %d alias lookups",
            self.report.rows_read, self.report.valid, self.report.rejected, aliases.lookups,
        )  # fmt: skip

    # -- pass 2: reconcile as one pipeline -----------------------------------------------------

    def _reconcile(self, staging: Staging, pool: ThreadPoolExecutor, locks: CustomerLocks) -> None:
        """Lock, read, diff and write as one continuous pipeline.

        Customers come from staging in blocks; the free ones are locked
        (:mod:`.locks`) and their configuration reads run in the pool
        (``max_concurrency`` threads) with a window of twice that queued, so the
        network never idles at block boundaries. Plans are booked in this thread as
        reads complete (in order); creates are batched and each full batch is
        written in the pool. In ``replace`` mode a customer's archive runs once all
        of its creates succeeded (never when one was refused, so the customer never
        has fewer active configurations than before). A customer's lock is released
        once all of its writes are answered.

        Customers another sync holds are skipped, then taken up again once the
        whole pass is done (:meth:`_wait_for_held`).
        """
        total = staging.customers()
        self.report.customers = total
        progress = Progress(self.log, "Customers reconciled", interval=self.options.progress_interval)
        pipe = _Pipeline(BatchWriter(self.api, {}), pool, locks)
        try:
            self._reconcile_all(staging, pipe, progress, total)
        except BaseException as err:
            self._hold_if_unsettled(pipe, err)
            raise

    def _hold_if_unsettled(self, pipe: _Pipeline, err: BaseException) -> None:
        """Keep the locks a while when a write may still land at Metronome.

        A write that timed out, lost its connection, got a 5xx or a 409 (its key still
        in use) may be applied after the client gave up. Released now, its customers
        could be read by another sync before that write lands, and created again.
        Definite refusals (other 4xx) need no wait.
        """
        unsettled = bool(pipe.writing or pipe.writes or pipe.archives)
        definite = isinstance(err, MetronomeAPIError) and 400 <= err.status < 500 and err.status != 409
        if not unsettled or definite:
            return
        wait = min(float(getattr(getattr(self.api, "settings", None), "timeout", 60.0)), 120.0) + 5.0
        self.log.warning(
            "Keeping the locks of %d customer(s) for %.0fs: a write's outcome is unknown (%s), "
            "and another sync must not read them before it lands",
            len(pipe.writing), wait, type(err).__name__,
        )  # fmt: skip
        for future in list(pipe.writes) + list(pipe.archives):
            future.cancel()
        time.sleep(wait)

    def _reconcile_all(self, staging: Staging, pipe: _Pipeline, progress: Progress, total: int) -> None:
        held_elsewhere: list[str] = []
        seen = 0
        for block in _chunks(staging.iter_customers(), _LOCK_BLOCK):
            if total == 1:
                self.report.only_customer_id = block[0][0]
            seen += len(block)
            wanted = [(customer_id, self._desired(groups)) for customer_id, groups in block]
            wanted = [(customer_id, rows) for customer_id, rows in wanted if rows]
            taken = set(pipe.locks.try_acquire([customer_id for customer_id, _ in wanted]))
            for customer_id, rows in wanted:
                if customer_id in taken:
                    self._start_read(pipe, customer_id, rows)
                else:
                    held_elsewhere.append(customer_id)
            self._flush(pipe)  # sends a short batch that has waited too long
            pipe.release_done()
            progress.update(seen - len(held_elsewhere), total)
        self._drain(pipe)
        if held_elsewhere:
            self._wait_for_held(staging, pipe, held_elsewhere, progress, total)
        progress.update(total, total, force=total > 0)

    def _start_read(self, pipe: _Pipeline, customer_id: str, rows: list[StagedRow]) -> None:
        """Queue the read of a locked customer's configurations; book the reads that are done."""
        future = pipe.pool.submit(
            self.api.get_billing_provider_configurations, customer_id, include_archived=True
        )
        pipe.reads.append((customer_id, rows, future))
        window = 2 * self.options.max_concurrency
        while len(pipe.reads) >= window or (pipe.reads and pipe.reads[0][2].done()):
            self._book_read(pipe, *pipe.reads.popleft())
        self._harvest(pipe)

    def _drain(self, pipe: _Pipeline) -> None:
        """Finish everything in flight; release every lock it held."""
        while pipe.reads:
            self._book_read(pipe, *pipe.reads.popleft())
        self._flush(pipe, force=True)
        # Answered writes may start archives (replace mode), so wait for both together.
        while pipe.writes or pipe.archives:
            if pipe.writes:
                self._book_written(pipe, pipe.writes.popleft().result())
            else:
                self._book_archive_done(pipe, pipe.archives.popleft().result())
        pipe.release_done()

    def _wait_for_held(
        self, staging: Staging, pipe: _Pipeline, waiting: list[str], progress: Progress, total: int
    ) -> None:
        """Sync the customers another sync held, as it lets go of them.

        Only free locks are ever taken (this sync holds none while it waits), so two
        syncs cannot deadlock. Once ``lock_timeout`` has passed, the rows of the
        customers still held are rejected: the next run syncs them.
        """
        timeout = self.options.lock_timeout
        self.log.info(
            "%d customer(s) are being synced by another run right now: syncing them once it is done "
            "with them (waiting up to %.0fs)", len(waiting), timeout,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        pause = 0.05
        while waiting:
            taken: set[str] = set()
            for block in _chunks(waiting, _LOCK_BLOCK):
                taken.update(pipe.locks.try_acquire(block))
            for customer_id in taken:
                rows = self._desired(staging.groups_of(customer_id), book=False)
                self._start_read(pipe, customer_id, rows)
            self._drain(pipe)
            waiting = [customer_id for customer_id in waiting if customer_id not in taken]
            progress.update(total - len(waiting), total)
            if not waiting:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        for customer_id in waiting:
            for r in self._desired(staging.groups_of(customer_id), book=False):
                self.report.valid -= 1
                self.report.held_elsewhere += 1
                self._reject(
                    r.row, r.key, "customer_id",
                    f"another sync kept customer {customer_id} locked for more than {timeout:.0f}s; "
                    "this row is synced by the next run (or raise lock_timeout)",
                    r.billing_provider,
                )  # fmt: skip

    def _desired(self, groups: list[IdentityGroup], *, book: bool = True) -> list[StagedRow]:
        """One row per identity; duplicates counted, conflicts rejected.

        :param book: count and reject (the first time a customer is seen); a customer
            whose turn comes back after a lock wait was booked already.
        """
        desired = []
        for group in groups:
            first = group.rows[0]
            if group.distinct > 1:
                if not book:
                    continue
                # Name a few of the other rows, not all: N rows naming N-1 others each
                # would make the log and the rejects file quadratic in N.
                shown = [r.row for r in group.rows[: _CONFLICTS_NAMED + 1]]
                for r in group.rows:
                    others = [n for n in shown if n != r.row][:_CONFLICTS_NAMED]
                    more = group.size - 1 - len(others)
                    listed = ", ".join(str(n) for n in others) + (f" and {more} more" if more else "")
                    self._reject(
                        r.row, r.key, "configuration",
                        f"conflicts with row(s) {listed}: same customer, billing provider and delivery "
                        "method but a different configuration or tax_provider; keep one row",
                        r.billing_provider,
                    )  # fmt: skip
                self.report.valid -= group.size
                continue
            if group.size > 1 and book:
                extra = group.size - 1
                self.report.duplicates += extra
                self.report.count(first.billing_provider, "duplicates", extra)
            desired.append(first)
        return desired

    def _book_read(
        self, pipe: _Pipeline, customer_id: str, rows: list[StagedRow], future: Future[list[dict[str, Any]]]
    ) -> None:
        """Book one customer's read: diff it, queue its archive or its creates."""
        try:
            configs = future.result()
        except MetronomeNotFoundError:
            for r in rows:
                reason = f"no Metronome customer has id {customer_id}"
                self._reject(r.row, r.key, "customer_id", reason, r.billing_provider)
            self.report.valid -= len(rows)
            pipe.done(customer_id)
            return
        plan = plan_customer(customer_id, rows, configs, self.options.mode)
        pipe.writer.basis[customer_id] = {c["id"] for c in configs}
        for row, _config_id in plan.unchanged:
            self.report.unchanged += 1
            self.report.count(row.billing_provider, "unchanged")
            self.report.add_tax_delivery_method(row.tax_provider, row.delivery_method_id)
        if self.options.dry_run:
            if plan.archive:
                self._book_archived(plan)
            for row in plan.create:
                self._record_created(row, None)
            pipe.done(customer_id)
        elif plan.create:
            # Create first, archive once every create of the customer succeeded: a
            # refused create never leaves the customer with fewer active configurations.
            pipe.writing[customer_id] = len(plan.create)
            if plan.archive:
                pipe.then_archive[customer_id] = plan
            if not pipe.pending:
                pipe.pending_since = time.monotonic()
            pipe.pending.extend(plan.create)
            self._flush(pipe)
        elif plan.archive:
            pipe.archives.append(pipe.pool.submit(self._archive, plan))
        else:
            pipe.done(customer_id)

    def _archive(self, plan: CustomerPlan) -> CustomerPlan:
        """In a worker: archive the superseded configurations of one customer."""
        ids = sorted(c["id"] for c in plan.archive)
        key = idempotency_key("archiveCustomerBillingProviderConfigurations", [plan.customer_id, ids])
        self.api.archive_billing_provider_configurations(plan.customer_id, ids, idempotency_key=key)
        return plan

    def _book_archive_done(self, pipe: _Pipeline, plan: CustomerPlan) -> None:
        """Book an archive Metronome answered; the customer is done."""
        self._book_archived(plan)
        pipe.done(plan.customer_id)

    def _writes_answered(self, pipe: _Pipeline, customer_id: str) -> None:
        """Every create of a customer is answered: archive what they supersede, or finish."""
        plan = pipe.then_archive.pop(customer_id, None)
        refused = customer_id in pipe.refused
        pipe.refused.discard(customer_id)
        if plan is None:
            pipe.done(customer_id)
        elif refused:
            self.log.warning(
                "Kept the %d configuration(s) of customer %s that replace mode would archive: "
                "Metronome refused their replacement (see the rejected rows)", len(plan.archive), customer_id,
            )  # fmt: skip
            pipe.done(customer_id)
        else:
            pipe.archives.append(pipe.pool.submit(self._archive, plan))

    def _harvest(self, pipe: _Pipeline) -> None:
        while pipe.archives and pipe.archives[0].done():
            self._book_archive_done(pipe, pipe.archives.popleft().result())
        while pipe.writes and pipe.writes[0].done():
            self._book_written(pipe, pipe.writes.popleft().result())

    def _flush(self, pipe: _Pipeline, *, force: bool = False) -> None:
        size = self.options.batch_size
        # A short batch goes out once its oldest row has waited a while: its customers
        # stay locked until it is answered, and another sync may be waiting for them.
        stale = bool(pipe.pending) and time.monotonic() - pipe.pending_since > _PENDING_MAX_SECONDS
        while len(pipe.pending) >= size or ((force or stale) and pipe.pending):
            batch = pipe.pending[:size]
            del pipe.pending[:size]
            pipe.locks.verify()
            pipe.writes.append(pipe.pool.submit(pipe.writer.create, batch))
            # Bound the writes in flight: each holds a pool thread.
            while len(pipe.writes) > self.options.max_concurrency:
                self._book_written(pipe, pipe.writes.popleft().result())

    def _book_written(self, pipe: _Pipeline, result: tuple[Created, Rejected]) -> None:
        created, refused = result
        for row, where, reason in refused:
            self.report.valid -= 1
            self._reject(row.row, row.key, where, reason, row.billing_provider)
            pipe.refused.add(row.customer_id)
        for row, config_id in created:
            self._record_created(row, config_id)
        for row in [r for r, _ in created] + [r for r, _, _ in refused]:
            if pipe.wrote(row.customer_id):
                self._writes_answered(pipe, row.customer_id)

    def _record_created(self, row: StagedRow, config_id: str | None) -> None:
        self.report.created += 1
        self.report.count(row.billing_provider, "created")
        self.report.add_tax_delivery_method(row.tax_provider, row.delivery_method_id)
        if config_id is not None:
            self.report.add_created([config_id])
        change = PlannedChange(
            action="create",
            customer_id=row.customer_id,
            billing_provider=row.billing_provider,
            detail=row.payload(),
        )
        self._plan_line(change)
        if self.options.dry_run and self._logged <= _LOG_EACH:
            self.log.info("Would create (row %d, %s): %s", row.row, row.key, row.payload())

    def _book_archived(self, plan: CustomerPlan) -> None:
        self.report.add_archived(sorted(c["id"] for c in plan.archive))
        verb = "Would archive" if self.options.dry_run else "Archived"
        for config in plan.archive:
            self.report.count(config["billing_provider"], "archived")
            change = PlannedChange(
                action="archive",
                customer_id=plan.customer_id,
                billing_provider=config["billing_provider"],
                detail={"id": config["id"], "configuration": config.get("configuration", {})},
            )
            self._plan_line(change)
            if not self.options.dry_run or self._logged <= _LOG_EACH:
                self.log.info(
                    "%s configuration %s of customer %s (%s): superseded",
                    verb, config["id"], plan.customer_id, config["billing_provider"],
                )  # fmt: skip


@dataclass(frozen=True)
class _Share:
    """Which rows a partitioned sync owns: those of the customers that hash to its share.

    Rows that give a ``customer_id`` are decided at once (by the source's SQL when
    ``prefiltered``); rows keyed by ingest alias once the alias is resolved, so every
    row of one customer lands in one share. A row that resolves to no customer is
    owned by the share its alias text hashes to, so exactly one share reports it.
    """

    partition: int | None
    partitions: int
    prefiltered: bool

    @classmethod
    def of(cls, options: SyncOptions) -> _Share:
        return cls(options.partition, options.partitions, options.prefiltered)

    @property
    def everything(self) -> bool:
        return self.partition is None or self.partitions <= 1

    def owns_raw(self, raw: Any) -> bool | None:
        """Whether a source row is this share's, or ``None`` when only its resolved customer can tell."""
        if self.everything:
            return True
        key = customer_key(raw) if isinstance(raw, Mapping) else ""
        if not placed_by_sql(key):
            return None
        return True if self.prefiltered else bucket(key, self.partitions) == self.partition

    def owns_resolved(self, alias: str, customer_id: str | None) -> bool:
        """Whether a row whose customer is ``customer_id`` (resolved, or ``None``) is this share's.

        :param alias: what the row names its customer by when it resolved to none: its
            alias (or raw text), so that exactly one share reports it.
        """
        if self.everything:
            return True
        return bucket(customer_id or alias, self.partitions) == self.partition


def _raw_key_text(raw: Any) -> str:
    """What an unparseable row names its customer by, the same in every partition."""
    if not isinstance(raw, Mapping):
        return ""
    return customer_key(raw) or ("" if raw.get("ingest_alias") is None else str(raw.get("ingest_alias")))


@dataclass
class _Pipeline:
    """What is in flight during the reconcile pass (only the main thread touches it)."""

    writer: BatchWriter
    pool: ThreadPoolExecutor
    locks: CustomerLocks
    reads: deque[tuple[str, list[StagedRow], Future[list[dict[str, Any]]]]] = field(default_factory=deque)
    archives: deque[Future[CustomerPlan]] = field(default_factory=deque)
    writes: deque[Future[tuple[Created, Rejected]]] = field(default_factory=deque)
    pending: list[StagedRow] = field(default_factory=list)
    pending_since: float = 0.0
    # customer → rows whose create is not answered yet (its lock is held until 0)
    writing: dict[str, int] = field(default_factory=dict)
    # replace mode: customer → plan whose archive waits for its creates
    then_archive: dict[str, CustomerPlan] = field(default_factory=dict)
    # customers with a refused create (their archive is skipped)
    refused: set[str] = field(default_factory=set)
    # customers whose work is done: their locks are released in one call
    finished: list[str] = field(default_factory=list)

    def done(self, customer_id: str) -> None:
        """Nothing more will be written for this customer."""
        self.finished.append(customer_id)

    def wrote(self, customer_id: str) -> bool:
        """One create of this customer was answered; return whether it was the last."""
        left = self.writing[customer_id] - 1
        if left:
            self.writing[customer_id] = left
            return False
        del self.writing[customer_id]
        return True

    def release_done(self) -> None:
        if self.finished:
            self.locks.release(self.finished)
            self.finished = []


def _default_locks() -> CustomerLocks:
    try:
        return FileCustomerLocks()
    except (ImportError, OSError) as err:  # no fcntl (Windows) or no usable lock folder
        # Never sync without locks by accident: a concurrent run could then duplicate.
        raise MetronomeConfigError(
            f"Cannot take customer locks ({err}): set {LOCK_DIR_ENV} to a folder this user can "
            "write, or use a PostgreSQL lock connection (lock_conn_id)"
        ) from None


def _merge(problems: list[RowProblem]) -> list[RowProblem]:
    """One rejection per row: all of its problems in one reason, the first field named."""
    if len(problems) <= 1:
        return problems
    fields = ", ".join(dict.fromkeys(p.field for p in problems))
    return [RowProblem(fields, "; ".join(f"{p.field}: {p.reason}" for p in problems))]


def _known(provider: Any) -> str | None:
    return provider if isinstance(provider, str) and provider in BILLING_PROVIDERS else None
