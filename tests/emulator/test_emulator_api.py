"""The emulator over real HTTP: endpoints, documented errors, idempotency, faults, paging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.emulator.testing import RunningEmulator, running_emulator
from airflow_provider_metronome.exceptions import (
    MetronomeAuthError,
    MetronomeBadRequestError,
    MetronomeConflictError,
    MetronomeNotFoundError,
)
from tests import seeds
from tests.conftest import TOKEN

SPEC = Path(__file__).resolve().parents[2] / "airflow_provider_metronome" / "emulator" / "openapi.yaml"
SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "metronome-api" / "openapi.yaml"

SET_PATH = "/v1/setCustomerBillingProviderConfigurations"
STRIPE_ROW = {
    "customer_id": seeds.ACME,
    "billing_provider": "stripe",
    "delivery_method": "direct_to_billing_provider",
    "configuration": {"stripe_customer_id": "cus_A", "stripe_collection_method": "charge_automatically"},
}


@cache
def _spec() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(SPEC.read_text())


def assert_matches_response_schema(method: str, path: str, status: int, body: Any) -> None:
    """Validate ``body`` against the spec's response schema for that operation and status."""
    from openapi_schema_validator import OAS30Validator

    spec = _spec()
    response = spec["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        assert body is None or body == b""
        return
    OAS30Validator({**schema, "components": spec["components"]}).validate(body)


def raw(emu: RunningEmulator, method: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
    hdrs = {"Authorization": f"Bearer {emu.token}", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return httpx.request(method, f"{emu.url}{path}", json=body, headers=hdrs, timeout=10)


@pytest.fixture
def client(emulator: RunningEmulator) -> MetronomeClient:
    return MetronomeClient(emulator.url, TOKEN, retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05))


def test_bundled_spec_is_the_shared_spec() -> None:
    if not SHARED_SPEC.exists():
        pytest.skip("shared/metronome-api is not beside this checkout")
    assert SPEC.read_bytes() == SHARED_SPEC.read_bytes()


# -- auth ----------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_bad_or_missing_token_is_401(emulator: RunningEmulator, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = httpx.get(f"{emulator.url}/v1/customers", headers=headers)
    assert resp.status_code == 401
    assert resp.json() == {"message": "Invalid access token"}


# -- billing provider configurations ---------------------------------------------------


def test_set_get_archive_round_trip(emulator: RunningEmulator) -> None:
    resp = raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", {"data": [STRIPE_ROW]})
    assert resp.status_code == 200
    assert_matches_response_schema("post", "/v1/setCustomerBillingProviderConfigurations", 200, resp.json())
    created = resp.json()["data"][0]
    assert created["delivery_method_id"] == seeds.STRIPE_DM

    got = raw(emulator, "POST", "/v1/getCustomerBillingProviderConfigurations", {"customer_id": seeds.ACME})
    assert_matches_response_schema("post", "/v1/getCustomerBillingProviderConfigurations", 200, got.json())
    assert [c["id"] for c in got.json()["data"]] == [created["id"]]

    body = {"customer_id": seeds.ACME, "customer_billing_provider_configuration_ids": [created["id"]]}
    arch = raw(emulator, "POST", "/v1/archiveCustomerBillingProviderConfigurations", body)
    assert arch.status_code == 200
    assert_matches_response_schema(
        "post", "/v1/archiveCustomerBillingProviderConfigurations", 200, arch.json()
    )

    active = raw(
        emulator, "POST", "/v1/getCustomerBillingProviderConfigurations", {"customer_id": seeds.ACME}
    )
    assert active.json()["data"] == []
    every = raw(
        emulator, "POST", "/v1/getCustomerBillingProviderConfigurations",
        {"customer_id": seeds.ACME, "include_archived": True},
    )  # fmt: skip
    assert every.json()["data"][0]["archived_at"] is not None
    again = raw(emulator, "POST", "/v1/archiveCustomerBillingProviderConfigurations", body)
    assert again.status_code == 200


def test_set_creates_again_without_a_key(emulator: RunningEmulator) -> None:
    for _ in range(2):
        raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", {"data": [STRIPE_ROW]})
    got = raw(emulator, "POST", "/v1/getCustomerBillingProviderConfigurations", {"customer_id": seeds.ACME})
    assert len(got.json()["data"]) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"customer_id": "not-a-uuid"}, "data[0].customer_id: 'not-a-uuid' is not a 'uuid'"),
        ({"billing_provider": "paypal"}, "data[0].billing_provider: 'paypal' is not one of"),
        ({"customer_id": "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4aff"}, "data[0].customer_id: customer"),
        ({"customer_id": seeds.ARCHIVED}, "is archived"),
        (
            {"delivery_method_id": seeds.STRIPE_DM, "delivery_method": "aws_sqs"},
            "does not match delivery method",
        ),
        (
            {"configuration": {"stripe_collection_method": "charge_automatically"}},
            "data[0].configuration.stripe_customer_id: missing",
        ),
        (
            {"configuration": {"stripe_customer_id": "c", "stripe_collection_method": "cash"}},
            "'cash' is not one of",
        ),
        ({"tax_provider": "avalara"}, "data[0].tax_provider: a tax provider needs stripe_collection_method"),
        ({"delivery_method": "tackle"}, "no tackle delivery method is configured for stripe"),
    ],
)
def test_set_rejects_with_the_field_named(
    emulator: RunningEmulator, change: dict[str, Any], message: str
) -> None:
    resp = raw(
        emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", {"data": [{**STRIPE_ROW, **change}]}
    )
    assert resp.status_code == 400
    assert message in resp.json()["message"]
    assert_matches_response_schema("post", "/v1/setCustomerBillingProviderConfigurations", 400, resp.json())


