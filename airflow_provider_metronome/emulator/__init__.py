"""A local, stateful Metronome API for demos, tests and benchmarks.

Start it with ``metronome-emulator --port 8080 --token T --seed seed.json`` (see
``--help``). It serves the endpoints of the bundled ``openapi.yaml`` (a subset of
Metronome's API reference, https://docs.metronome.com/api-reference) with the request
and response shapes given there, plus introspection under ``/_emulator/`` (state,
request log, stats, reset, seed, faults, save).

Where the docs are silent, the emulator chooses, and says so here:

- **Unknown customer.** ``getCustomerBillingProviderConfigurations`` and
  ``GET /v1/customers/{id}`` answer 404 (the status-codes page: "The requested
  resource does not exist"). In ``setCustomerBillingProviderConfigurations`` and
  ``archiveCustomerBillingProviderConfigurations`` the customer is a field of the
  body, and the only declared error is 400, so they answer 400 naming
  ``data[i].customer_id`` / ``customer_id``.
- **Archived customer.** Readable; new configurations are refused (400).
- **Delivery methods.** ``setCustomerBillingProviderConfigurations`` needs exactly one
  of ``delivery_method_id`` / ``delivery_method``; an unknown id, an id of another
  provider, a method with no configured delivery method, or a method matching more
  than one ("must use the delivery_method_id if you have multiple Stripe accounts")
  is a 400. ``upsertAvalaraCredentials`` / ``upsertAnrokApiToken`` answer 404 for
  unknown ids (their declared error).
- **Configuration rules.** The per-provider table in
  :mod:`airflow_provider_metronome.models.rules` is enforced (400 naming the key).
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
- **Secrets.** Avalara passwords and Anrok tokens are stored only as SHA-256 digests
  and shown as ``***`` in the request log.
- **Paging.** ``GET /v1/customers`` pages with ``limit`` (1..100, default 50) and an
  opaque ``next_page``; ``listConfiguredBillingProviders`` takes its cursor (a UUID)
  in the body, page size set by ``--providers-page-size``.
"""

from __future__ import annotations
