"""Create configurations in batches, safely.

* Each batch carries a deterministic Idempotency-Key derived from its payload and the
  state it was planned against (the ids of every configuration, archived included, of
  its customers), so a retried request is replayed, never applied twice, while a
  re-run against a changed state gets a new key.
* After a 5xx the client asks :meth:`BatchWriter._verify`, which re-reads the batch's
  customers: rows already created are taken as done and only the rest is re-sent
  (with a new key).
* A batch the API refuses (400/404) is split in halves until the bad rows stand
  alone; they are rejected with the API's message and the good rows are created.
* A 409 is never split: for a keyed write it means the key is still in use by a
  request Metronome has not finished (https://docs.metronome.com/api-reference/idempotency.md),
  whose outcome is unknown; re-sending its rows under new keys could create them
  twice. It is raised, and the task's retry re-reads what was created.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client.idempotency import idempotency_key
from airflow_provider_metronome.exceptions import MetronomeBadRequestError, MetronomeNotFoundError
from airflow_provider_metronome.sync.diff import matches
from airflow_provider_metronome.sync.staging import StagedRow

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_metronome.client.api import MetronomeApi

OPERATION = "setCustomerBillingProviderConfigurations"
_API_FIELD = re.compile(r"^data\[\d+\]\.?([\w.]*):\s*(.*)$", re.DOTALL)

Created = list[tuple[StagedRow, str]]
Rejected = list[tuple[StagedRow, str, str]]


class _PartiallyApplied(Exception):
    def __init__(self, found: dict[int, str]) -> None:
        super().__init__(f"{len(found)} of the batch were created")
        self.found = found


def api_field(message: str) -> tuple[str, str]:
    """Split an API message like ``data[0].configuration.x: reason`` into ``(field, reason)``."""
    match = _API_FIELD.match(message)
    if match:
        return match.group(1) or "row", match.group(2)
    return "metronome", message


class BatchWriter:
    """Creates one batch of rows; see the module docstring.

    :param api: the Metronome API.
    :param basis: customer id → ids of all its configurations when the plan was made.
    """

    def __init__(self, api: MetronomeApi, basis: dict[str, set[str]]) -> None:
        self.api = api
        self.basis = basis

    def create(self, rows: list[StagedRow]) -> tuple[Created, Rejected]:
        """Create ``rows``; return what was created (row, configuration id) and what was refused."""
        created: Created = []
        rejected: Rejected = []
        self._create(rows, created, rejected)
        return created, rejected

    def _key(self, rows: list[StagedRow], payload: list[dict[str, Any]]) -> str:
        customers = sorted({r.customer_id for r in rows})
        basis = {c: sorted(self.basis.get(c, ())) for c in customers}
        return idempotency_key(OPERATION, {"items": payload, "basis": basis})

    def _verify(self, rows: list[StagedRow]) -> Callable[[], list[dict[str, Any]] | None]:
        def verify() -> list[dict[str, Any]] | None:
            found: dict[int, str] = {}
            by_customer: dict[str, list[dict[str, Any]]] = {}
            for i, row in enumerate(rows):
                if row.customer_id not in by_customer:
                    by_customer[row.customer_id] = self.api.get_billing_provider_configurations(
                        row.customer_id
                    )
                before = self.basis.get(row.customer_id, set())
                for config in by_customer[row.customer_id]:
                    if config["id"] not in before and matches(row, config):
                        found[i] = config["id"]
                        break
            if len(found) == len(rows):
                return [{"id": found[i]} for i in range(len(rows))]
            if found:
                raise _PartiallyApplied(found)
            return None

        return verify

    def _create(self, rows: list[StagedRow], created: Created, rejected: Rejected) -> None:
        payload = [r.payload() for r in rows]
        try:
            result = self.api.set_billing_provider_configurations(
                payload, idempotency_key=self._key(rows, payload), verify=self._verify(rows)
            )
        except _PartiallyApplied as partial:
            created.extend((rows[i], cid) for i, cid in partial.found.items())
            for i, cid in partial.found.items():
                self.basis.setdefault(rows[i].customer_id, set()).add(cid)
            rest = [r for i, r in enumerate(rows) if i not in partial.found]
            self._create(rest, created, rejected)
            return
        except (MetronomeBadRequestError, MetronomeNotFoundError) as err:
            if len(rows) == 1:
                field, reason = api_field(err.api_message)
                rejected.append((rows[0], field, f"Metronome refused it: {reason}"))
                return
            middle = len(rows) // 2
            self._create(rows[:middle], created, rejected)
            self._create(rows[middle:], created, rejected)
            return
        created.extend((row, str(item["id"])) for row, item in zip(rows, result, strict=True))
