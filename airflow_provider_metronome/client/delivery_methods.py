"""Choosing delivery methods: by id, or by a selector matched against every configured one.

Used to pick the delivery methods whose Avalara credentials are set
(``POST /v1/upsertAvalaraCredentials`` takes delivery method ids). The account's
delivery methods come from ``POST /v1/listConfiguredBillingProviders``
(:meth:`~.endpoints.MetronomeEndpoints.iter_configured_billing_providers`, every page).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.exceptions import MetronomeConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def parse_ids(value: Any) -> tuple[str, ...]:
    """Delivery method ids given as a list, a JSON list or comma-separated text; duplicates dropped.

    :param value: the ids (``None`` gives none).
    :raises MetronomeConfigError: not a list of ids.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as err:
                raise MetronomeConfigError(f"delivery_method_ids is not a valid JSON list: {err}") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise MetronomeConfigError(f"delivery_method_ids must be a list, got {type(value).__name__}")
    return tuple(dict.fromkeys(str(i) for i in value))


def _blank_to_none(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


@dataclass(frozen=True)
class DeliveryMethodSelection:
    """Which delivery methods to update: explicit ids, or a selector, or nothing.

    Build it with :meth:`parse`, which reads templated values (empty strings count as
    not given).

    :param ids: explicit delivery method ids (empty: none given).
    :param billing_provider: select every delivery method of this billing provider.
    :param delivery_method: select every delivery method of this kind.
    """

    ids: tuple[str, ...] = ()
    billing_provider: str | None = None
    delivery_method: str | None = None

    @classmethod
    def parse(
        cls, ids: Any = None, *, billing_provider: Any = None, delivery_method: Any = None
    ) -> DeliveryMethodSelection:
        """Read the arguments of a selection.

        :param ids: ids as a list, a JSON list or comma-separated text.
        :param billing_provider: a billing provider, or ``None``/``""``.
        :param delivery_method: a delivery method kind, or ``None``/``""``.
        :raises MetronomeConfigError: ids and a selector at once, or ids that are not a list.
        """
        selection = cls(parse_ids(ids), _blank_to_none(billing_provider), _blank_to_none(delivery_method))
        if selection.ids and selection.by_selector:
            raise MetronomeConfigError(
                "Give delivery_method_ids or a selector (billing_provider/delivery_method), not both"
            )
        return selection

    @property
    def by_selector(self) -> bool:
        """Whether a selector (billing provider and/or delivery method) was given."""
        return self.billing_provider is not None or self.delivery_method is not None

    @property
    def empty(self) -> bool:
        """Whether nothing was chosen (no id, no selector)."""
        return not self.ids and not self.by_selector

    def resolve(
        self, configured: Iterable[Mapping[str, Any]], *, account: str = "the Metronome account"
    ) -> list[str]:
        """The ids to update, checked against the account's delivery methods.

        :param configured: every configured delivery method (all pages).
        :param account: what to name in messages (e.g. ``the Metronome account of connection 'x'``).
        :return: the ids given (in their order), or every delivery method the selector matches.
        :raises MetronomeConfigError: an id the account does not have (all such ids are
            named), or a selector that matches nothing.
        """
        if not self.by_selector:
            known = {d["delivery_method_id"] for d in configured}
            unknown = [i for i in self.ids if i not in known]
            if unknown:
                raise MetronomeConfigError(
                    f"Unknown delivery method id(s) in {account}: {', '.join(unknown)} "
                    "(see listConfiguredBillingProviders)"
                )
            return list(self.ids)
        chosen = [
            d["delivery_method_id"]
            for d in configured
            if (self.billing_provider is None or d["billing_provider"] == self.billing_provider)
            and (self.delivery_method is None or d["delivery_method"] == self.delivery_method)
        ]
        if not chosen:
            raise MetronomeConfigError(
                f"No configured delivery method matches billing_provider={self.billing_provider!r}, "
                f"delivery_method={self.delivery_method!r}"
            )
        return chosen
