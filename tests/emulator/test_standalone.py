"""The emulator stands alone: its own rules, and the documented request shapes it accepts."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests import seeds

if TYPE_CHECKING:
    from airflow_provider_metronome.emulator.testing import RunningEmulator

EMULATOR = Path(__file__).resolve().parents[2] / "airflow_provider_metronome" / "emulator"
PROVIDER_PACKAGES = ("models", "sync", "client", "hooks", "operators")
SET_PATH = "/v1/setCustomerBillingProviderConfigurations"
STRIPE_ROW: dict[str, Any] = {
    "customer_id": seeds.ACME,
    "billing_provider": "stripe",
    "configuration": {"stripe_customer_id": "cus_A", "stripe_collection_method": "charge_automatically"},
}


def _post(emu: RunningEmulator, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{emu.url}{path}", json=body, headers={"Authorization": f"Bearer {emu.token}"})


def _list(emu: RunningEmulator, query: str) -> httpx.Response:
    return httpx.get(f"{emu.url}/v1/customers?{query}", headers={"Authorization": f"Bearer {emu.token}"})


# -- no import of the provider --------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(EMULATOR.glob("*.py")), ids=lambda p: p.name)
def test_emulator_source_imports_nothing_of_the_provider(source: Path) -> None:
    imported: list[str] = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
        elif isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
    foreign = [
        m
        for m in imported
        if m.startswith("airflow_provider_metronome")
        and not m.startswith("airflow_provider_metronome.emulator")
    ]
    assert foreign == []


def test_loading_the_emulator_loads_no_provider_module() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_metronome.emulator.__main__, airflow_provider_metronome.emulator.app\n"
        "import airflow_provider_metronome.emulator.testing\n"
        "print(sorted(m for m in sys.modules if m.startswith('airflow_provider_metronome.')"
        " and not m.startswith('airflow_provider_metronome.emulator')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


# -- delivery_method and delivery_method_id together ------------------------------------------------


def test_delivery_method_with_its_matching_id_is_accepted(emulator: RunningEmulator) -> None:
    """The docs need at least one of the two; the official SDKs send both when given both."""
    row = {
        **STRIPE_ROW,
        "delivery_method": "direct_to_billing_provider",
        "delivery_method_id": seeds.STRIPE_DM,
    }
    resp = _post(emulator, SET_PATH, {"data": [row]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["delivery_method_id"] == seeds.STRIPE_DM


def test_both_pick_one_of_two_stripe_accounts(emulator: RunningEmulator) -> None:
    emulator.admin("reset", seeds.small_seed(two_stripe_accounts=True))
    row = {
        **STRIPE_ROW,
        "delivery_method": "direct_to_billing_provider",
        "delivery_method_id": seeds.STRIPE_DM_2,
    }
    resp = _post(emulator, SET_PATH, {"data": [row]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["delivery_method_id"] == seeds.STRIPE_DM_2


def test_delivery_method_that_does_not_match_its_id_is_400(emulator: RunningEmulator) -> None:
    row = {**STRIPE_ROW, "delivery_method": "aws_sqs", "delivery_method_id": seeds.STRIPE_DM}
    resp = _post(
        emulator, SET_PATH, {"data": [STRIPE_ROW | {"delivery_method": "direct_to_billing_provider"}, row]}
    )
    assert resp.status_code == 400
    message = resp.json()["message"]
    assert message.startswith("data[1].delivery_method: 'aws_sqs' does not match delivery method")
    assert seeds.STRIPE_DM in message
    assert emulator.admin("state")["billing_provider_configurations"] == [], "all or nothing"


def test_neither_delivery_method_nor_id_is_400(emulator: RunningEmulator) -> None:
    resp = _post(emulator, SET_PATH, {"data": [STRIPE_ROW]})
    assert resp.status_code == 400
    assert resp.json()["message"] == "data[0]: delivery_method_id or delivery_method is required"


def test_create_customer_accepts_both_too(emulator: RunningEmulator) -> None:
    body = {
        "name": "Both",
        "ingest_aliases": ["both-1"],
        "customer_billing_provider_configurations": [
            {k: v for k, v in STRIPE_ROW.items() if k != "customer_id"}
            | {"delivery_method": "direct_to_billing_provider", "delivery_method_id": seeds.STRIPE_DM}
        ],
    }
    resp = _post(emulator, "/v1/customers", body)
    assert resp.status_code == 200, resp.text


# -- GET /v1/customers?salesforce_account_ids= --------------------------------------------------------


SF_A, SF_B, SF_C = "0015500001WO1ZiABL", "0015500001WO1ZiABM", "0015500001WO1ZiABN"


@pytest.fixture
def salesforce(emulator: RunningEmulator) -> RunningEmulator:
    seed = seeds.small_seed()
    accounts = {seeds.ACME: SF_A, seeds.GLOBEX: SF_B, seeds.ARCHIVED: SF_C}
    for customer in seed["customers"]:
        if customer["id"] in accounts:
            customer["salesforce_account_id"] = accounts[customer["id"]]
    emulator.admin("reset", seed)
    return emulator


def _ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [c["id"] for c in resp.json()["data"]]


def test_salesforce_account_ids_filter_repeated_and_comma_separated(salesforce: RunningEmulator) -> None:
    assert _ids(_list(salesforce, f"salesforce_account_ids={SF_A}")) == [seeds.ACME]
    both = [seeds.ACME, seeds.GLOBEX]
    assert _ids(_list(salesforce, f"salesforce_account_ids={SF_A}&salesforce_account_ids={SF_B}")) == both
    assert _ids(_list(salesforce, f"salesforce_account_ids={SF_B},{SF_A}")) == both
    assert _ids(_list(salesforce, "salesforce_account_ids=0015500001WO1ZiXXX")) == []


def test_salesforce_account_ids_shows_the_account_and_combines_with_other_filters(
    salesforce: RunningEmulator,
) -> None:
    got = _list(salesforce, f"salesforce_account_ids={SF_A}").json()["data"][0]
    assert got["customer_config"] == {"salesforce_account_id": SF_A}
    assert _ids(_list(salesforce, f"salesforce_account_ids={SF_A},{SF_B}&customer_ids={seeds.GLOBEX}")) == [
        seeds.GLOBEX
    ]
    assert _ids(_list(salesforce, f"salesforce_account_ids={SF_A}&ingest_alias=globex")) == []
    assert _ids(_list(salesforce, f"salesforce_account_ids={SF_A}&ingest_alias=acme")) == [seeds.ACME]
    # Archived customers only with only_archived, as for every other filter.
    assert _ids(_list(salesforce, f"salesforce_account_ids={SF_C}")) == []
    assert _ids(_list(salesforce, f"salesforce_account_ids={SF_C}&only_archived=true")) == [seeds.ARCHIVED]


def test_more_than_100_salesforce_account_ids_is_400(salesforce: RunningEmulator) -> None:
    resp = _list(salesforce, "salesforce_account_ids=" + ",".join(f"sf{i}" for i in range(101)))
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("salesforce_account_ids:")


def test_the_official_sdk_filters_by_salesforce_account_ids(salesforce: RunningEmulator) -> None:
    from metronome import Metronome

    sdk = Metronome(bearer_token=salesforce.token, base_url=salesforce.url, max_retries=0)
    page = sdk.v1.customers.list(salesforce_account_ids=[SF_B, SF_A])
    assert sorted(c.id for c in page) == sorted([seeds.ACME, seeds.GLOBEX])


def test_salesforce_account_survives_a_state_dump(salesforce: RunningEmulator) -> None:
    salesforce.admin("reset", salesforce.admin("state"))
    assert _ids(_list(salesforce, f"salesforce_account_ids={SF_B}")) == [seeds.GLOBEX]
