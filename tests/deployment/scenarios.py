"""Warehouse rows for the deployment scenarios, and the exact-state check against the emulator."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from scripts import demo_data

if TYPE_CHECKING:
    from tests.deployment.harness import Emulator

# customer, billing provider, delivery method id, configuration (canonical JSON)
Key = tuple[str, str, str, str]


def seed(customers: int) -> dict[str, Any]:
    """The emulator seed matching :func:`rows_over_days` (customers and delivery methods)."""
    return demo_data.build(customers, with_bad_rows=False).seed


def rows_over_days(customers: int, days: list[date], *, repeated: int = 0) -> list[dict[str, Any]]:
    """One good row per customer, ``updated_at`` spread over ``days`` (UTC).

    Customer ``i`` is updated on ``days[i % len(days)]``; the first ``repeated`` customers'
    rows appear again, identical, on the next day (the same row synced by two runs).
    """
    out = []
    for i in range(customers):
        k = i % len(days)
        out.append(demo_data.to_warehouse(demo_data.desired_row(i), _stamp(days[k], i)))
        if i < repeated:
            again = days[(k + 1) % len(days)]
            out.append(demo_data.to_warehouse(demo_data.desired_row(i), _stamp(again, i + 1)))
    return out


def _stamp(day: date, i: int) -> datetime:
    # Inside the day, away from midnight (data interval boundaries).
    return datetime(day.year, day.month, day.day, 1, tzinfo=UTC) + timedelta(seconds=37 * i % 79_000)


def day_range(first: str, count: int) -> list[date]:
    start = date.fromisoformat(first)
    return [start + timedelta(days=n) for n in range(count)]


def _canonical(config: Any) -> str:
    value = json.loads(config) if isinstance(config, str) else config
    return json.dumps(value, sort_keys=True)


def desired(rows: list[dict[str, Any]]) -> dict[Key, str | None]:
    """The configurations the rows ask for, with their tax provider."""
    methods = {
        (d["billing_provider"], d["delivery_method"]): d["delivery_method_id"]
        for d in demo_data.DELIVERY_METHODS
    }
    out: dict[Key, str | None] = {}
    for r in rows:
        customer = str(
            r.get("customer_id") or demo_data.customer_id(int(r["ingest_alias"].removeprefix("acct-")))
        )
        dm = str(r.get("delivery_method_id") or methods[(r["billing_provider"], r["delivery_method"])])
        out[(customer, r["billing_provider"], dm, _canonical(r["configuration"]))] = r.get("tax_provider")
    return out


@dataclass
class StateReport:
    """How the emulator's active configurations compare with the desired ones."""

    desired: int
    active: int
    duplicates: dict[Key, int] = field(default_factory=dict)  # key -> active count (> 1)
    missing: list[Key] = field(default_factory=list)
    unexpected: list[Key] = field(default_factory=list)
    wrong_tax: list[Key] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.duplicates or self.missing or self.unexpected or self.wrong_tax)

    def describe(self) -> str:
        extra = sum(n - 1 for n in self.duplicates.values())
        lines = [
            f"desired configurations: {self.desired}, active in Metronome: {self.active}",
            f"DUPLICATES: {len(self.duplicates)} customer+provider+delivery method+configuration keys are "
            f"active more than once ({extra} duplicate configurations; max {max(self.duplicates.values(), default=0)} "
            "copies of one key)",
            f"MISSING: {len(self.missing)}",
            f"UNEXPECTED (active but not desired): {len(self.unexpected)}",
            f"WRONG tax_provider: {len(self.wrong_tax)}",
        ]
        for title, keys in (
            ("duplicated", list(self.duplicates)),
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("wrong tax_provider", self.wrong_tax),
        ):
            for key in keys[:5]:
                count = f" x{self.duplicates[key]}" if title == "duplicated" else ""
                lines.append(f"  e.g. {title}{count}: {key}")
        return "\n".join(lines)


def compare(emulator: Emulator, rows: list[dict[str, Any]]) -> StateReport:
    """Compare the emulator's active billing provider configurations with what ``rows`` ask for."""
    want = desired(rows)
    active = [c for c in emulator.admin("state")["billing_provider_configurations"] if not c["archived_at"]]
    counts: Counter[Key] = Counter()
    tax: dict[Key, str | None] = {}
    for c in active:
        key = (
            c["customer_id"],
            c["billing_provider"],
            c["delivery_method_id"],
            _canonical(c["configuration"]),
        )
        counts[key] += 1
        tax[key] = c.get("tax_provider")
    return StateReport(
        desired=len(want),
        active=len(active),
        duplicates={k: n for k, n in sorted(counts.items()) if n > 1},
        missing=sorted(k for k in want if k not in counts),
        unexpected=sorted(k for k in counts if k not in want),
        wrong_tax=sorted(k for k in want if k in tax and tax[k] != want[k]),
    )
