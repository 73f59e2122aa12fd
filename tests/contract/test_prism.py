"""Contract test: every hook method's requests validate against the shared OpenAPI spec.

Prism (``@stoplight/prism-cli``, installed by ``make test`` into ``.cache/prism``)
serves ``openapi.yaml`` in mock mode with ``--errors``: a request that violates the
spec gets an error answer (which the hook raises) and a violation line in Prism's log
(which this test reads).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


# One line per request; Prism logs a second "[HTTP SERVER]" line ("Request terminated
# with error") for a request it refuses, which is not another request.
_RECEIVED = re.compile(r"\[HTTP SERVER\] (\w+) (\S+) .*Request received")


class Prism:
    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def violations(self) -> list[str]:
        text = self.log.read_text(errors="replace")
        return [line for line in text.splitlines() if "violation" in line.lower() or "✖" in line]

    def requests(self) -> list[tuple[str, str, bool | None]]:
        """Every request Prism logged: method, path, and whether it passed the spec's validation."""
        seen: list[tuple[str, str, bool | None]] = []
        for line in self.log.read_text(errors="replace").splitlines():
            received = _RECEIVED.search(line)
            if received:
                seen.append((received.group(1).upper(), received.group(2).split("?")[0], None))
            elif seen and seen[-1][2] is None and "[VALIDATOR]" in line:
                if "did not pass the validation rules" in line:
                    seen[-1] = (*seen[-1][:2], False)
                elif "passed the validation rules" in line:
                    seen[-1] = (*seen[-1][:2], True)
        return seen

    def requests_since(self, before: int, count: int) -> list[tuple[str, str, bool | None]]:
        """The ``count`` requests logged after the first ``before``, once each has its verdict."""
        deadline = time.monotonic() + 5
        while True:
            new = self.requests()[before:]
            if (len(new) >= count and all(v is not None for *_, v in new)) or time.monotonic() > deadline:
                return new
            time.sleep(0.05)


def _spec_path() -> Path:
    return SHARED_SPEC if SHARED_SPEC.exists() else BUNDLED_SPEC


@cache
def _spec() -> dict[str, Any]:
    import yaml

    spec: dict[str, Any] = yaml.safe_load(_spec_path().read_text())
    return spec


def assert_items_follow_the_spec(method: str, path: str, items: list[Any]) -> None:
    """Each item validates against the ``data`` items of the operation's 200 answer (formats included)."""
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    spec = _spec()
    schema = spec["paths"][path][method.lower()]["responses"]["200"]["content"]["application/json"]["schema"]
    data = schema["properties"]["data"]
    item_schema = data.get("items", data)
    validator = OAS30Validator(
        {**item_schema, "components": spec["components"]}, format_checker=oas30_format_checker
    )
    assert items, f"Prism answers {method} {path} with the spec's example or schema: not nothing"
    for item in items:
        validator.validate(item)


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    spec = _spec_path()
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
    if request.node.name.startswith("test_the_check_catches_a_bad_"):
        return
    new = prism.violations()[before:]
    assert new == [], "Prism reported spec violations:\n" + "\n".join(new)


SET = ("POST", "/v1/setCustomerBillingProviderConfigurations", True)


def test_set_billing_provider_configurations(prism: Prism, client: MetronomeClient) -> None:
    """By delivery method name and by id (with a tax provider): both requests pass the spec."""
    before = len(prism.requests())
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
    assert_items_follow_the_spec(*SET[:2], [*by_name, *by_id])
    assert prism.requests_since(before, 2) == [SET, SET]


def test_get_billing_provider_configurations(prism: Prism, client: MetronomeClient) -> None:
    """The request passes the spec; every configuration returned has the fields the spec requires."""
    before = len(prism.requests())
    configurations = client.get_billing_provider_configurations(CUSTOMER, include_archived=True)
    assert_items_follow_the_spec("POST", "/v1/getCustomerBillingProviderConfigurations", configurations)
    assert all(c["customer_id"] and c["delivery_method_id"] for c in configurations)
    assert prism.requests_since(before, 1) == [("POST", "/v1/getCustomerBillingProviderConfigurations", True)]


def test_archive_billing_provider_configurations(prism: Prism, client: MetronomeClient) -> None:
    """The request passes the spec; the answer echoes a customer id and the archived ids, as the schema says."""
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    before = len(prism.requests())
    result = client.archive_billing_provider_configurations(CUSTOMER, [DM], idempotency_key="contract-key-2")
    schema = {
        "$ref": "#/components/schemas/CustomerBillingProviderArchivePayload",
        "components": _spec()["components"],
    }
    OAS30Validator(schema, format_checker=oas30_format_checker).validate(result)
    assert isinstance(result["customer_billing_provider_configuration_ids"], list)
    assert prism.requests_since(before, 1) == [
        ("POST", "/v1/archiveCustomerBillingProviderConfigurations", True)
    ]


