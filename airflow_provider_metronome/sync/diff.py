"""The diff: given a customer's desired rows and its configurations in Metronome, what to do.

Identity of a configuration: customer, billing provider, delivery method
and the configuration keys the row gives. A row matches an active configuration when
all of those agree (keys the row does not give are Metronome's business, e.g. defaults
it filled in), and the tax provider agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_metronome.sync.staging import StagedRow

CREATE_MISSING = "create_missing"
REPLACE = "replace"
MODES = (CREATE_MISSING, REPLACE)


def matches(row: StagedRow, config: dict[str, Any]) -> bool:
    """Whether an existing configuration satisfies a desired row.

    :param row: the desired row.
    :param config: a configuration from ``getCustomerBillingProviderConfigurations``.
    """
    if config.get("archived_at"):
        return False
    if config.get("billing_provider") != row.billing_provider:
        return False
    if config.get("delivery_method_id") != row.delivery_method_id:
        return False
    if config.get("tax_provider") != row.tax_provider:
        return False
    existing = config.get("configuration") or {}
    return all(existing.get(k) == v for k, v in row.configuration.items())


@dataclass
class CustomerPlan:
    """What to do for one customer.

    :param customer_id: the customer.
    :param create: rows to create.
    :param unchanged: rows already satisfied, with the id of the configuration that does.
    :param archive: configurations to archive (``replace`` mode).
    """

    customer_id: str
    create: list[StagedRow] = field(default_factory=list)
    unchanged: list[tuple[StagedRow, str]] = field(default_factory=list)
    archive: list[dict[str, Any]] = field(default_factory=list)


def plan_customer(
    customer_id: str, rows: list[StagedRow], existing: list[dict[str, Any]], mode: str
) -> CustomerPlan:
    """Diff one customer's desired rows against its configurations.

    :param customer_id: the customer.
    :param rows: its desired rows (one per identity; duplicates and conflicts removed).
    :param existing: its configurations in Metronome (archived ones are ignored).
    :param mode: ``create_missing`` or ``replace``.
    """
    plan = CustomerPlan(customer_id)
    active = [c for c in existing if not c.get("archived_at")]
    kept: set[str] = set()
    for row in rows:
        # Rows here have distinct identities, so no two can claim the same configuration.
        match = next((c for c in active if matches(row, c)), None)
        if match is not None:
            kept.add(match["id"])
            plan.unchanged.append((row, match["id"]))
        else:
            plan.create.append(row)
    if mode == REPLACE:
        providers = {row.billing_provider for row in rows}
        plan.archive = [c for c in active if c["billing_provider"] in providers and c["id"] not in kept]
    return plan
