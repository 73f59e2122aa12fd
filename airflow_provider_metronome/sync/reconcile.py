"""Pass 2 of the sync: lock, read, diff and write, customer by customer, as one pipeline.

Staged rows come back grouped by customer (:mod:`.staging`). Identical rows collapse
into one (the others count as duplicates); rows that disagree about the same customer
+ billing provider + delivery method are all rejected (never guess). Each customer is
locked (:mod:`.locks`), its configurations are read (``max_concurrency`` requests in
flight), diffed (:mod:`.diff`), what is missing is created in batches (:mod:`.writer`)
and then, in ``replace`` mode, what the new configurations supersede is archived.

Threads: everything here runs on the sync's thread except the requests themselves,
which run in the pool and hand their answers back through futures; no state is
shared with the pool otherwise (each batch gets its own :class:`~.writer.BatchWriter`
with a copy of what its customers looked like).
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client.idempotency import idempotency_key
from airflow_provider_metronome.exceptions import MetronomeAPIError, MetronomeNotFoundError
from airflow_provider_metronome.sync.customers import (
    AliasChange,
    Created,
    Exists,
    NewCustomer,
    Outcome,
    Refused,
    add_missing_aliases,
    create_customer,
)
from airflow_provider_metronome.sync.diff import CustomerPlan, plan_customer
from airflow_provider_metronome.sync.progress import Progress
from airflow_provider_metronome.sync.reading import chunks
from airflow_provider_metronome.sync.staging import NEW_CUSTOMER_PREFIX
from airflow_provider_metronome.sync.writer import BatchWriter, Rejected
from airflow_provider_metronome.sync.writer import Created as CreatedRows

if TYPE_CHECKING:
    import logging

    from airflow_provider_metronome.client.api import MetronomeApi
    from airflow_provider_metronome.sync.engine import SyncOptions
    from airflow_provider_metronome.sync.locks import CustomerLocks
    from airflow_provider_metronome.sync.outcomes import Outcomes
    from airflow_provider_metronome.sync.staging import IdentityGroup, StagedRow, Staging

# Customers locked per call to the lock backend (one round trip for PostgreSQL).
_LOCK_BLOCK = 64
# Seconds the oldest queued create may wait for its batch to fill.
_PENDING_MAX_SECONDS = 2.0
# Other rows named in a conflict's reason.
_CONFLICTS_NAMED = 5

_Answer = tuple[list[dict[str, Any]], AliasChange]
_Read = tuple[str, list["StagedRow"], Future[_Answer]]


@dataclass
class _InFlight:
    """What the pipeline has started and not yet booked."""

    reads: deque[_Read] = field(default_factory=deque)
    archives: deque[Future[CustomerPlan]] = field(default_factory=deque)
    writes: deque[Future[tuple[CreatedRows, Rejected]]] = field(default_factory=deque)
    # customers being created (create_missing_customers)
    creating: deque[Future[Outcome]] = field(default_factory=deque)
    # customers found to exist when created, another sync holding them: rows to sync
    later: dict[str, list[StagedRow]] = field(default_factory=dict)
    # creates waiting for a full batch, and since when the oldest has waited
    pending: list[StagedRow] = field(default_factory=list)
    pending_since: float = 0.0
    # customer → ids of all its configurations (archived included) when it was planned
    basis: dict[str, set[str]] = field(default_factory=dict)
    # customer → creates not answered yet (its lock is held until 0)
    writing: dict[str, int] = field(default_factory=dict)
    # replace mode: customer → plan whose archive waits for its creates
    then_archive: dict[str, CustomerPlan] = field(default_factory=dict)
    # customers with a refused create (their archive is skipped)
    refused: set[str] = field(default_factory=set)
    # customers whose work is done: their locks are released in one call
    finished: list[str] = field(default_factory=list)

    def unsettled(self) -> bool:
        return bool(self.writing or self.writes or self.archives or self.creating)


class Reconciler:
    """Runs pass 2 over a staging file; see the module docstring.

    :param api: the Metronome API.
    :param options: how to run.
    :param outcomes: where every row's outcome is booked.
    :param locks: the customer locks (a no-op store in a dry run).
    :param pool: the threads requests run in.
    :param log: where progress goes.
    """

    def __init__(
        self,
        api: MetronomeApi,
        options: SyncOptions,
        outcomes: Outcomes,
        locks: CustomerLocks,
        pool: ThreadPoolExecutor,
        log: logging.Logger,
    ) -> None:
        self.api = api
        self.options = options
        self.outcomes = outcomes
        self.report = outcomes.report
        self.locks = locks
        self.pool = pool
        self.log = log
        self.flight = _InFlight()

    def run(self, staging: Staging) -> None:
        """Reconcile every staged customer.

        Customers come from staging in blocks; the free ones are locked and their
        configuration reads run in the pool (``max_concurrency`` threads) with a window
        of twice that queued, so the network never idles at block boundaries. Plans
        are booked in this thread as reads complete (in order); creates are batched
        and each full batch is written in the pool. In ``replace`` mode a customer's
        archive runs once all of its creates succeeded (never when one was refused, so
        the customer never has fewer active configurations than before). A customer's
        lock is released once all of its writes are answered. Customers another sync
        holds are skipped, then taken up again once the whole pass is done
        (:meth:`_wait_for_held`).
        """
        total = staging.customers()
        self.report.customers = total
        progress = Progress(self.log, "Customers reconciled", interval=self.options.progress_interval)
        try:
            held_elsewhere = self._sync_free_customers(staging, progress, total)
            if held_elsewhere or self.flight.later:
                self._wait_for_held(staging, held_elsewhere, progress, total)
            progress.update(total, total, force=total > 0)
        except BaseException as err:
            self._hold_if_unsettled(err)
            raise

    def _sync_free_customers(self, staging: Staging, progress: Progress, total: int) -> list[str]:
        """Sync every customer no other sync holds; return those it holds."""
        held_elsewhere: list[str] = []
        seen = 0
        for block in chunks(staging.iter_customers(), _LOCK_BLOCK):
            if total == 1 and not block[0][0].startswith(NEW_CUSTOMER_PREFIX):
                self.report.only_customer_id = block[0][0]
            seen += len(block)
            wanted = [(customer_id, self._desired(staging, groups)) for customer_id, groups in block]
            wanted = [(customer_id, rows) for customer_id, rows in wanted if rows and not self._settled(rows)]
            for customer_id, rows in wanted:
                if customer_id.startswith(NEW_CUSTOMER_PREFIX):
                    self._start_create(NewCustomer(customer_id[len(NEW_CUSTOMER_PREFIX) :], rows))
            wanted = [(c, rows) for c, rows in wanted if not c.startswith(NEW_CUSTOMER_PREFIX)]
            taken = set(self.locks.try_acquire([customer_id for customer_id, _ in wanted]))
            for customer_id, rows in wanted:
                if customer_id in taken:
                    self._start_read(customer_id, rows)
                else:
                    held_elsewhere.append(customer_id)
            self._send_batches()  # sends a short batch that has waited too long
            self._release_finished()
            progress.update(seen - len(held_elsewhere), total)
        self._finish_in_flight()
        return held_elsewhere

    def _settled(self, rows: list[StagedRow]) -> bool:
        """Book a customer whose every row the results ledger vouches for: no lock, no read.

        Only when *every* row is vouched for: in ``replace`` mode the diff must see all of
        a customer's rows, or it would archive the configurations of the unread ones.
        """
        if self.options.verify or any(r.settled_id is None for r in rows):
            return False
        for r in rows:
            assert r.settled_id is not None
            self.outcomes.unchanged(r, r.settled_id, without_call=True)
        return True

    def _hold_if_unsettled(self, err: BaseException) -> None:
        """Keep the locks a while when a write may still land at Metronome.

        A write that timed out, lost its connection, got a 5xx or a 409 (its key still
        in use) may be applied after the client gave up. Released now, its customers
        could be read by another sync before that write lands, and created again.
        Definite refusals (other 4xx) need no wait.
        """
        definite = isinstance(err, MetronomeAPIError) and 400 <= err.status < 500 and err.status != 409
        if not self.flight.unsettled() or definite:
            return
        wait = min(float(getattr(getattr(self.api, "settings", None), "timeout", 60.0)), 120.0) + 5.0
        self.log.warning(
            "Keeping the locks of %d customer(s) for %.0fs: a write's outcome is unknown (%s), "
            "and another sync must not read them before it lands",
            len(self.flight.writing), wait, type(err).__name__,
        )  # fmt: skip
        for future in list(self.flight.writes) + list(self.flight.archives):
            future.cancel()
        time.sleep(wait)

    # -- reads -------------------------------------------------------------------------------

    def _start_read(self, customer_id: str, rows: list[StagedRow]) -> None:
        """Queue the read of a locked customer's configurations; book the reads that are done."""
        future = self.pool.submit(self._read, customer_id, rows)
        self.flight.reads.append((customer_id, rows, future))
        window = 2 * self.options.max_concurrency
        reads = self.flight.reads
        while len(reads) >= window or (reads and reads[0][2].done()):
            self._plan_read(*reads.popleft())
        self._book_answered_writes()

    def _read(self, customer_id: str, rows: list[StagedRow]) -> _Answer:
        """In a worker, under the customer's lock: its configurations, and the aliases its rows add."""
        configs = self.api.get_billing_provider_configurations(customer_id, include_archived=True)
        return configs, add_missing_aliases(self.api, customer_id, rows, dry_run=self.options.dry_run)

    def _finish_in_flight(self) -> None:
        """Finish everything in flight; release every lock it held."""
        while self.flight.creating:
            self._book_create(self.flight.creating.popleft().result())
        while self.flight.reads:
            self._plan_read(*self.flight.reads.popleft())
        self._send_batches(force=True)
        # Answered writes may start archives (replace mode), so wait for both together.
        while self.flight.writes or self.flight.archives:
            if self.flight.writes:
                self._book_write(self.flight.writes.popleft().result())
            else:
                self._book_archive(self.flight.archives.popleft().result())
        self._release_finished()

    def _wait_for_held(self, staging: Staging, waiting: list[str], progress: Progress, total: int) -> None:
        """Sync the customers another sync held, as it lets go of them.

        Only free locks are ever taken (this sync holds none while it waits), so two
        syncs cannot deadlock. Once ``lock_timeout`` has passed, the rows of the
        customers still held are rejected: the next run syncs them.
        """
        timeout = self.options.lock_timeout
        held = set(waiting)
        later = self.flight.later
        self.flight.later = {}
        waiting = waiting + [c for c in later if c not in held]

        def rows_of(customer_id: str) -> list[StagedRow]:
            rows = later.pop(customer_id, [])
            if customer_id in held:
                rows = self._desired(staging, staging.groups_of(customer_id), first_time=False) + rows
            return self._distinct(rows)

        if held:
            self.log.info(
                "%d customer(s) are being synced by another run right now: syncing them once it is "
                "done with them (waiting up to %.0fs)", len(held), timeout,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        pause = 0.05
        while waiting:
            taken: set[str] = set()
            for block in chunks(waiting, _LOCK_BLOCK):
                taken.update(self.locks.try_acquire(block))
            for customer_id in taken:
                self._start_read(customer_id, rows_of(customer_id))
            self._finish_in_flight()
            waiting = [customer_id for customer_id in waiting if customer_id not in taken]
            progress.update(total - len(waiting), total)
            if not waiting:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        for customer_id in waiting:
            for r in rows_of(customer_id):
                self.outcomes.reject(
                    r.facts(), r.key, "customer_id",
                    f"another sync kept customer {customer_id} locked for more than {timeout:.0f}s; "
                    "this row is synced by the next run (or raise lock_timeout)",
                    r.billing_provider, staged=True, held=True,
                )  # fmt: skip

    def _desired(
        self, staging: Staging, groups: list[IdentityGroup], *, first_time: bool = True
    ) -> list[StagedRow]:
        """One row per identity; duplicates counted, conflicts rejected.

        :param first_time: count and reject; a customer whose turn comes back after a
            lock wait was booked already.
        """
        desired = []
        for group in groups:
            if group.distinct > 1:
                if first_time:
                    self._reject_conflict(staging, group)
                continue
            if group.size > 1 and first_time:
                self.outcomes.duplicates(group.rows[0], islice(staging.rows_of(group), 1, None))
            desired.append(group.rows[0])
        return desired

    def _distinct(self, rows: list[StagedRow]) -> list[StagedRow]:
        """One row per identity among rows gathered from several names of one customer.

        A customer found to exist when the sync went to create it may also be named by
        other rows (by id, or by another alias): the diff needs one row per identity.
        """
        kept: dict[tuple[str, str], StagedRow] = {}
        for r in rows:
            first = kept.setdefault((r.billing_provider, r.delivery_method_id), r)
            if first is r:
                continue
            if (first.configuration, first.tax_provider) == (r.configuration, r.tax_provider):
                self.outcomes.duplicates(first, [r])
            else:
                self.outcomes.reject(
                    r.facts(), r.key, "configuration",
                    f"conflicts with row {first.row}: both name customer {r.customer_id} (one by "
                    "another alias or its id) with the same billing provider and delivery method "
                    "but a different configuration or tax_provider; keep one row",
                    r.billing_provider, staged=True,
                )  # fmt: skip
        return list(kept.values())

    def _reject_conflict(self, staging: Staging, group: IdentityGroup) -> None:
        """Reject every row of an identity whose rows disagree (streamed: memory stays flat)."""
        provider = group.rows[0].billing_provider
        # Name a few of the other rows, not all: N rows naming N-1 others each would
        # make the log and the rejects file quadratic in N.
        shown = [r.row for r in islice(staging.rows_of(group), _CONFLICTS_NAMED + 1)]
        for r in staging.rows_of(group):
            others = [n for n in shown if n != r.row][:_CONFLICTS_NAMED]
            more = group.size - 1 - len(others)
            listed = ", ".join(str(n) for n in others) + (f" and {more} more" if more else "")
            self.outcomes.reject(
                r.facts(), r.key, "configuration",
                f"conflicts with row(s) {listed}: same customer, billing provider and delivery "
                "method but a different configuration or tax_provider (or, for a customer to "
                "create, customer_name, ingest_aliases or custom_fields); keep one row",
                provider, staged=True,
            )  # fmt: skip

    def _plan_read(self, customer_id: str, rows: list[StagedRow], future: Future[_Answer]) -> None:
        """A customer's configurations are read: diff them, queue its creates or its archive."""
        try:
            configs, aliases = future.result()
        except MetronomeNotFoundError:
            for r in rows:
                reason = f"no Metronome customer has id {customer_id}"
                self.outcomes.reject(r.facts(), r.key, "customer_id", reason, r.billing_provider, staged=True)
            self._customer_done(customer_id)
            return
        if aliases.added:
            self.outcomes.aliases_added(customer_id, aliases.added)
        if aliases.refused is not None:
            # The rows that asked for the aliases are not synced: never half of what a row says.
            for r in [r for r in rows if r.missing_aliases]:
                self.outcomes.reject(
                    r.facts(), r.key, "ingest_aliases", aliases.refused, r.billing_provider, staged=True
                )
            rows = [r for r in rows if not r.missing_aliases]
            if not rows:
                self._customer_done(customer_id)
                return
        plan = plan_customer(customer_id, rows, configs, self.options.mode)
        self.flight.basis[customer_id] = {c["id"] for c in configs}
        for row, config_id in plan.unchanged:
            if row.settled_id is not None and row.settled_id != config_id:
                self.outcomes.drifted(row, config_id)
            self.outcomes.unchanged(row, config_id)
        for row in plan.create:
            if row.settled_id is not None:
                self.outcomes.drifted(row, None)
        if self.options.dry_run:
            if plan.archive:
                self.outcomes.archived(customer_id, plan.archive)
            for row in plan.create:
                self.outcomes.created(row, None)
            self._customer_done(customer_id)
        elif plan.create:
            # Create first, archive once every create of the customer succeeded: a
            # refused create never leaves the customer with fewer active configurations.
            self.flight.writing[customer_id] = len(plan.create)
            if plan.archive:
                self.flight.then_archive[customer_id] = plan
            if not self.flight.pending:
                self.flight.pending_since = time.monotonic()
            self.flight.pending.extend(plan.create)
            self._send_batches()
        elif plan.archive:
            self.flight.archives.append(self.pool.submit(self._archive, plan))
        else:
            self._customer_done(customer_id)

    # -- writes ------------------------------------------------------------------------------

    def _send_batches(self, *, force: bool = False) -> None:
        """Send every full batch of creates (and a short one that waited long enough, or ``force``)."""
        size = self.options.batch_size
        flight = self.flight
        # A short batch goes out once its oldest row has waited a while: its customers
        # stay locked until it is answered, and another sync may be waiting for them.
        stale = bool(flight.pending) and time.monotonic() - flight.pending_since > _PENDING_MAX_SECONDS
        while len(flight.pending) >= size or ((force or stale) and flight.pending):
            batch = flight.pending[:size]
            del flight.pending[:size]
            self.locks.verify()
            # The writer gets its own copy of its customers' basis: the pool thread that
            # runs it shares nothing with this one.
            basis = {c: set(flight.basis.get(c, ())) for c in {r.customer_id for r in batch}}
            flight.writes.append(self.pool.submit(BatchWriter(self.api, basis).create, batch))
            # Bound the writes in flight: each holds a pool thread.
            while len(flight.writes) > self.options.max_concurrency:
                self._book_write(flight.writes.popleft().result())

    def _archive(self, plan: CustomerPlan) -> CustomerPlan:
        """In a worker: archive the superseded configurations of one customer."""
        ids = sorted(c["id"] for c in plan.archive)
        key = idempotency_key("archiveCustomerBillingProviderConfigurations", [plan.customer_id, ids])
        self.api.archive_billing_provider_configurations(plan.customer_id, ids, idempotency_key=key)
        return plan

    def _book_answered_writes(self) -> None:
        """Book the writes and archives that are answered, oldest first."""
        while self.flight.creating and self.flight.creating[0].done():
            self._book_create(self.flight.creating.popleft().result())
        while self.flight.archives and self.flight.archives[0].done():
            self._book_archive(self.flight.archives.popleft().result())
        while self.flight.writes and self.flight.writes[0].done():
            self._book_write(self.flight.writes.popleft().result())

    def _book_write(self, result: tuple[CreatedRows, Rejected]) -> None:
        created, refused = result
        for row, where, reason in refused:
            self.outcomes.reject(row.facts(), row.key, where, reason, row.billing_provider, staged=True)
            self.flight.refused.add(row.customer_id)
        for row, config_id in created:
            self.outcomes.created(row, config_id)
        for row in [r for r, _ in created] + [r for r, _, _ in refused]:
            if self._create_answered(row.customer_id):
                self._all_creates_answered(row.customer_id)

    def _book_archive(self, plan: CustomerPlan) -> None:
        """Book an archive Metronome answered; the customer is done."""
        self.outcomes.archived(plan.customer_id, plan.archive)
        self._customer_done(plan.customer_id)

    def _create_answered(self, customer_id: str) -> bool:
        """One create of this customer was answered; return whether it was the last."""
        left = self.flight.writing[customer_id] - 1
        if left:
            self.flight.writing[customer_id] = left
            return False
        del self.flight.writing[customer_id]
        return True

    def _all_creates_answered(self, customer_id: str) -> None:
        """Every create of a customer is answered: archive what they supersede, or finish."""
        plan = self.flight.then_archive.pop(customer_id, None)
        refused = customer_id in self.flight.refused
        self.flight.refused.discard(customer_id)
        if plan is None:
            self._customer_done(customer_id)
        elif refused:
            self.log.warning(
                "Kept the %d configuration(s) of customer %s that replace mode would archive: "
                "Metronome refused their replacement (see the rejected rows)", len(plan.archive), customer_id,
            )  # fmt: skip
            self._customer_done(customer_id)
        else:
            self.flight.archives.append(self.pool.submit(self._archive, plan))

    # -- new customers (create_missing_customers) ---------------------------------------------

    def _start_create(self, new: NewCustomer) -> None:
        """Create a customer its rows name by an alias no customer holds (see :mod:`.customers`)."""
        disagreement = new.disagreement()
        if disagreement is not None:
            field_name, reason = disagreement
            for r in new.rows:
                self.outcomes.reject(r.facts(), r.key, field_name, reason, r.billing_provider, staged=True)
            return
        if self.options.dry_run:
            self.outcomes.customer_created(None, new.ingest_alias, new.request())
            for r in new.rows:
                self.outcomes.created(r, None)
            return
        # No lock: the customer and its configurations are created in one request, and
        # Metronome's alias uniqueness keeps the customer single.
        read_back = self.outcomes.spool is not None  # the results table records the ids
        self.flight.creating.append(self.pool.submit(create_customer, self.api, new, read_back=read_back))
        self._book_answered_writes()

    def _book_create(self, outcome: Outcome) -> None:
        if isinstance(outcome, Refused):
            for r in outcome.rows:
                self.outcomes.reject(
                    r.facts(), r.key, outcome.field, outcome.reason, r.billing_provider, staged=True
                )
        elif isinstance(outcome, Created):
            if self.report.customers == 1:
                self.report.only_customer_id = outcome.customer_id  # the task's link opens it
            first = outcome.rows[0]
            self.outcomes.customer_created(
                outcome.customer_id, first.ingest_alias or "",
                NewCustomer(first.ingest_alias or "", outcome.rows).request(),
            )  # fmt: skip
            ids = {}
            if outcome.configurations is not None:
                plan = plan_customer(
                    outcome.customer_id, outcome.rows, outcome.configurations, "create_missing"
                )
                ids = {id(row): config_id for row, config_id in plan.unchanged}
            for r in outcome.rows:
                self.outcomes.created(r, ids.get(id(r)))
        else:
            self._sync_existing(outcome)

    def _sync_existing(self, found: Exists) -> None:
        """The customer to create exists: sync its rows like any other customer's, once this
        pass's locks are released (rows of this sync may name the customer otherwise too)."""
        self.flight.later.setdefault(found.customer_id, []).extend(found.rows)

    # -- locks -------------------------------------------------------------------------------

    def _customer_done(self, customer_id: str) -> None:
        """Nothing more will be written for this customer: its lock goes with the next release."""
        self.flight.basis.pop(customer_id, None)
        self.flight.finished.append(customer_id)

    def _release_finished(self) -> None:
        if self.flight.finished:
            self.locks.release(self.flight.finished)
            self.flight.finished = []