def test_list_configured_billing_providers(prism: Prism, client: MetronomeClient) -> None:
    """The paged request passes the spec; each delivery method has the spec's fields, each id once."""
    before = len(prism.requests())
    methods = client.list_configured_billing_providers()
    assert_items_follow_the_spec("POST", "/v1/listConfiguredBillingProviders", methods)
    ids = [m["delivery_method_id"] for m in methods]
    assert len(ids) == len(set(ids))
    assert prism.requests_since(before, 1) == [("POST", "/v1/listConfiguredBillingProviders", True)], (
        "the example's next_page is null: one page"
    )


def test_upsert_avalara_credentials(prism: Prism, client: MetronomeClient) -> None:
    """The request (password, environment, ids, commit flag) passes the spec; the empty answer is accepted."""
    before = len(prism.requests())
    client.upsert_avalara_credentials(
        [DM], avalara_environment="SANDBOX", avalara_username="u", avalara_password="p",
        commit_transactions=True, idempotency_key="contract-key-3",
    )  # fmt: skip
    assert prism.requests_since(before, 1) == [("POST", "/v1/upsertAvalaraCredentials", True)]


def test_customers(prism: Prism, client: MetronomeClient) -> None:
    """Listing (paged, filtered), the alias lookup, one customer, and the connection test all pass the spec."""
    before = len(prism.requests())
    listed = client.list_customers(page_size=10)
    filtered = client.list_customers(customer_ids=[CUSTOMER], only_archived=True)
    found = client.find_customer_by_ingest_alias("team@example.com")
    assert found is not None
    assert_items_follow_the_spec("GET", "/v1/customers", [*listed, *filtered, found])
    one = client.get_customer(CUSTOMER)
    assert_items_follow_the_spec("GET", "/v1/customers/{customer_id}", [one])
    ok, message = client.test_connection()
    assert ok, message
    seen = prism.requests_since(before, 5)
    assert seen[:4] == [("GET", "/v1/customers", True)] * 3 + [("GET", f"/v1/customers/{CUSTOMER}", True)]
    assert len(seen) >= 5, "the connection test sent a request too"
    assert all(verdict for *_, verdict in seen), seen


# -- customers the sync creates, and aliases it adds (issue #14) -----------------------------

CREATE = ("POST", "/v1/customers", True)
# A create request as the migration sends it: several aliases, custom fields, and
# inline configurations by delivery method name and by id, one with a tax provider.
CONFIGURATIONS: list[dict[str, Any]] = [
    {"billing_provider": "stripe", "delivery_method": "direct_to_billing_provider",
     "configuration": {"stripe_customer_id": "cus_123", "stripe_collection_method": "auto_charge_payment_intent"},
     "tax_provider": "avalara"},
    {"billing_provider": "aws_marketplace", "delivery_method_id": DM,
     "configuration": {"aws_customer_id": "a", "aws_product_code": "p", "aws_region": "us-east-1",
                       "aws_is_subscription_product": False}},
    {"billing_provider": "netsuite", "delivery_method": "direct_to_billing_provider",
     "configuration": {"netsuite_customer_id": "12345"}},
]  # fmt: skip


def _assert_is_a_customer(customer: Any) -> None:
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    schema = {"$ref": "#/components/schemas/Customer", "components": _spec()["components"]}
    OAS30Validator(schema, format_checker=oas30_format_checker).validate(customer)


def test_create_customer(prism: Prism, client: MetronomeClient) -> None:
    """Name, aliases, custom fields and inline configurations: the request passes the spec."""
    before = len(prism.requests())
    customer = client.create_customer(
        name="Example, Inc.",
        ingest_aliases=["team@example.com", "example-eu", "x" * 128],
        custom_fields={"x_account_id": "KyVnHhSBWl7eY2bl", "region": "emea"},
        configurations=CONFIGURATIONS,
        idempotency_key="contract-key-4",
    )
    _assert_is_a_customer(customer)
    minimal = client.create_customer(name="Minimal", ingest_aliases=["minimal"])
    _assert_is_a_customer(minimal)
    assert prism.requests_since(before, 2) == [CREATE, CREATE]


