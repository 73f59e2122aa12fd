"""Resolve what rows name indirectly: ingest aliases to customers, delivery methods to ids."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterable, Iterator
    from concurrent.futures import Future

    from airflow_provider_metronome.client.types import Customer

# GET /v1/customers pages hold at most 100 customers
# (https://docs.metronome.com/api-reference/pagination.md).
PAGE_SIZE = 100
# Fewer aliases than this are looked up one by one: a listing costs at least one page.
LIST_AT_LEAST = 10
# Aliases looked up per step (their futures are waited on together).
_LOOKUP_STEP = 2000


class DeliveryMethods:
    """The account's configured delivery methods, from ``listConfiguredBillingProviders``.

    :param items: every delivery method (all pages).
    """

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.by_id = {d["delivery_method_id"]: d for d in items}
        self.by_provider_method: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for d in items:
            self.by_provider_method.setdefault((d["billing_provider"], d["delivery_method"]), []).append(d)

    def resolve(
        self, billing_provider: str, delivery_method: str | None, delivery_method_id: str | None
    ) -> tuple[dict[str, Any] | None, str, str]:
        """Find the delivery method a row means.

        :return: ``(delivery method or None, field, reason)``; reason is empty on success.
        """
        if delivery_method_id is not None:
            found = self.by_id.get(delivery_method_id)
            if found is None:
                return (
                    None,
                    "delivery_method_id",
                    (
                        f"{delivery_method_id} is not a delivery method of this Metronome account "
                        "(see listConfiguredBillingProviders)"
                    ),
                )
            if found["billing_provider"] != billing_provider:
                return (
                    None,
                    "delivery_method_id",
                    (
                        f"{delivery_method_id} is a {found['billing_provider']} delivery method, "
                        f"not {billing_provider}"
                    ),
                )
            if delivery_method is not None and found["delivery_method"] != delivery_method:
                return (
                    None,
                    "delivery_method",
                    (
                        f"delivery_method {delivery_method} disagrees with delivery_method_id "
                        f"{delivery_method_id}, which is a {found['delivery_method']} delivery method; "
                        "give one of them, or both matching"
                    ),
                )
            return found, "", ""
        assert delivery_method is not None
        candidates = self.by_provider_method.get((billing_provider, delivery_method), [])
        if not candidates:
            configured = sorted({m for (p, m) in self.by_provider_method if p == billing_provider})
            hint = f" (configured: {', '.join(configured)})" if configured else " (none is set up for it)"
            return (
                None,
                "delivery_method",
                (f"no {delivery_method} delivery method is configured for {billing_provider}{hint}"),
            )
        if len(candidates) > 1:
            ids = ", ".join(c["delivery_method_id"] for c in candidates)
            return (
                None,
                "delivery_method",
                (
                    f"{len(candidates)} {delivery_method} delivery methods are configured "
                    f"for {billing_provider} "
                    f"({ids}); give delivery_method_id to choose one"
                ),
            )
        return candidates[0], "", ""


@dataclass
class AliasBookStats:
    """How a run's aliases were resolved.

    :param aliases: distinct aliases the run needed.
    :param pages: ``GET /v1/customers`` pages listed.
    :param lookups: aliases looked up one by one (``GET /v1/customers?ingest_alias=``).
    :param listed_all: the listing reached its end (what it did not find matches nothing).
    """

    aliases: int = 0
    pages: int = 0
    lookups: int = 0
    listed_all: bool = False

    def describe(self) -> str:
        if not self.aliases:
            return "no alias to resolve"
        how = []
        if self.pages:
            how.append(f"{self.pages} customer page(s) listed{' (all)' if self.listed_all else ''}")
        if self.lookups:
            how.append(f"{self.lookups} looked up one by one")
        return f"{self.aliases} distinct alias(es): {', '.join(how) or 'all known'}"


class AliasBook:
    """Every ingest alias a run needs, resolved at once, the cheaper way (bulk or one by one).

    The aliases wait in a table of the staging database (memory stays flat), so the
    choice is made per run, knowing how many there are: ``GET /v1/customers`` lists 100
    customers a page with their aliases, so when a run needs more aliases than the
    account has pages, listing once costs far fewer calls than a lookup each. The
    account's size is not known beforehand, so the listing goes on while the pages
    listed are fewer than the aliases still unresolved, then looks those up: at most
    twice the calls of the cheaper way, and exactly the listing for an account smaller
    than the run's aliases (also when most of them match no customer). Only active
    customers are listed, as a lookup finds only active ones, so both give the same
    answers (an alias held by an archived customer, or by none, resolves to nothing).

    :param db: the staging database (a table ``alias_book`` is added to it).
    :param list_customers: yields every active customer (``MetronomeApi.iter_customers``).
    :param lookup: starts one lookup by alias and returns its future.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        list_customers: Callable[[], Iterator[Customer]],
        lookup: Callable[[str], Future[dict[str, Any] | None]],
    ) -> None:
        self.db = db
        self.list_customers = list_customers
        self.lookup = lookup
        self.stats = AliasBookStats()
        db.execute(
            "CREATE TABLE IF NOT EXISTS alias_book "
            "(alias TEXT PRIMARY KEY, customer_id TEXT, resolved INTEGER NOT NULL DEFAULT 0)"
        )

    def want(self, aliases: Iterable[str]) -> None:
        """Note aliases the run needs."""
        self.db.executemany("INSERT OR IGNORE INTO alias_book (alias) VALUES (?)", ((a,) for a in aliases))

    def _unresolved(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM alias_book WHERE resolved = 0").fetchone()[0])

    def resolve(self) -> AliasBookStats:
        """Resolve every alias wanted so far."""
        wanted = self._unresolved()
        self.stats.aliases += wanted
        if wanted >= LIST_AT_LEAST:
            self._list(wanted)
        self._look_up_the_rest()
        return self.stats

    def _list(self, wanted: int) -> None:
        """List customers until every alias is found, the list ends, or lookups get cheaper."""
        remaining = wanted
        pages = 0
        customers = self.list_customers()
        while True:
            page = list(islice(customers, PAGE_SIZE))
            if page:
                pages += 1
            found = self._mark(page)
            remaining -= found
            if len(page) < PAGE_SIZE:  # the last page: what is still unresolved matches nothing
                self.db.execute("UPDATE alias_book SET resolved = 1 WHERE resolved = 0")
                self.stats.listed_all = True
                break
            # Stop once the pages listed cost as many calls as looking the rest up would.
            # The account's size is unknown (the listing has no total), and the share of
            # wanted aliases found per page says nothing when many match no customer (a
            # migration), so no estimate: this rule never costs more than twice the
            # cheaper way, and lists small accounts to the end.
            if remaining <= 0 or pages >= remaining:
                break
        self.stats.pages += pages
        close = getattr(customers, "close", None)
        if close is not None:
            close()

    def _mark(self, customers: list[Customer]) -> int:
        """Record the wanted aliases these customers hold; return how many were found."""
        holders = {alias: str(c["id"]) for c in customers for alias in c.get("ingest_aliases") or ()}
        if not holders:
            return 0
        before = self.db.total_changes
        self.db.executemany(
            "UPDATE alias_book SET customer_id = ?, resolved = 1 WHERE alias = ? AND resolved = 0",
            ((customer_id, alias) for alias, customer_id in holders.items()),
        )
        return self.db.total_changes - before

    def _look_up_the_rest(self) -> None:
        while True:
            batch = [a for (a,) in self.db.execute(
                "SELECT alias FROM alias_book WHERE resolved = 0 LIMIT ?", (_LOOKUP_STEP,)
            )]  # fmt: skip
            if not batch:
                return
            started = [(alias, self.lookup(alias)) for alias in batch]
            self.stats.lookups += len(started)
            answers = []
            for alias, future in started:
                customer = future.result()
                answers.append((None if customer is None else str(customer["id"]), alias))
            self.db.executemany(
                "UPDATE alias_book SET customer_id = ?, resolved = 1 WHERE alias = ?", answers
            )

    def resolved(self, aliases: Iterable[str]) -> dict[str, str | None]:
        """The customer each alias resolved to (``None``: none), for aliases already resolved."""
        wanted = list(set(aliases))
        found: dict[str, str | None] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ", ".join("?" * len(part))
            for alias, customer_id in self.db.execute(
                f"SELECT alias, customer_id FROM alias_book WHERE alias IN ({marks})", part
            ):
                found[alias] = customer_id
        return found
