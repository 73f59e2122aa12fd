"""What the sync engine needs of a Metronome API: :class:`MetronomeApi`.

A :class:`typing.Protocol`: :class:`~airflow_provider_metronome.client.client.MetronomeClient`
(standalone, or the Airflow hook's ``client``) and
:class:`~airflow_provider_metronome.hooks.metronome.MetronomeHook` both satisfy it,
and so does any test double with these members.

The names this module held before the client was split into parts are re-exported
here, so ``from airflow_provider_metronome.client.api import ...`` keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_metronome.client.client import MetronomeClient
from airflow_provider_metronome.client.endpoints import (
    MAX_BILLING_PROVIDER_PAGES,
    MAX_CUSTOMER_PAGES,
    MAX_PAGE_SIZE,
)
from airflow_provider_metronome.client.errors import MAX_ERROR_TEXT
from airflow_provider_metronome.client.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    ClientSettings,
    normalize_base_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from airflow_provider_metronome.client.types import ArchivedConfigurations, Customer

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "MAX_BILLING_PROVIDER_PAGES",
    "MAX_CUSTOMER_PAGES",
    "MAX_ERROR_TEXT",
    "MAX_PAGE_SIZE",
    "ClientSettings",
    "MetronomeApi",
    "MetronomeClient",
    "normalize_base_url",
]


class MetronomeApi(Protocol):
    """The typed Metronome calls, the call count and the settings of one client.

    See :class:`~airflow_provider_metronome.client.endpoints.MetronomeEndpoints` for
    what each call does.
    """

    @property
    def settings(self) -> ClientSettings:
        """The client's settings."""
        ...

    @property
    def api_calls(self) -> int:
        """HTTP requests sent so far (every retry counts)."""
        ...

    @property
    def api_calls_by_endpoint(self) -> dict[str, int]:
        """HTTP requests sent so far by endpoint (``"GET /v1/customers"``: ids grouped by template)."""
        ...

    def close(self) -> None:
        """Close the HTTP connection pool."""
        ...

    def set_billing_provider_configurations(
        self,
        configurations: Sequence[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        verify: Callable[[], list[dict[str, Any]] | None] | None = None,
    ) -> list[dict[str, Any]]:
        """``POST /v1/setCustomerBillingProviderConfigurations``."""
        ...

    def get_billing_provider_configurations(
        self, customer_id: str, *, include_archived: bool = False
    ) -> list[dict[str, Any]]:
        """``POST /v1/getCustomerBillingProviderConfigurations``."""
        ...

    def archive_billing_provider_configurations(
        self,
        customer_id: str,
        configuration_ids: Sequence[str],
        *,
        idempotency_key: str | None = None,
    ) -> ArchivedConfigurations:
        """``POST /v1/archiveCustomerBillingProviderConfigurations``."""
        ...

    def iter_configured_billing_providers(self) -> Iterator[dict[str, Any]]:
        """``POST /v1/listConfiguredBillingProviders``, every page."""
        ...

    def list_configured_billing_providers(self) -> list[dict[str, Any]]:
        """``POST /v1/listConfiguredBillingProviders``, every page, as a list."""
        ...

    def upsert_avalara_credentials(
        self,
        delivery_method_ids: Sequence[str],
        *,
        avalara_environment: str,
        avalara_username: str,
        avalara_password: str,
        commit_transactions: bool | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """``POST /v1/upsertAvalaraCredentials``."""
        ...

    def iter_customers(
        self,
        *,
        ingest_alias: str | None = None,
        customer_ids: Sequence[str] | None = None,
        only_archived: bool = False,
        page_size: int = ...,
    ) -> Iterator[Customer]:
        """``GET /v1/customers``, every page."""
        ...

    def list_customers(self, **kwargs: Any) -> list[Customer]:
        """``GET /v1/customers``, every page, as a list."""
        ...

    def get_customer(self, customer_id: str) -> Customer:
        """``GET /v1/customers/{customer_id}``."""
        ...

    def create_customer(
        self,
        *,
        name: str,
        ingest_aliases: Sequence[str],
        custom_fields: dict[str, str] | None = None,
        configurations: Sequence[dict[str, Any]] = (),
        idempotency_key: str | None = None,
        verify: Callable[[], Customer | None] | None = None,
    ) -> Customer:
        """``POST /v1/customers``, the customer with its configurations."""
        ...

    def set_ingest_aliases(
        self, customer_id: str, ingest_aliases: Sequence[str], *, idempotency_key: str | None = None
    ) -> None:
        """``POST /v1/customers/{customer_id}/setIngestAliases`` (a full replace)."""
        ...

    def find_customer_by_ingest_alias(self, ingest_alias: str) -> dict[str, Any] | None:
        """``GET /v1/customers?ingest_alias=``, the answer checked."""
        ...
