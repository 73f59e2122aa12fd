"""SetBillingProviderConfigOperator: make Metronome's billing configurations follow a table."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_metronome.hooks.metronome import MetronomeHook
from airflow_provider_metronome.operators.base import MetronomeBaseOperator
from airflow_provider_metronome.operators.results import TaskResults, summary_fields

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_metronome.models.report import Rejection, SyncReport
    from airflow_provider_metronome.sync import SyncOptions
    from airflow_provider_metronome.sync.locks import CustomerLocks


class SetBillingProviderConfigOperator(MetronomeBaseOperator):
    """Sync Metronome billing provider configurations from rows.

    Rows follow the warehouse row contract (``customer_id`` or ``ingest_alias``,
    ``billing_provider``, ``configuration``, ``delivery_method`` or
    ``delivery_method_id``, optional ``tax_provider``) and come either from
    ``configurations`` or from ``sql`` run on any DB-API connection (streamed in
    chunks, so memory stays flat). The operator creates only what is missing, so
    re-runs, retries and overlapping backfills never duplicate
    (``POST /v1/setCustomerBillingProviderConfigurations``).

    Bad rows never sink good rows: every good row is synced, each rejected row is
    logged (and written to ``rejects_path``) with its row number, key, field and
    reason; then the task fails if more than ``max_rejected_rows`` were rejected.

    Returns a small JSON summary (counts, samples) as XCom.

    :param configurations: rows as a list of mappings. (templated)
    :param sql: a query returning rows, or a path to a ``.sql`` file. (templated)
    :param conn_id: the Airflow connection ``sql`` runs on (any ``DbApiHook``). (templated)
    :param parameters: parameters of ``sql``, in the driver's style. (templated)
    :param metronome_conn_id: the ``metronome`` connection. (templated)
    :param mode: ``create_missing`` (default) creates what is missing and touches
        nothing else; ``replace`` also archives, once the new ones are created, the
        other active configurations of each customer + billing provider in the rows
        (never when Metronome refused the new one). (templated)
    :param dry_run: plan only: log exactly what would be created or archived, change
        nothing: a bool or text (``true``/``false``, ``yes``/``no``, ``1``/``0``;
        empty or ``None`` is false). (templated)
    :param batch_size: configurations per create request.
    :param max_concurrency: Metronome requests in flight at once.
    :param fetch_size: rows fetched from the database per round trip.
    :param max_rejected_rows: rejected rows tolerated before the task fails (default 0).
    :param rejects_path: where to write rejected rows as JSON lines: a local path or
        any object-storage URL Airflow understands (``s3://…``, ``gs://…``). (templated)
    :param partition: with ``partitions`` > 1, which share of the customers this task
        syncs (0-based). Shares are decided by the resolved customer, so all rows of a
        customer land in one task however they name it. Rows that give a
        ``customer_id`` are split in SQL on PostgreSQL, SQLite, MySQL, Snowflake and
        BigQuery; rows keyed by ``ingest_alias`` are read by every task and kept by
        the one that owns their customer once resolved.
    :param partitions: how many shares the customers are split into (default 1: all).
    :param lock_conn_id: a PostgreSQL connection whose advisory locks keep concurrent
        syncs of the same customers apart across machines (Celery, Kubernetes).
        Default: lock files shared by every task on this machine. (templated)
    :param lock_timeout: seconds to wait for customers another sync is writing
        before rejecting their rows (default 900).
    :param results_table: a table of ``results_conn_id`` where every row's outcome is
        recorded (created if missing, with a view ``<table>_latest``; README, "The
        results table"): rows whose latest outcome was created/unchanged with the same
        content then cost no Metronome call. ``None`` or empty: no table. (templated)
    :param results_conn_id: the SQL connection of ``results_table`` (default: ``conn_id``).
        (templated)
    :param verify: with a results table, still read every customer from Metronome and
        repair what was archived or changed outside the sync (a bool or text, as
        ``dry_run``). (templated)
    :param create_missing_customers: a row whose ``ingest_alias`` matches no active
        customer creates one (``customer_name``, every alias, ``custom_fields`` and the
        rows' configurations in one request; README, "Migrations") instead of being
        rejected (a bool or text, as ``dry_run``). (templated)
    """

    template_fields: Sequence[str] = (
        "configurations",
        "sql",
        "conn_id",
        "parameters",
        "metronome_conn_id",
        "mode",
        "dry_run",
        "rejects_path",
        "lock_conn_id",
        "results_table",
        "results_conn_id",
        "verify",
        "create_missing_customers",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "configurations": "json", "parameters": "json"}
    ui_color = "#e8f0fe"
    # The template field ``dry_run`` is stored under its argument's name, so on this
    # operator it shadows BaseOperator.dry_run(), which only logs the rendered template
    # fields: Airflow 3 never calls it; Airflow 2's ``airflow tasks test --dry-run``
    # does, and cannot be used with this operator.
    dry_run: bool | str  # type: ignore[assignment]

    def __init__(
        self,
        *,
        configurations: list[Mapping[str, Any]] | str | None = None,
        sql: str | None = None,
        conn_id: str | None = None,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        metronome_conn_id: str = MetronomeHook.default_conn_name,
        mode: str = "create_missing",
        dry_run: bool | str = False,
        batch_size: int = 100,
        max_concurrency: int = 48,
        fetch_size: int = 2000,
        max_rejected_rows: int = 0,
        rejects_path: str | None = None,
        partition: int | None = None,
        partitions: int = 1,
        lock_conn_id: str | None = None,
        lock_timeout: float = 900.0,
        results_table: str | None = None,
        results_conn_id: str | None = None,
        verify: bool | str = False,
        create_missing_customers: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(metronome_conn_id=metronome_conn_id, **kwargs)
        # Only whether each was given: their values are templates until execute().
        if (configurations is None) == (sql is None):
            raise ValueError(f"{self.task_id}: give exactly one of configurations and sql")
        if sql is not None and conn_id is None:
            raise ValueError(f"{self.task_id}: sql needs conn_id (the warehouse connection)")
        for name, value in (
            ("batch_size", batch_size),
            ("max_concurrency", max_concurrency),
            ("fetch_size", fetch_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{self.task_id}: {name} must be a positive integer, got {value!r}")
        if not isinstance(partitions, int) or partitions < 1:
            raise ValueError(f"{self.task_id}: partitions must be a positive integer, got {partitions!r}")
        if partition is not None and not (isinstance(partition, int) and 0 <= partition < partitions):
            raise ValueError(f"{self.task_id}: partition must be in 0..{partitions - 1}, got {partition!r}")
        if not isinstance(max_rejected_rows, int) or max_rejected_rows < 0:
            raise ValueError(f"{self.task_id}: max_rejected_rows must be >= 0, got {max_rejected_rows!r}")
        self.configurations = configurations
        self.sql = sql
        self.conn_id = conn_id
        self.parameters = parameters
        self.mode = mode
        self.dry_run = dry_run
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.fetch_size = fetch_size
        self.max_rejected_rows = max_rejected_rows
        self.rejects_path = rejects_path
        self.partition = partition
        self.partitions = partitions
        self.lock_conn_id = lock_conn_id
        self.lock_timeout = lock_timeout
        self.results_table = results_table
        self.results_conn_id = results_conn_id
        self.verify = verify
        self.create_missing_customers = create_missing_customers
        # Set while reading: whether SQL already kept only this partition's customer_id rows.
        self._prefiltered = False

    # -- sources ------------------------------------------------------------------------

    def _rows(self, stack: ExitStack) -> Iterable[Mapping[str, Any]]:
        if self.sql is not None:
            return self._query_rows(stack)
        rows = self.configurations
        if isinstance(rows, str):
            try:
                rows = json.loads(rows)
            except ValueError as err:
                raise AirflowFailException(f"configurations is text but not JSON: {err}") from None
        if isinstance(rows, Mapping):
            rows = [rows]
        if not isinstance(rows, (list, tuple)):
            raise AirflowFailException(f"configurations must be a list of rows, got {type(rows).__name__}")
        return rows

    def _query_rows(self, stack: ExitStack) -> Iterator[Mapping[str, Any]]:
        from airflow_provider_metronome.operators.sql_source import open_sql_source, sql_rows
        from airflow_provider_metronome.sync.sources import partition_sql, register_sqlite_functions

        conn_id = str(self.conn_id)
        hook, connection = open_sql_source(conn_id)
        stack.callback(connection.close)
        sql = str(self.sql)
        if self.partitions > 1 and self.partition is not None:
            register_sqlite_functions(connection)
            dialect = str(getattr(hook, "dialect_name", "") or hook.conn_type or "")
            wrapped = partition_sql(sql, dialect, self.partition, self.partitions)
            if wrapped is None:
                self.log.warning(
                    "No SQL partitioning for dialect %r: every partition reads all rows and keeps its share",
                    dialect,
                )
            else:
                sql = wrapped
                self._prefiltered = True
        self.log.info("Reading rows from connection %r, %d per fetch", conn_id, self.fetch_size)
        return sql_rows(connection, sql, self.parameters, conn_id=conn_id, fetch_size=self.fetch_size)

    # -- rejects file ------------------------------------------------------------------------

    def _rejects_writer(self, stack: ExitStack) -> Any:
        if not self.rejects_path:
            return None
        path = str(self.rejects_path)
        if "://" in path:
            from airflow.providers.common.compat.sdk import ObjectStoragePath

            handle = stack.enter_context(ObjectStoragePath(path).open("w"))
        else:
            handle = stack.enter_context(open(path, "w", encoding="utf-8"))  # noqa: SIM115

        def write(rejection: Rejection) -> None:
            handle.write(json.dumps(rejection.model_dump(), ensure_ascii=False) + "\n")

        return write

    # -- run -----------------------------------------------------------------------------------

    @property
    def http_connections(self) -> int:
        """One HTTP connection per request in flight (at least 8)."""
        return max(self.max_concurrency, 8)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_metronome.sync import BillingConfigSync

        with self.failing_fast():
            options = self._options()
            with ExitStack() as stack:
                # Stored first, so a task that fails still links to the customers page.
                self.persist_link(context)
                locks = self._locks()
                if locks is not None:
                    stack.callback(locks.close)  # also when reading the source fails
                results = self._results(context)
                if results is not None:
                    stack.callback(results.close)
                engine = BillingConfigSync(
                    self.hook.client,
                    options,
                    on_reject=self._rejects_writer(stack),
                    logger=self.log,  # type: ignore[arg-type]
                    locks=locks,
                    ledger=None if results is None else results.table,
                    spool=None if results is None else results.spool,
                )
                rows = self._rows(stack)
                options.prefiltered = self._prefiltered
                try:
                    report = engine.run(rows)
                except BaseException:
                    if results is not None:
                        results.write(after_failure=True)  # what Metronome answered stays true
                    raise
                try:
                    if results is not None:
                        results.write()
                except AirflowFailException:
                    # The task fails after Metronome's writes: keep its summary where a
                    # successful run's is.
                    failed = {**report.summary(), **summary_fields(results)}
                    context["ti"].xcom_push(key="return_value", value=failed)
                    raise
        summary = {**report.summary(), **summary_fields(results)}
        self.persist_link(context, report.only_customer_id)
        if report.rejected - report.held_elsewhere > self.max_rejected_rows or report.held_elsewhere:
            # The task is about to fail: keep its summary where a successful run's is.
            context["ti"].xcom_push(key="return_value", value=summary)
        self._check_tolerance(report)
        if report.held_elsewhere:
            # Not bad data: another sync held these customers. A retry syncs them.
            raise AirflowException(
                f"{report.held_elsewhere} row(s) not synced yet: another sync held their customers for more "
                f"than lock_timeout={self.lock_timeout:g}s; the task's retry syncs them"
            )
        return summary

    def _results(self, context: Context) -> TaskResults | None:
        """The results table of this task, ready before the source is read; ``None`` without one."""
        if not self.results_table or not str(self.results_table).strip():
            return None
        conn_id = self.results_conn_id or self.conn_id
        if not conn_id:
            raise AirflowFailException("results_table needs results_conn_id (or the source's conn_id)")
        return TaskResults(
            str(self.results_table).strip(),
            str(conn_id),
            str(context["run_id"]),
            self.partition if self.partitions > 1 and self.partition is not None else 0,
            self.log,  # type: ignore[arg-type]
        )

    def _options(self) -> SyncOptions:
        """The engine's options from the rendered arguments; nonsense fails the task without retries."""
        from airflow_provider_metronome.client.settings import parse_bool
        from airflow_provider_metronome.sync import SyncOptions

        if self.sql is not None and not self.conn_id:
            raise AirflowFailException("sql needs conn_id (the warehouse connection), which rendered empty")
        options = SyncOptions(
            mode=self.mode,
            dry_run=parse_bool(self.dry_run, name="dry_run", empty=False),
            batch_size=self.batch_size,
            max_concurrency=self.max_concurrency,
            chunk_size=self.fetch_size,
            partition=self.partition if self.partitions > 1 else None,
            partitions=self.partitions,
            lock_timeout=float(self.lock_timeout),
            verify=parse_bool(self.verify, name="verify", empty=False),
            create_missing_customers=parse_bool(
                self.create_missing_customers, name="create_missing_customers", empty=False
            ),
        )
        try:
            options.check()
        except ValueError as err:
            raise AirflowFailException(str(err)) from None
        return options

    def _locks(self) -> CustomerLocks | None:
        """PostgreSQL advisory locks on ``lock_conn_id``; ``None`` lets the engine use lock files."""
        if not self.lock_conn_id:
            return None
        from airflow.providers.common.compat.sdk import BaseHook

        from airflow_provider_metronome.sync.locks import PostgresCustomerLocks

        lock_hook = BaseHook.get_connection(str(self.lock_conn_id)).get_hook()
        connection = lock_hook.get_conn()
        if type(connection).__module__.split(".")[0] not in ("psycopg2", "psycopg"):
            connection.close()
            raise AirflowFailException(
                f"lock_conn_id {self.lock_conn_id!r} must be a PostgreSQL connection (advisory locks)"
            )
        return PostgresCustomerLocks(connection, f"PostgreSQL advisory locks on {self.lock_conn_id!r}")

    def _check_tolerance(self, report: SyncReport) -> None:
        """Fail, without retries, when more rows than tolerated were rejected for their data."""
        if report.rejected - report.held_elsewhere <= self.max_rejected_rows:
            return
        lines = [r.describe() for r in sorted(report.rejections, key=lambda r: r.row)[:10]]
        more = report.rejected - len(lines)
        text = "\n  ".join(lines) + (f"\n  … and {more} more" if more > 0 else "")
        where = f" (all of them in {self.rejects_path})" if self.rejects_path else ""
        # A data problem: retrying the task cannot fix it, so fail without retries.
        raise AirflowFailException(
            f"{report.rejected} row(s) rejected, more than max_rejected_rows={self.max_rejected_rows}; "
            f"the {report.created + report.unchanged} good row(s) are synced{where}:\n  {text}"
        )