def test_set_is_all_or_nothing(emulator: RunningEmulator) -> None:
    bad = {**STRIPE_ROW, "customer_id": seeds.GLOBEX, "configuration": {}}
    resp = raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", {"data": [STRIPE_ROW, bad]})
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("data[1]")
    assert emulator.admin("state")["billing_provider_configurations"] == []


def test_delivery_method_must_be_unambiguous(emulator: RunningEmulator) -> None:
    emulator.admin("reset", seeds.small_seed(two_stripe_accounts=True))
    resp = raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", {"data": [STRIPE_ROW]})
    assert resp.status_code == 400
    assert "give delivery_method_id" in resp.json()["message"]
    by_id = {k: v for k, v in STRIPE_ROW.items() if k != "delivery_method"} | {
        "delivery_method_id": seeds.STRIPE_DM_2
    }
    ok = raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", {"data": [by_id]})
    assert ok.status_code == 200


def test_delivery_method_id_of_another_provider(emulator: RunningEmulator) -> None:
    row = {k: v for k, v in STRIPE_ROW.items() if k != "delivery_method"} | {
        "delivery_method_id": seeds.AWS_DM
    }
    resp = raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", {"data": [row]})
    assert resp.status_code == 400
    assert "belongs to aws_marketplace, not stripe" in resp.json()["message"]


def test_get_unknown_customer_is_404(client: MetronomeClient) -> None:
    with pytest.raises(MetronomeNotFoundError):
        client.get_billing_provider_configurations("0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4aff")


def test_archive_foreign_configuration_is_400(emulator: RunningEmulator, client: MetronomeClient) -> None:
    created = client.set_billing_provider_configurations([STRIPE_ROW])
    with pytest.raises(MetronomeBadRequestError, match="not found for customer"):
        client.archive_billing_provider_configurations(seeds.GLOBEX, [created[0]["id"]])


# -- account level -----------------------------------------------------------------------


