"""The results table of one sync task: set up before the source is read, written once Metronome answered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

if TYPE_CHECKING:
    import logging

    from airflow_provider_metronome.sync.ledger import ResultsTable, Spool


class TaskResults:
    """A task's share of the results ledger (:mod:`~airflow_provider_metronome.sync.ledger`).

    :param table: the results table name.
    :param conn_id: the SQL connection it lives on (any common-sql ``DbApiHook``).
    :param run_id: the Airflow run id.
    :param partition: the map index (0 when not partitioned).
    :param log: the task's logger.
    """

    def __init__(self, table: str, conn_id: str, run_id: str, partition: int, log: logging.Logger) -> None:
        from airflow.providers.common.compat.sdk import BaseHook

        from airflow_provider_metronome.sync.ledger import ResultsTable, Spool

        hook = BaseHook.get_connection(conn_id).get_hook()
        if not hasattr(hook, "insert_rows"):
            raise AirflowFailException(
                f"results_conn_id {conn_id!r} is not a SQL connection (its hook has no insert_rows); "
                "the results table needs one, e.g. the warehouse connection"
            )
        try:
            self.table: ResultsTable = ResultsTable(hook, table)
        except ValueError as err:
            raise AirflowFailException(str(err)) from None
        self.conn_id = conn_id
        self.log = log
        # Before the source is read: its carry-over condition reads the table's view.
        self.table.ensure()
        self.spool: Spool = Spool(run_id, partition)
        self.written = 0

    def write(self, *, after_failure: bool = False) -> None:
        """Insert the run's outcomes; a failure fails the task (its Metronome writes are done).

        :param after_failure: the sync itself failed: write what it did, but let its own
            error be the task's (a failed insert is only logged).
        """
        if self.spool.count == 0:
            return
        try:
            self.written = self.table.append(self.spool.records())
        except Exception as err:
            message = (
                f"Metronome is up to date for this run, but its {self.spool.count} outcome(s) could not be "
                f"written to the results table {self.table.table!r} on {self.conn_id!r}: {err}. "
                "The next run reads those customers from Metronome again (extra API calls, no duplicate)"
            )
            if after_failure:
                self.log.error("%s", message)
                return
            # No retry: a retry would sync everything again only to try this insert; the
            # next run converges either way (it reads these customers from Metronome).
            raise AirflowFailException(message) from err
        self.log.info("Wrote %d outcome(s) to the results table %s", self.written, self.table.table)

    def close(self) -> None:
        self.table.close()
        self.spool.close()


def summary_fields(results: TaskResults | None) -> dict[str, Any]:
    """What the task's summary says of its results table."""
    if results is None:
        return {"results_table": None, "results_written": 0}
    return {"results_table": results.table.table, "results_written": results.written}
