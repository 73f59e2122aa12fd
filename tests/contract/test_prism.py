"""Contract test: every hook method's requests validate against the shared OpenAPI spec.

Prism (``@stoplight/prism-cli``, installed by ``make test`` into ``.cache/prism``)
serves ``openapi.yaml`` in mock mode with ``--errors``: a request that violates the
spec gets an error answer (which the hook raises) and a violation line in Prism's log
(which this test reads).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]
SHARED_SPEC = ROOT.parent / "shared" / "metronome-api" / "openapi.yaml"
BUNDLED_SPEC = ROOT / "airflow_provider_metronome" / "emulator" / "openapi.yaml"
CUSTOMER = "6a37bb88-8538-48c5-b37b-a41c836328bd"
DM = "4422e46f-b374-4159-97e3-300208cdb2e2"


def _prism_bin() -> str:
    candidate = os.environ.get("PRISM_BIN") or str(
        ROOT / ".cache" / "prism" / "node_modules" / ".bin" / "prism"
    )
    if Path(candidate).exists():
        return candidate
    found = shutil.which("prism")
    if found:
        return found
    pytest.fail(
        "Prism is not installed: run `make test` (it installs @stoplight/prism-cli into .cache/prism)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prism:
    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def violations(self) -> list[str]:
        text = self.log.read_text(errors="replace")
        return [line for line in text.splitlines() if "violation" in line.lower() or "✖" in line]


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    spec = SHARED_SPEC if SHARED_SPEC.exists() else BUNDLED_SPEC
    port = _free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    handle = log.open("w")
    proc = subprocess.Popen(
        [_prism_bin(), "mock", str(spec), "-h", "127.0.0.1", "-p", str(port), "--errors"],
        stdout=handle, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(f"{url}/v1/customers", headers={"Authorization": "Bearer t"}, timeout=2)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                handle.close()
                pytest.fail(f"Prism did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
    yield Prism(proc, url, log)
    proc.terminate()
    proc.wait(timeout=20)
    handle.close()


@pytest.fixture
def client(prism: Prism) -> MetronomeClient:
    return MetronomeClient(prism.url, "contract-token", retry=RetryPolicy(max_retries=0))


@pytest.fixture(autouse=True)
def _no_violations(prism: Prism, request: pytest.FixtureRequest) -> Iterator[None]:
    before = len(prism.violations())
    yield
    if request.node.name == "test_the_check_catches_a_bad_request":
        return
    new = prism.violations()[before:]
    assert new == [], "Prism reported spec violations:\n" + "\n".join(new)


def test_set_billing_provider_configurations(client: MetronomeClient) -> None:
    # One configuration per call: Prism answers with the spec's one-item example, and the
    # client checks that Metronome answered one item per configuration sent.
    by_name = client.set_billing_provider_configurations(
        [{"customer_id": CUSTOMER, "billing_provider": "stripe", "delivery_method": "direct_to_billing_provider",
          "configuration": {"stripe_customer_id": "cus_1", "stripe_collection_method": "charge_automatically"}}],
        idempotency_key="contract-key-1",
    )  # fmt: skip
    by_id = client.set_billing_provider_configurations(
        [{"customer_id": CUSTOMER, "billing_provider": "aws_marketplace", "delivery_method_id": DM,
          "configuration": {"aws_customer_id": "a", "aws_product_code": "p", "aws_region": "us-east-1"},
          "tax_provider": "avalara"}],
        idempotency_key="contract-key-1b",
    )  # fmt: skip
    assert len(by_name) == len(by_id) == 1
    assert by_name[0]["id"]


def test_get_billing_provider_configurations(client: MetronomeClient) -> None:
    assert isinstance(client.get_billing_provider_configurations(CUSTOMER, include_archived=True), list)


def test_archive_billing_provider_configurations(client: MetronomeClient) -> None:
    result = client.archive_billing_provider_configurations(CUSTOMER, [DM], idempotency_key="contract-key-2")
    assert "customer_id" in result


def test_list_configured_billing_providers(client: MetronomeClient) -> None:
    assert isinstance(client.list_configured_billing_providers(), list)


def test_upsert_avalara_credentials(client: MetronomeClient) -> None:
    client.upsert_avalara_credentials(
        [DM], avalara_environment="SANDBOX", avalara_username="u", avalara_password="p",
        commit_transactions=True, idempotency_key="contract-key-3",
    )  # fmt: skip


def test_customers(client: MetronomeClient) -> None:
    assert isinstance(client.list_customers(page_size=10), list)
    assert isinstance(client.list_customers(customer_ids=[CUSTOMER], only_archived=True), list)
    client.find_customer_by_ingest_alias("team@example.com")
    assert client.get_customer(CUSTOMER)["id"]
    assert client.test_connection()[0]


def test_engine_requests(client: MetronomeClient) -> None:
    """The engine's own reads and writes, create and replace, pass the contract too."""
    rows = [
        {"customer_id": CUSTOMER, "billing_provider": "stripe", "delivery_method_id": DM,
         "configuration": {"stripe_customer_id": "cus_NEW"}},
    ]  # fmt: skip
    report = BillingConfigSync(client, SyncOptions(mode="replace")).run(rows)
    assert report.rejected == 0, report.rejections


def test_the_check_catches_a_bad_request(prism: Prism, client: MetronomeClient) -> None:
    """The canary: a request that breaks the spec is refused and logged, so the checks above mean something."""
    from airflow_provider_metronome.exceptions import MetronomeBadRequestError

    before = len(prism.violations())
    with pytest.raises(MetronomeBadRequestError):
        client.set_billing_provider_configurations([{"customer_id": "nope", "billing_provider": "paypal"}])
    new = prism.violations()[before:]
    assert any("customer_id" in line for line in new), new
