"""The shapes of what the typed calls return, as the Metronome API reference documents them.

``TypedDict`` s, not models: the client hands on the JSON objects it read, checked for
the fields it relies on (:mod:`.responses`), with every other field as the API sent
it. Keys the reference marks required are required here too; the rest may be absent.

The billing provider configurations and the account's delivery methods stay
``dict[str, Any]`` for now: the sync engine stores them in containers of that type.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class ArchivedConfigurations(TypedDict):
    """What ``POST /v1/archiveCustomerBillingProviderConfigurations`` archived.

    https://docs.metronome.com/api-reference/customers/archive-billing-provider-configurations-for-a-customer.md
    """

    customer_id: str
    customer_billing_provider_configuration_ids: list[str]


class Customer(TypedDict):
    """A customer (``GET /v1/customers``, ``GET /v1/customers/{customer_id}``).

    https://docs.metronome.com/api-reference/customers/list-customers.md
    """

    id: str
    external_id: str
    ingest_aliases: list[str]
    name: str
    customer_config: NotRequired[dict[str, Any]]
    custom_fields: NotRequired[dict[str, str]]
    created_at: NotRequired[str]
    updated_at: NotRequired[str]
    archived_at: NotRequired[str | None]