def test_create_customer_as_the_sync_builds_it(prism: Prism, client: MetronomeClient) -> None:
    """The engine's own request (NewCustomer from staged rows), sent as the sync sends it, passes too."""
    from airflow_provider_metronome.sync.customers import Created, NewCustomer, create_customer
    from airflow_provider_metronome.sync.staging import StagedRow

    rows = [
        StagedRow(
            row=number, key=f"row {number}", customer_id="", billing_provider=item["billing_provider"],
            delivery_method_id=item.get("delivery_method_id", ""),
            delivery_method=item.get("delivery_method", "direct_to_billing_provider"),
            configuration=item["configuration"], tax_provider=item.get("tax_provider"),
            given_delivery="delivery_method_id" if "delivery_method_id" in item else "delivery_method",
            ingest_alias="team@example.com", customer_name="Example, Inc.",
            aliases=["example-eu", "example-us"], custom_fields={"x_account_id": "KyVnHhSBWl7eY2bl"},
        )
        for number, item in enumerate(CONFIGURATIONS, start=1)
    ]  # fmt: skip
    new = NewCustomer("team@example.com", rows)
    assert new.disagreement() is None
    before = len(prism.requests())
    outcome = create_customer(client, new, read_back=False)
    assert isinstance(outcome, Created), outcome
    assert prism.requests_since(before, 1) == [CREATE]


def test_set_ingest_aliases(prism: Prism, client: MetronomeClient) -> None:
    """The full-replace request passes the spec (with and without a key); the empty 200 is accepted."""
    before = len(prism.requests())
    client.set_ingest_aliases(CUSTOMER, ["team@example.com", "example-eu"], idempotency_key="contract-key-5")
    client.set_ingest_aliases(CUSTOMER, ["team@example.com"])
    path = f"/v1/customers/{CUSTOMER}/setIngestAliases"
    assert prism.requests_since(before, 2) == [("POST", path, True)] * 2


def test_unfiltered_customer_listing(
    prism: Prism, client: MetronomeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``iter_customers()`` with no filter (the bulk alias resolution's listing) passes the spec."""
    sent: list[httpx.URL] = []
    send = httpx.Client.send

    def recording_send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        sent.append(request.url)
        return send(self, request, **kwargs)

    # Prism's log leaves the query string out: read it from the request sent.
    monkeypatch.setattr(httpx.Client, "send", recording_send)
    before = len(prism.requests())
    listed = list(client.iter_customers())
    assert_items_follow_the_spec("GET", "/v1/customers", listed)
    assert all(c["ingest_aliases"] is not None for c in listed)
    assert prism.requests_since(before, 1) == [("GET", "/v1/customers", True)], (
        "the example's next_page is null: one page"
    )
    assert [(url.path, url.query) for url in sent] == [("/v1/customers", b"limit=100")], (
        "no filter, the largest documented page"
    )


def test_engine_requests(prism: Prism, client: MetronomeClient) -> None:
    """The engine's own reads and writes, create and replace, pass the contract too."""
    before = len(prism.requests())
    rows = [
        {"customer_id": CUSTOMER, "billing_provider": "stripe", "delivery_method_id": DM,
         "configuration": {"stripe_customer_id": "cus_NEW"}},
    ]  # fmt: skip
    report = BillingConfigSync(client, SyncOptions(mode="replace")).run(rows)
    assert report.rejected == 0, report.rejections
    seen = prism.requests_since(before, 3)
    assert all(verdict for *_, verdict in seen), seen
    assert {path for _m, path, _v in seen} >= {
        "/v1/listConfiguredBillingProviders",
        "/v1/getCustomerBillingProviderConfigurations",
        "/v1/setCustomerBillingProviderConfigurations",
        "/v1/archiveCustomerBillingProviderConfigurations",
    }, "the engine read the delivery methods and the customer's configurations, created, and archived"


def test_the_check_catches_a_bad_request(prism: Prism, client: MetronomeClient) -> None:
    """The canary: a request that breaks the spec is refused and logged, so the checks above mean something."""
    from airflow_provider_metronome.exceptions import MetronomeBadRequestError

    before = len(prism.violations())
    received = len(prism.requests())
    with pytest.raises(MetronomeBadRequestError):
        client.set_billing_provider_configurations([{"customer_id": "nope", "billing_provider": "paypal"}])
    new = prism.violations()[before:]
    assert any("customer_id" in line for line in new), new
    assert prism.requests_since(received, 1) == [(*SET[:2], False)], (
        "the verdicts read from the log mean something"
    )


def test_the_check_catches_a_bad_customer(prism: Prism, client: MetronomeClient) -> None:
    """The canary for the customer writes: an alias of 129 characters breaks the spec and is logged."""
    from airflow_provider_metronome.exceptions import MetronomeBadRequestError

    before = len(prism.violations())
    received = len(prism.requests())
    with pytest.raises(MetronomeBadRequestError):
        client.create_customer(name="Too long", ingest_aliases=["x" * 129])
    new = prism.violations()[before:]
    assert any("ingest_aliases" in line for line in new), new
    assert prism.requests_since(received, 1) == [(*CREATE[:2], False)]
