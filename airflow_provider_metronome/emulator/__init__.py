"""A local, stateful Metronome API for demos, tests and benchmarks.

Start it with ``metronome-emulator --port 8080 --token T --seed seed.json`` (see
``--help``). It serves the endpoints of the bundled ``openapi.yaml`` (a subset of
Metronome's API reference, https://docs.metronome.com/api-reference) with the request
and response shapes given there, plus introspection under ``/_emulator/`` (state,
request log, stats, reset, seed, faults, settings, save, check-secret).

**Admin API.** Every ``/_emulator/*`` call but ``health`` needs the process's admin
token in header ``X-Emulator-Admin-Token`` (``--admin-token`` or
``$METRONOME_EMULATOR_ADMIN_TOKEN``; when neither is given a random token is printed
at start-up); its POSTs need ``Content-Type: application/json``. Every request, API or
admin, must address a loopback name (``127.0.0.1``, ``localhost``, ``[::1]``, any port),
a non-wildcard ``--host``, or a name given with ``--allowed-host``; otherwise 400. The
state file is written with mode 0600.

Where the docs are silent, the emulator chooses, and says so here:

- **Unknown customer.** ``getCustomerBillingProviderConfigurations`` and
  ``GET /v1/customers/{id}`` answer 404 (the status-codes page: "The requested
  resource does not exist"). In ``setCustomerBillingProviderConfigurations`` and
  ``archiveCustomerBillingProviderConfigurations`` the customer is a field of the
  body, and the only declared error is 400, so they answer 400 naming
  ``data[i].customer_id`` / ``customer_id``.
- **Archived customer.** Readable; new configurations are refused (400).
- **Delivery methods.** ``setCustomerBillingProviderConfigurations`` needs at least one
  of ``delivery_method_id`` / ``delivery_method`` ("If not provided, the
  ``delivery_method`` must be provided"); both may be given if they name the same
  delivery method. An unknown id, an id of another provider, a method that does not
  match the id, a method with no configured delivery method, or a method matching
  more than one ("must use the delivery_method_id if you have multiple Stripe
  accounts") is a 400. ``upsertAvalaraCredentials`` / ``upsertAnrokApiToken`` answer 404 for
  unknown ids (their declared error).
- **Configuration rules.** The emulator's own reading of the reference page,
  :mod:`airflow_provider_metronome.emulator.rules`, is enforced (400 naming the key).
  It shares nothing with the provider's validation, so each checks the other.
- **Customer filters.** ``GET /v1/customers`` filters by ``ingest_alias``,
  ``customer_ids`` and ``salesforce_account_ids`` (each array repeated or
  comma-separated, at most 100 ids); the filters given combine with AND. A seed sets a
  customer's Salesforce account with ``salesforce_account_id``.
- **Batches are all-or-nothing.** One bad item rejects the whole request (as the docs
  say of archive); the first problem is named by index.
- **Duplicates are allowed.** ``setCustomerBillingProviderConfigurations`` creates
  every time, as documented, so a client that retries without care duplicates.
- **Archiving an archived configuration** succeeds and keeps the first ``archived_at``.
- **setUpBillingProvider** answers 409 when that provider + delivery method exists.
- **Idempotency-Key.** Only executed answers are cached (2xx and 5xx); schema and
  reference errors (400/404/409) are not, so a fixed request can be re-sent. Keys live
  for the emulator's lifetime (Metronome keeps them at least 24 h). A key applies once
  its request "begins executing (passes validation and doesn't conflict with another
  concurrent request)" (https://docs.metronome.com/api-reference/idempotency.md): from
  then until its answer (injected latency included) a second request with the same
  key is answered 409 ``Idempotency-Key '...' is in use by a concurrent request``,
  whatever its body; that 409 is not cached, so a retry after the first request
  finished gets the replay.
- **Secrets.** Avalara passwords and Anrok tokens are kept only as salted scrypt
  digests (salt per process) outside every dump: the state and the state file show
  ``"<set>"``, the request log ``***``. ``POST /_emulator/check-secret`` tells whether a
  given value is the one set (``match`` is null for one loaded from a state file).
- **Paging.** ``GET /v1/customers`` pages with ``limit`` (1..100, default 50) and an
  opaque ``next_page``; ``listConfiguredBillingProviders`` takes its cursor (a UUID)
  in the body, page size set by ``--providers-page-size``.
"""

from __future__ import annotations