def test_list_billing_providers_pages_with_cursor_in_body(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    emulator.admin("settings", {"providers_page_size": 2})
    first = raw(emulator, "POST", "/v1/listConfiguredBillingProviders", {})
    assert_matches_response_schema("post", "/v1/listConfiguredBillingProviders", 200, first.json())
    assert len(first.json()["data"]) == 2
    assert first.json()["next_page"]
    ids = [d["delivery_method_id"] for d in client.list_configured_billing_providers()]
    assert ids == [d["delivery_method_id"] for d in seeds.delivery_methods()]
    bad = raw(emulator, "POST", "/v1/listConfiguredBillingProviders", {"next_page": "not-a-uuid"})
    assert bad.status_code == 400


def test_set_up_billing_provider(emulator: RunningEmulator) -> None:
    emulator.admin("reset", {"customers": []})
    body = {
        "billing_provider": "azure_marketplace",
        "delivery_method": "direct_to_billing_provider",
        "configuration": {"azure_client_id": "c", "raw_azure_client_secret": "s", "azure_tenant_id": "t"},
    }
    resp = raw(emulator, "POST", "/v1/setUpBillingProvider", body)
    assert resp.status_code == 200
    assert_matches_response_schema("post", "/v1/setUpBillingProvider", 200, resp.json())
    state = emulator.admin("state")
    assert "raw_azure_client_secret" not in json.dumps(state)
    conflict = raw(emulator, "POST", "/v1/setUpBillingProvider", body)
    assert conflict.status_code == 409
    bad = raw(emulator, "POST", "/v1/setUpBillingProvider", {**body, "billing_provider": "stripe"})
    assert bad.status_code == 400


def test_upsert_avalara_and_anrok(emulator: RunningEmulator) -> None:
    body = {
        "delivery_method_ids": [seeds.STRIPE_DM],
        "avalara_environment": "SANDBOX",
        "avalara_username": "tax@example.com",
        "avalara_password": "Av-secret-pass",
        "commit_transactions": True,
    }
    resp = raw(emulator, "POST", "/v1/upsertAvalaraCredentials", body)
    assert resp.status_code == 200
    assert resp.json() == {}
    missing = raw(
        emulator, "POST", "/v1/upsertAvalaraCredentials", {**body, "delivery_method_ids": [seeds.ACME]}
    )
    assert missing.status_code == 404
    assert seeds.ACME in missing.json()["message"]
    assert_matches_response_schema("post", "/v1/upsertAvalaraCredentials", 404, missing.json())
    anrok = raw(
        emulator,
        "POST",
        "/v1/upsertAnrokApiToken",
        {"delivery_method_ids": [seeds.STRIPE_DM], "anrok_api_token": "sak-123"},
    )
    assert_matches_response_schema("post", "/v1/upsertAnrokApiToken", 200, anrok.json())
    dump = json.dumps(emulator.admin("state"))
    log = json.dumps(emulator.admin("requests"))
    assert "Av-secret-pass" not in dump + log
    assert "sak-123" not in dump + log
    assert (
        emulator.admin("state")["avalara_credentials"][seeds.STRIPE_DM]["avalara_username"]
        == "tax@example.com"
    )


# -- customers ----------------------------------------------------------------------------


def test_customers_create_list_get_aliases(emulator: RunningEmulator, client: MetronomeClient) -> None:
    resp = raw(emulator, "POST", "/v1/customers", {"name": "Hooli", "ingest_aliases": ["hooli"]})
    assert resp.status_code == 200
    assert_matches_response_schema("post", "/v1/customers", 200, resp.json())
    hooli = resp.json()["data"]["id"]
    dup = raw(emulator, "POST", "/v1/customers", {"name": "Hooli 2", "ingest_aliases": ["hooli"]})
    assert dup.status_code == 409
    taken = raw(emulator, "POST", "/v1/customers", {"name": "X", "ingest_aliases": ["gone"]})
    assert taken.status_code == 409, "aliases of archived customers stay taken"

    listed = raw(emulator, "GET", "/v1/customers?limit=2")
    assert_matches_response_schema("get", "/v1/customers", 200, listed.json())
    assert len(listed.json()["data"]) == 2
    assert len(client.list_customers(page_size=2)) == 5
    assert [c["id"] for c in client.list_customers(only_archived=True)] == [seeds.ARCHIVED]
    assert client.find_customer_by_ingest_alias("hooli")["id"] == hooli  # type: ignore[index]
    assert client.find_customer_by_ingest_alias("gone") is None
    assert client.find_customer_by_ingest_alias("nobody") is None
    some = client.list_customers(customer_ids=[seeds.ACME, seeds.GLOBEX])
    assert {c["id"] for c in some} == {seeds.ACME, seeds.GLOBEX}

    got = raw(emulator, "GET", f"/v1/customers/{hooli}")
    assert_matches_response_schema("get", "/v1/customers/{customer_id}", 200, got.json())
    assert raw(emulator, "GET", "/v1/customers/0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4aff").status_code == 404
    assert raw(emulator, "GET", "/v1/customers?limit=500").status_code == 400

    ok = raw(emulator, "POST", f"/v1/customers/{hooli}/setIngestAliases", {"ingest_aliases": ["hooli-2"]})
    assert ok.status_code == 200
    assert client.find_customer_by_ingest_alias("hooli") is None
    assert client.find_customer_by_ingest_alias("hooli-2")["id"] == hooli  # type: ignore[index]
    clash = raw(emulator, "POST", f"/v1/customers/{hooli}/setIngestAliases", {"ingest_aliases": ["acme"]})
    assert clash.status_code == 409


def test_create_customer_with_configurations(emulator: RunningEmulator, client: MetronomeClient) -> None:
    body = {
        "name": "Pied Piper",
        "ingest_aliases": ["pp"],
        "customer_billing_provider_configurations": [
            {"billing_provider": "stripe", "delivery_method": "direct_to_billing_provider",
             "configuration": {"stripe_customer_id": "cus_pp"}}
        ],
    }  # fmt: skip
    cid = raw(emulator, "POST", "/v1/customers", body).json()["data"]["id"]
    assert len(client.get_billing_provider_configurations(cid)) == 1


# -- idempotency ------------------------------------------------------------------------------


def test_same_key_same_body_replays(emulator: RunningEmulator) -> None:
    body = {"data": [STRIPE_ROW]}
    first = raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", body, Idempotency_Key="k-1")
    second = raw(
        emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", body, Idempotency_Key="k-1"
    )
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(emulator.admin("state")["billing_provider_configurations"]) == 1


def test_same_key_other_body_is_409(emulator: RunningEmulator, client: MetronomeClient) -> None:
    client.set_billing_provider_configurations([STRIPE_ROW], idempotency_key="k-2")
    other = {**STRIPE_ROW, "customer_id": seeds.GLOBEX}
    with pytest.raises(MetronomeConflictError, match="already used with different parameters"):
        client.set_billing_provider_configurations([other], idempotency_key="k-2")


def test_cached_error_is_replayed_and_validation_errors_are_not_cached(emulator: RunningEmulator) -> None:
    emulator.admin("faults", {"p_commit_500": 1.0})
    body = {"data": [STRIPE_ROW]}
    first = raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", body, Idempotency_Key="k-3")
    assert first.status_code == 500
    emulator.admin("faults", {"p_commit_500": 0.0})
    again = raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", body, Idempotency_Key="k-3")
    assert again.status_code == 500
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(emulator.admin("state")["billing_provider_configurations"]) == 1, (
        "the write was committed once"
    )

    bad = {"data": [{**STRIPE_ROW, "configuration": {}}]}
    assert (
        raw(
            emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", bad, Idempotency_Key="k-4"
        ).status_code
        == 400
    )
    good = raw(emulator, "POST", "/v1/setCustomerBillingProviderConfigurations", body, Idempotency_Key="k-4")
    assert good.status_code == 200


def test_a_key_in_use_by_a_concurrent_request_is_409_until_that_request_is_done(
    emulator: RunningEmulator,
) -> None:
    # "applies once the request begins executing (passes validation and doesn't conflict
    # with another concurrent request)": https://docs.metronome.com/api-reference/idempotency.md
    emulator.admin("faults", {"latency_ms": 1000})
    body = {"data": [STRIPE_ROW]}
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(raw, emulator, "POST", SET_PATH, body, Idempotency_Key="k-busy")
        time.sleep(0.3)
        second = pool.submit(raw, emulator, "POST", SET_PATH, body, Idempotency_Key="k-busy")
        done, refused = first.result(), second.result()
    assert done.status_code == 200
    assert refused.status_code == 409
    assert "in use by a concurrent request" in refused.json()["message"]
    assert len(emulator.admin("state")["billing_provider_configurations"]) == 1

    emulator.admin("faults", {"latency_ms": 0})
    again = raw(emulator, "POST", SET_PATH, body, Idempotency_Key="k-busy")
    assert again.status_code == 200, "the 409 was not cached"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == done.json()
    assert len(emulator.admin("state")["billing_provider_configurations"]) == 1


def test_the_same_batch_written_twice_at_once_with_one_key_is_created_once(
    emulator: RunningEmulator,
) -> None:
    emulator.admin("faults", {"latency_ms": 500})
    rows = [STRIPE_ROW, {**STRIPE_ROW, "customer_id": seeds.GLOBEX}]
    client = MetronomeClient(emulator.url, TOKEN)  # the default policy
    start = threading.Barrier(2)

    def write() -> list[dict[str, Any]]:
        start.wait()
        return client.set_billing_provider_configurations(rows, idempotency_key="apm-same-batch")

    with ThreadPoolExecutor(2) as pool:
        a, b = (f.result() for f in [pool.submit(write) for _ in range(2)])
    client.close()
    assert [c["id"] for c in a] == [c["id"] for c in b]
    state = emulator.admin("state")["billing_provider_configurations"]
    assert sorted(c["id"] for c in state) == sorted(c["id"] for c in a), "exactly one set created"
    writes = [r for r in emulator.admin("requests")["data"] if r["path"] == SET_PATH]
    assert 409 in [r["status"] for r in writes], "the two writes did overlap"
    assert {r["idempotency_key"] for r in writes} == {"apm-same-batch"}
    assert [r["replayed"] for r in writes if r["status"] == 200].count(True) == 1


# -- faults, seen by the real client ------------------------------------------------------------


def _fault_log(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.admin("requests")["data"] if r["fault"]]


@pytest.mark.parametrize(
    ("fault", "status"), [("p_429", 429), ("p_500", 500), ("p_503", 503), ("p_reset", 0)]
)
def test_each_fault_is_survived_by_the_client(
    emulator: RunningEmulator, client: MetronomeClient, fault: str, status: int
) -> None:
    emulator.admin("faults", {fault: 0.5, "seed": 7, "retry_after_ms": 20})
    for _ in range(10):
        assert client.get_customer(seeds.ACME)["id"] == seeds.ACME
    faults = _fault_log(emulator)
    assert faults, "the fault should have fired at least once in 10+ requests"
    assert {r["status"] for r in faults} == {status}
    if status == 429:
        resp = next(r for r in faults)
        assert resp["fault"] == "429"


def test_429_carries_retry_after(emulator: RunningEmulator) -> None:
    emulator.admin("faults", {"p_429": 1.0, "retry_after_ms": 1500})
    resp = raw(emulator, "GET", f"/v1/customers/{seeds.ACME}")
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "2"
    assert resp.headers["retry-after-ms"] == "1500"


def test_commit_then_500_does_not_duplicate_with_the_client(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    emulator.admin("faults", {"p_commit_500": 1.0})

    def verify() -> list[dict[str, Any]] | None:
        found = client.get_billing_provider_configurations(seeds.ACME)
        return found or None

    created = client.set_billing_provider_configurations([STRIPE_ROW], idempotency_key="k-5", verify=verify)
    assert len(created) == 1
    assert len(emulator.admin("state")["billing_provider_configurations"]) == 1


def test_latency_is_added(emulator: RunningEmulator, client: MetronomeClient) -> None:
    emulator.admin("faults", {"latency_ms": 120})
    start = time.perf_counter()
    client.get_customer(seeds.ACME)
    assert time.perf_counter() - start >= 0.12


def test_rate_limit_answers_429_with_retry_after(emulator: RunningEmulator) -> None:
    emulator.admin("faults", {"rate_limit": 5, "rate_burst": 2})
    answers = [raw(emulator, "GET", f"/v1/customers/{seeds.ACME}") for _ in range(6)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "the burst of 2 at 5/s is spent within 6 quick requests"
    # Every 429 says when to come back: within one token's time (200 ms at 5/s), rounded up.
    for answer in limited:
        assert 0 < int(answer.headers["retry-after-ms"]) <= 400
        assert int(answer.headers["Retry-After"]) >= 1


def test_fault_settings_are_checked(emulator: RunningEmulator) -> None:
    admin = {"X-Emulator-Admin-Token": emulator.admin_token}
    resp = httpx.post(f"{emulator.url}/_emulator/faults", json={"p_500": 2}, headers=admin)
    assert resp.status_code == 422
    assert resp.json()["field"] == "p_500"
    resp = httpx.post(f"{emulator.url}/_emulator/faults", json={"p_boom": 0.1}, headers=admin)
    assert "unknown fault setting" in resp.json()["message"]


def test_auth_errors_are_not_retried_by_the_client(emulator: RunningEmulator) -> None:
    bad = MetronomeClient(emulator.url, "wrong-token")
    with pytest.raises(MetronomeAuthError):
        bad.get_customer(seeds.ACME)
    assert [r["status"] for r in emulator.admin("requests")["data"]] == [401]


# -- process-level behaviour ----------------------------------------------------------------------


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with running_emulator(seed=seeds.small_seed(), token=TOKEN, state_file=str(state)) as emu:
        MetronomeClient(emu.url, TOKEN).set_billing_provider_configurations([STRIPE_ROW])
    assert state.exists()
    with running_emulator(seed={"customers": []}, token=TOKEN, state_file=str(state)) as emu:
        configs = emu.admin("state")["billing_provider_configurations"]
        assert [c["customer_id"] for c in configs] == [seeds.ACME]


def test_cli_needs_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "METRONOME_EMULATOR_TOKEN"}
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_metronome.emulator", "--port", "0"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "--token" in out.stderr
