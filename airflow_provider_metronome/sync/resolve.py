"""Resolve what rows name indirectly: ingest aliases to customers, delivery methods to ids."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from concurrent.futures import Future


class AliasResolver:
    """Ingest alias → customer id, looked up with ``GET /v1/customers?ingest_alias=``.

    Results (misses included) are kept in a bounded LRU cache so memory stays flat.

    :param lookup: starts one lookup (``find_customer_by_ingest_alias`` in a thread
        pool) and returns its future.
    :param cache_size: entries kept.
    """

    def __init__(
        self, lookup: Callable[[str], Future[dict[str, Any] | None]], *, cache_size: int = 200_000
    ) -> None:
        self.lookup = lookup
        self.cache_size = cache_size
        self._cache: OrderedDict[str, str | None] = OrderedDict()
        self.lookups = 0

    def resolve_many(self, aliases: Iterable[str]) -> dict[str, str | None]:
        """Resolve every alias (unknown ones map to ``None``), looking up the uncached ones at once.

        :param aliases: aliases to resolve.
        """
        result: dict[str, str | None] = {}
        started: dict[str, Future[dict[str, Any] | None]] = {}
        for alias in set(aliases):
            if alias in self._cache:
                self._cache.move_to_end(alias)
                result[alias] = self._cache[alias]
            else:
                started[alias] = self.lookup(alias)
        self.lookups += len(started)
        for alias, future in started.items():
            customer = future.result()
            result[alias] = None if customer is None else str(customer["id"])
            self._cache[alias] = result[alias]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result


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
