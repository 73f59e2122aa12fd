"""``make demo``: the largest real end-to-end slice that exists so far.

Starts the emulator, points an Airflow ``metronome`` connection at it, and uses
:class:`MetronomeHook` to list delivery methods and create a billing configuration
twice with the same Idempotency-Key, showing Metronome ends with exactly one.
"""

from __future__ import annotations

import json
import os
import time

from airflow_provider_metronome.emulator.testing import running_emulator

TOKEN = "demo-token-not-a-secret"
CUSTOMER = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
SEED = {
    "customers": [{"id": CUSTOMER, "name": "Acme", "ingest_aliases": ["acme"]}],
    "delivery_methods": [
        {
            "billing_provider": "stripe",
            "delivery_method": "direct_to_billing_provider",
            "delivery_method_id": "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d01",
            "delivery_method_configuration": {"stripe_account_id": "acct_demo"},
        }
    ],
}


def main() -> None:
    start = time.perf_counter()
    with running_emulator(seed=SEED, token=TOKEN) as emu:
        os.environ["AIRFLOW_CONN_METRONOME_DEFAULT"] = json.dumps(
            {"conn_type": "metronome", "host": emu.url, "password": TOKEN}
        )
        from airflow_provider_metronome.client.idempotency import idempotency_key
        from airflow_provider_metronome.hooks.metronome import MetronomeHook

        hook = MetronomeHook()
        print(hook.test_connection()[1])
        for dm in hook.list_configured_billing_providers():
            print(f"delivery method {dm['delivery_method_id']}: {dm['billing_provider']}")
        row = {
            "customer_id": CUSTOMER,
            "billing_provider": "stripe",
            "delivery_method": "direct_to_billing_provider",
            "configuration": {"stripe_customer_id": "cus_demo"},
        }
        key = idempotency_key("setCustomerBillingProviderConfigurations", row)
        for attempt in (1, 2):
            created = hook.set_billing_provider_configurations([row], idempotency_key=key)
            print(f"write {attempt}: configuration {created[0]['id']}")
        active = hook.get_billing_provider_configurations(CUSTOMER)
        print(f"Acme has {len(active)} active billing configuration(s) after two identical writes")
    print(f"demo finished in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
