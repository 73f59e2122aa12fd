"""The typed Metronome calls the provider makes.

Each call sends its request on the SDK client whose own retries are off
(:meth:`.sdk.SdkTransport.raw`), through the executor's retry loop
(:meth:`.executor.RequestExecutor.request`), and checks the answer
(:mod:`.responses`). Every paging loop stops on a repeated cursor and after a bounded
number of pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from airflow_provider_metronome.client.responses import MalformedResponse, Pages, body, data, page
from airflow_provider_metronome.exceptions import MetronomeResponseError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from airflow_provider_metronome.client.executor import RequestExecutor
    from airflow_provider_metronome.client.sdk import SdkTransport
    from airflow_provider_metronome.client.types import ArchivedConfigurations, Customer

# Metronome's documented page-size cap for GET list endpoints.
MAX_PAGE_SIZE = 100
# Paging loops stop (with an error) after this many pages: far more than any account
# holds (GET /v1/customers: 10 million customers at 100 a page; an account configures
# a handful of delivery methods), so only a server paging without end reaches it.
MAX_CUSTOMER_PAGES = 100_000
MAX_BILLING_PROVIDER_PAGES = 1_000


class MetronomeEndpoints:
    """The typed calls, on an executor and a transport.

    :param executor: runs each request (retries, pacing, counting, errors).
    :param transport: the SDK client the requests are sent with.
    """

    def __init__(self, executor: RequestExecutor, transport: SdkTransport) -> None:
        self.executor = executor
        self.transport = transport

    # -- customer billing provider configurations -----------------------------------

    def set_billing_provider_configurations(
        self,
        configurations: Sequence[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        verify: Callable[[], list[dict[str, Any]] | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Create billing provider configurations (``POST /v1/setCustomerBillingProviderConfigurations``).

        This endpoint creates; it does not upsert. Pass an ``idempotency_key`` so a
        retried request cannot create twice.

        :param configurations: items of ``CustomerBillingProviderConfigurationInput``.
        :param idempotency_key: key sent as ``Idempotency-Key``.
        :param verify: called after a 5xx; returns the configurations if they exist.
        :return: the created configurations, in request order.
        """
        sdk = self.transport.raw()
        items = list(configurations)

        def send(headers: dict[str, str]) -> list[dict[str, Any]]:
            resp = sdk.v1.customers.with_raw_response.set_billing_configurations(
                data=items,  # type: ignore[arg-type]
                extra_headers=headers,
            )
            created: list[dict[str, Any]] = data(resp, list)
            status = resp.http_response.status_code
            # One created configuration per item sent, in order, each with its id.
            if len(created) != len(items):
                raise MalformedResponse(
                    f"'data' has {len(created)} items for {len(items)} configurations sent", status
                )
            for i, item in enumerate(created):
                if not isinstance(item.get("id"), str) or not item["id"]:
                    raise MalformedResponse(f"data[{i}] has no id", status)
            return created

        return self.executor.request(
            "POST",
            "/v1/setCustomerBillingProviderConfigurations",
            send,
            idempotency_key=idempotency_key,
            verify=verify,
        )

    def get_billing_provider_configurations(
        self, customer_id: str, *, include_archived: bool = False
    ) -> list[dict[str, Any]]:
        """A customer's configurations (``POST /v1/getCustomerBillingProviderConfigurations``).

        :param customer_id: Metronome customer id.
        :param include_archived: include archived configurations.
        """
        # One call per customer a sync reads: prepared once (see .prepared).
        prepared = self.transport.prepared_post("/v1/getCustomerBillingProviderConfigurations")
        payload = {"customer_id": customer_id, "include_archived": include_archived}
        sdk = self.transport.raw()

        def send(headers: dict[str, str]) -> list[dict[str, Any]]:
            if prepared is not None:
                resp: Any = prepared.send(payload, headers)
            else:
                resp = sdk.v1.customers.with_raw_response.retrieve_billing_configurations(
                    customer_id=customer_id, include_archived=include_archived, extra_headers=headers
                )
            configurations: list[dict[str, Any]] = data(resp, list)
            return configurations

        return self.executor.request("POST", "/v1/getCustomerBillingProviderConfigurations", send)

    def archive_billing_provider_configurations(
        self,
        customer_id: str,
        configuration_ids: Sequence[str],
        *,
        idempotency_key: str | None = None,
    ) -> ArchivedConfigurations:
        """Archive configurations of one customer (``POST /v1/archiveCustomerBillingProviderConfigurations``).

        :param customer_id: the customer the configurations belong to.
        :param configuration_ids: ids to archive (all-or-nothing).
        :param idempotency_key: key sent as ``Idempotency-Key``.
        """
        sdk = self.transport.raw()
        ids = list(configuration_ids)

        def send(headers: dict[str, str]) -> ArchivedConfigurations:
            resp = sdk.v1.customers.with_raw_response.archive_billing_configurations(
                customer_billing_provider_configuration_ids=ids,
                customer_id=customer_id,
                extra_headers=headers,
            )
            archived: ArchivedConfigurations = data(resp, dict)
            return archived

        def verify() -> ArchivedConfigurations | None:
            current = self.get_billing_provider_configurations(customer_id, include_archived=True)
            archived = {c["id"] for c in current if c.get("archived_at")}
            if set(ids) <= archived:
                return {"customer_id": customer_id, "customer_billing_provider_configuration_ids": ids}
            return None

        return self.executor.request(
            "POST",
            "/v1/archiveCustomerBillingProviderConfigurations",
            send,
            idempotency_key=idempotency_key,
            verify=verify,
        )

    # -- account-level billing providers and tax credentials ------------------------

    def iter_configured_billing_providers(self) -> Iterator[dict[str, Any]]:
        """Every configured delivery method, across all pages (``POST /v1/listConfiguredBillingProviders``).

        The cursor travels in the request body. Each delivery method comes once,
        however often the pages repeat it; a cursor that comes back, or more than
        :data:`MAX_BILLING_PROVIDER_PAGES` pages, raises
        :class:`~airflow_provider_metronome.exceptions.MetronomeResponseError`.
        """
        method, path = "POST", "/v1/listConfiguredBillingProviders"
        sdk = self.transport.raw()
        pages = Pages(method, path, MAX_BILLING_PROVIDER_PAGES)
        cursor: str | None = None
        delivered: set[str] = set()
        while True:

            def send(headers: dict[str, str], cursor: str | None = cursor) -> dict[str, Any]:
                raw = sdk.v1.settings.billing_providers.with_raw_response
                resp = (
                    raw.list(extra_headers=headers)
                    if cursor is None
                    else raw.list(next_page=cursor, extra_headers=headers)
                )
                current = page(resp)
                for i, item in enumerate(current["data"]):
                    if not isinstance(item.get("delivery_method_id"), str):
                        raise MalformedResponse(
                            f"data[{i}] has no delivery_method_id", resp.http_response.status_code
                        )
                return current

            current = self.executor.request(method, path, send)
            for item in current["data"]:
                if item["delivery_method_id"] not in delivered:
                    delivered.add(item["delivery_method_id"])
                    yield item
            cursor = pages.next(current)
            if cursor is None:
                return

    def list_configured_billing_providers(self) -> list[dict[str, Any]]:
        """All configured delivery methods, every page read."""
        return list(self.iter_configured_billing_providers())

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
        """Set Avalara credentials on delivery methods (``POST /v1/upsertAvalaraCredentials``).

        An overwrite by nature, so it is retried after a 5xx with a fresh key.

        :param delivery_method_ids: delivery methods to update.
        :param avalara_environment: ``SANDBOX`` or ``PRODUCTION``.
        :param avalara_username: Avalara user name.
        :param avalara_password: Avalara password (never logged).
        :param commit_transactions: commit transactions in Avalara.
        :param idempotency_key: key sent as ``Idempotency-Key``.
        """
        from metronome import omit

        sdk = self.transport.raw()
        ids = list(delivery_method_ids)

        # Out of every message and log line from now on, in every form it may take
        # (an error body that echoes the request, the SDK's DEBUG request line).
        self.executor.errors.protect(avalara_password)

        def send(headers: dict[str, str]) -> None:
            resp = sdk.v1.settings.with_raw_response.upsert_avalara_credentials(
                avalara_environment=avalara_environment,  # type: ignore[arg-type]
                avalara_username=avalara_username,
                avalara_password=avalara_password,
                delivery_method_ids=ids,
                commit_transactions=omit if commit_transactions is None else commit_transactions,
                extra_headers=headers,
            )
            # The answer is an empty object
            # (https://docs.metronome.com/api-reference/settings/upsert-avalara-credentials.md).
            body(resp, empty_ok=True)

        self.executor.request("POST", "/v1/upsertAvalaraCredentials", send, idempotency_key=idempotency_key)

    # -- customers -------------------------------------------------------------------

    def iter_customers(
        self,
        *,
        ingest_alias: str | None = None,
        customer_ids: Sequence[str] | None = None,
        only_archived: bool = False,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[Customer]:
        """Customers, page by page (``GET /v1/customers``).

        :param ingest_alias: only the customer with this ingest alias.
        :param customer_ids: only these customers (at most 100 per call: longer
            lists are split).
        :param only_archived: archived customers instead of active ones.
        :param page_size: ``limit`` of each page (1..100).
        """
        if customer_ids is not None and len(customer_ids) > MAX_PAGE_SIZE:
            for start in range(0, len(customer_ids), MAX_PAGE_SIZE):
                yield from self.iter_customers(
                    ingest_alias=ingest_alias,
                    customer_ids=customer_ids[start : start + MAX_PAGE_SIZE],
                    only_archived=only_archived,
                    page_size=page_size,
                )
            return
        from metronome import omit

        method, path = "GET", "/v1/customers"
        sdk = self.transport.raw()
        limit = max(1, min(page_size, MAX_PAGE_SIZE))
        pages = Pages(method, path, MAX_CUSTOMER_PAGES)
        cursor: str | None = None
        while True:

            def send(headers: dict[str, str], cursor: str | None = cursor) -> dict[str, Any]:
                return page(
                    sdk.v1.customers.with_raw_response.list(
                        limit=limit,
                        next_page=cursor if cursor else omit,
                        ingest_alias=ingest_alias if ingest_alias is not None else omit,
                        customer_ids=list(customer_ids) if customer_ids is not None else omit,
                        only_archived=only_archived if only_archived else omit,
                        extra_headers=headers,
                    )
                )

            current = self.executor.request(method, path, send)
            yield from current["data"]
            cursor = pages.next(current)
            if cursor is None:
                return

    def list_customers(self, **kwargs: Any) -> list[Customer]:
        """All customers matching the filters of :meth:`iter_customers`."""
        return list(self.iter_customers(**kwargs))

    def get_customer(self, customer_id: str) -> Customer:
        """One customer (``GET /v1/customers/{customer_id}``).

        :param customer_id: Metronome customer id.
        """
        sdk = self.transport.raw()

        def send(headers: dict[str, str]) -> Customer:
            resp = sdk.v1.customers.with_raw_response.retrieve(customer_id=customer_id, extra_headers=headers)
            customer: Customer = data(resp, dict)
            return customer

        return self.executor.request("GET", f"/v1/customers/{customer_id}", send)

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
        """Create a customer with its aliases and billing provider configurations (``POST /v1/customers``).

        The customer and its configurations are created in one request, so no other
        reader ever sees the customer without them. Metronome refuses (409) an ingest
        alias another customer holds, active or archived
        (https://docs.metronome.com/api-reference/idempotency.md).

        :param name: the customer's name (Metronome truncates it to 160 characters).
        :param ingest_aliases: every alias of the customer.
        :param custom_fields: custom field values (string → string).
        :param configurations: items of ``CustomerBillingProviderConfigurationCreateCustomerInput``.
        :param idempotency_key: key sent as ``Idempotency-Key``.
        :param verify: called after a 5xx; returns the customer if it was created anyway.
        :return: the customer created (``id``, ``ingest_aliases``, ``name``, ...).
        """
        from metronome import omit

        sdk = self.transport.raw()
        aliases = list(ingest_aliases)
        items = list(configurations)

        def send(headers: dict[str, str]) -> Customer:
            resp = sdk.v1.customers.with_raw_response.create(
                name=name,
                ingest_aliases=aliases,
                custom_fields=custom_fields if custom_fields else omit,
                customer_billing_provider_configurations=items if items else omit,  # type: ignore[arg-type]
                extra_headers=headers,
            )
            customer: Customer = data(resp, dict)
            if not isinstance(customer.get("id"), str) or not customer["id"]:
                raise MalformedResponse("'data' has no id", resp.http_response.status_code)
            return customer

        return self.executor.request(
            "POST", "/v1/customers", send, idempotency_key=idempotency_key, verify=verify
        )

    def set_ingest_aliases(
        self, customer_id: str, ingest_aliases: Sequence[str], *, idempotency_key: str | None = None
    ) -> None:
        """Replace a customer's ingest aliases (``POST /v1/customers/{customer_id}/setIngestAliases``).

        The call "fully replaces the set of ingest aliases"
        (https://docs.metronome.com/api-reference/customers/create-or-update-customer-ingest-aliases.md):
        to add aliases, send the existing ones too.

        :param customer_id: the customer.
        :param ingest_aliases: the customer's whole alias set after the call.
        :param idempotency_key: key sent as ``Idempotency-Key``.
        """
        sdk = self.transport.raw()
        aliases = list(ingest_aliases)

        def send(headers: dict[str, str]) -> None:
            resp = sdk.v1.customers.with_raw_response.set_ingest_aliases(
                customer_id=customer_id, ingest_aliases=aliases, extra_headers=headers
            )
            # The answer has no body (a 200 with no content).
            body(resp, empty_ok=True)

        # Idempotent by nature (a full replace), so a 5xx is retried with a fresh key.
        self.executor.request(
            "POST", f"/v1/customers/{customer_id}/setIngestAliases", send, idempotency_key=idempotency_key
        )

    def find_customer_by_ingest_alias(self, ingest_alias: str) -> dict[str, Any] | None:
        """The active customer holding ``ingest_alias``, or ``None``.

        The answer is checked, not trusted: a server or proxy that dropped the
        ``ingest_alias`` filter would otherwise attach every alias to whichever customer
        it listed first.

        :param ingest_alias: the alias to look up.
        :return: the customer (a :class:`~.types.Customer`, typed as the sync engine's
            alias resolver takes it).
        :raises MetronomeResponseError: the customer returned does not hold the alias.
        """
        for customer in self.iter_customers(ingest_alias=ingest_alias, page_size=1):
            aliases = customer.get("ingest_aliases")
            if not isinstance(aliases, list) or ingest_alias not in aliases:
                raise MetronomeResponseError(
                    f"asked for the customer with ingest alias {ingest_alias!r}, got customer "
                    f"{customer.get('id')!r}, which does not hold it "
                    "(was the ingest_alias filter dropped on the way?)",
                    method="GET",
                    path="/v1/customers",
                )
            return cast("dict[str, Any]", customer)
        return None
