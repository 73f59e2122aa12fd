"""The emulator's customer writes, read against Metronome's docs (issue #14).

- ``POST /v1/customers`` and ``POST /v1/customers/{id}/setIngestAliases``: an ingest
  alias names one customer; "409 Conflict if ingest alias is already in use", and an
  alias moves "only if you first remove it from the original customer. This rule
  applies to both archived and active customers"
  (https://docs.metronome.com/api-reference/idempotency.md).
- ``name`` "will be truncated to 160 characters if the provided name is longer";
  ``ingest_aliases`` has ``maxItems: 2000``, each item ``minLength: 1``,
  ``maxLength: 128`` (https://docs.metronome.com/api-reference/customers/create-a-customer.md).
- setIngestAliases "fully replaces the set of ingest aliases for the given customer"
  (https://docs.metronome.com/api-reference/customers/create-or-update-customer-ingest-aliases.md).
- ``Idempotency-Key``: same key and parameters return the original result; other
  parameters are a 409 (https://docs.metronome.com/api-reference/idempotency.md).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests import seeds

if TYPE_CHECKING:
    from airflow_provider_metronome.emulator.testing import RunningEmulator

SPEC = Path(__file__).resolve().parents[2] / "airflow_provider_metronome" / "emulator" / "openapi.yaml"
CREATE = "/v1/customers"
UNKNOWN = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4aff"


@cache
def _spec() -> dict[str, Any]:
    import yaml

    spec: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return spec


def _validate(schema: dict[str, Any], body: Any) -> None:
    from openapi_schema_validator import OAS30Validator

    OAS30Validator({**schema, "components": _spec()["components"]}).validate(body)


def assert_documented_409(resp: httpx.Response, alias: str) -> None:
    """A 409 with the body the docs give: ``{"message": string}``, here naming the alias."""
    assert resp.status_code == 409, resp.text
    body = resp.json()
    # POST /v1/customers declares its 409 body; every other 4XX has the Error shape
    # (https://docs.metronome.com/api-reference/status-codes.md).
    declared = _spec()["paths"][CREATE]["post"]["responses"]["409"]["content"]["application/json"]["schema"]
    _validate(declared, body)
    _validate({"$ref": "#/components/schemas/Error"}, body)
    assert set(body) == {"message"}
    assert alias in body["message"], body
    assert "already in use" in body["message"], body


def post(emu: RunningEmulator, path: str, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {emu.token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{emu.url}{path}", json=body, headers=headers, timeout=30)


def get(emu: RunningEmulator, path: str) -> httpx.Response:
    return httpx.get(f"{emu.url}{path}", headers={"Authorization": f"Bearer {emu.token}"}, timeout=30)


def set_aliases(emu: RunningEmulator, customer_id: str, aliases: list[str]) -> httpx.Response:
    return post(emu, f"/v1/customers/{customer_id}/setIngestAliases", {"ingest_aliases": aliases})


def customers(emu: RunningEmulator) -> list[dict[str, Any]]:
    state: list[dict[str, Any]] = emu.admin("state")["customers"]
    return state


def aliases_of(emu: RunningEmulator, customer_id: str) -> list[str]:
    found: list[str] = get(emu, f"/v1/customers/{customer_id}").json()["data"]["ingest_aliases"]
    return found


def holder(emu: RunningEmulator, alias: str) -> list[str]:
    return [c["id"] for c in get(emu, f"/v1/customers?ingest_alias={alias}").json()["data"]]


# -- 1. an alias names one customer, active or archived ---------------------------------------


def test_create_with_an_alias_of_an_active_customer_is_409(emulator: RunningEmulator) -> None:
    before = customers(emulator)
    resp = post(emulator, CREATE, {"name": "Acme 2", "ingest_aliases": ["acme-new", "acme"]})
    assert_documented_409(resp, "acme")
    assert customers(emulator) == before, "nothing was created"
    assert holder(emulator, "acme-new") == [], "the free alias of the refused request stays free"


def test_create_with_the_external_id_of_an_active_customer_is_409(emulator: RunningEmulator) -> None:
    # external_id is "(deprecated, use ingest_aliases instead) an alias".
    assert_documented_409(post(emulator, CREATE, {"name": "Acme 2", "external_id": "acme"}), "acme")


def test_set_ingest_aliases_with_an_alias_of_another_active_customer_is_409(
    emulator: RunningEmulator,
) -> None:
    resp = set_aliases(emulator, seeds.GLOBEX, ["globex", "globex-eu", "acme"])
    assert_documented_409(resp, "acme")
    assert aliases_of(emulator, seeds.GLOBEX) == ["globex"], "a refused replace changes nothing"
    assert aliases_of(emulator, seeds.ACME) == ["acme"]


def test_an_archived_customers_aliases_stay_taken(emulator: RunningEmulator) -> None:
    """The docs' rule "applies to both archived and active customers": archived aliases block too."""
    assert_documented_409(post(emulator, CREATE, {"name": "Gone again", "ingest_aliases": ["gone"]}), "gone")
    assert_documented_409(set_aliases(emulator, seeds.ACME, ["acme", "gone"]), "gone")
    assert holder(emulator, "gone") == [], "the lookup lists active customers only"
    archived = get(emulator, "/v1/customers?ingest_alias=gone&only_archived=true").json()["data"]
    assert [c["id"] for c in archived] == [seeds.ARCHIVED]


def test_an_alias_moves_once_its_customer_gives_it_up(emulator: RunningEmulator) -> None:
    """ "Only if you first remove it from the original customer", archived or active."""
    assert set_aliases(emulator, seeds.ARCHIVED, []).status_code == 200
    created = post(emulator, CREATE, {"name": "Gone again", "ingest_aliases": ["gone"]})
    assert created.status_code == 200, created.text
    assert holder(emulator, "gone") == [created.json()["data"]["id"]]

    assert set_aliases(emulator, seeds.ACME, ["acme-2"]).status_code == 200
    assert set_aliases(emulator, seeds.GLOBEX, ["globex", "acme"]).status_code == 200
    assert holder(emulator, "acme") == [seeds.GLOBEX]


def test_a_customer_keeping_its_own_aliases_is_no_conflict(emulator: RunningEmulator) -> None:
    assert set_aliases(emulator, seeds.ACME, ["acme", "acme-eu"]).status_code == 200
    assert set_aliases(emulator, seeds.ACME, ["acme", "acme-eu"]).status_code == 200, "idempotent"
    assert aliases_of(emulator, seeds.ACME) == ["acme", "acme-eu"]


def test_set_ingest_aliases_of_an_unknown_customer_is_404(emulator: RunningEmulator) -> None:
    resp = set_aliases(emulator, UNKNOWN, ["x"])
    assert resp.status_code == 404
    assert holder(emulator, "x") == []


# -- 2. the name is truncated at 160 characters -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("N" * 200, "N" * 160),
        ("N" * 160, "N" * 160),
        ("N" * 159, "N" * 159),
        ("é" * 170, "é" * 160),  # characters, not bytes
    ],
    ids=["200", "160", "159", "non-ascii"],
)
def test_the_name_is_truncated_to_160_characters(emulator: RunningEmulator, name: str, stored: str) -> None:
    resp = post(emulator, CREATE, {"name": name, "ingest_aliases": ["long-name"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["name"] == stored
    assert get(emulator, f"/v1/customers/{resp.json()['data']['id']}").json()["data"]["name"] == stored


# -- 3. ingest_aliases: at most 2,000, each 1 to 128 characters ------------------------------

_TOO_MANY = ([f"a-{i}" for i in range(2001)], "ingest_aliases: 2001 items given, at most 2000 allowed")
_TOO_LONG = (["ok", "x" * 129], "ingest_aliases[1]: 'xxxx")
_EMPTY = (["ok", ""], "ingest_aliases[1]: '' has 0 characters, at least 1 character required")
_REPEATED = (["ok", "ok"], "ingest_aliases: 'ok' is given more than once")
BAD_ALIASES = pytest.mark.parametrize(
    ("aliases", "message"),
    [_TOO_MANY, _TOO_LONG, _EMPTY, _REPEATED],
    ids=["2001", "129", "empty", "repeated"],
)


@BAD_ALIASES
def test_create_refuses_bad_aliases_with_a_clear_400(
    emulator: RunningEmulator, aliases: list[str], message: str
) -> None:
    before = customers(emulator)
    resp = post(emulator, CREATE, {"name": "Bad", "ingest_aliases": aliases})
    assert resp.status_code == 400
    assert resp.json()["message"].startswith(message), resp.json()
    assert len(resp.json()["message"]) < 200, "the message names the limit, not the whole value"
    assert customers(emulator) == before


@BAD_ALIASES
def test_set_ingest_aliases_refuses_bad_aliases_with_a_clear_400(
    emulator: RunningEmulator, aliases: list[str], message: str
) -> None:
    resp = set_aliases(emulator, seeds.ACME, aliases)
    assert resp.status_code == 400
    assert resp.json()["message"].startswith(message), resp.json()
    assert len(resp.json()["message"]) < 200
    assert aliases_of(emulator, seeds.ACME) == ["acme"]


def test_the_too_long_alias_message_states_the_limit(emulator: RunningEmulator) -> None:
    message = set_aliases(emulator, seeds.ACME, ["x" * 129]).json()["message"]
    assert message.endswith("has 129 characters, at most 128 characters allowed"), message


def test_the_limits_themselves_are_accepted(emulator: RunningEmulator) -> None:
    """2,000 aliases, of 1 and of 128 characters: accepted by create and by setIngestAliases."""
    many = ["y", "z" * 128, *[f"m-{i}" for i in range(1998)]]
    created = post(emulator, CREATE, {"name": "Many", "ingest_aliases": many})
    assert created.status_code == 200, created.text
    cid = created.json()["data"]["id"]
    assert aliases_of(emulator, cid) == many
    replaced = [f"r-{i}" for i in range(2000)]
    assert set_aliases(emulator, cid, replaced).status_code == 200
    assert aliases_of(emulator, cid) == replaced


# -- 4. setIngestAliases replaces the whole set -----------------------------------------------


def test_set_ingest_aliases_replaces_the_whole_set(emulator: RunningEmulator) -> None:
    assert set_aliases(emulator, seeds.ACME, ["acme", "acme-eu"]).status_code == 200
    resp = set_aliases(emulator, seeds.ACME, ["acme-eu", "acme-us"])
    assert resp.status_code == 200
    assert resp.content == b"", "a 200 with no content"
    assert aliases_of(emulator, seeds.ACME) == ["acme-eu", "acme-us"]
    assert holder(emulator, "acme") == [], "an alias left out is released..."
    taken = post(emulator, CREATE, {"name": "New Acme", "ingest_aliases": ["acme"]})
    assert taken.status_code == 200, "...for another customer to take"

    assert set_aliases(emulator, seeds.ACME, []).status_code == 200
    assert aliases_of(emulator, seeds.ACME) == []
    assert holder(emulator, "acme-eu") == holder(emulator, "acme-us") == []


# -- 5. Idempotency-Key on POST /v1/customers ---------------------------------------------------


def test_same_key_same_body_replays_the_first_answer(emulator: RunningEmulator) -> None:
    body = {
        "name": "Hooli",
        "ingest_aliases": ["hooli", "hooli-xyz"],
        "custom_fields": {"region": "emea"},
        "customer_billing_provider_configurations": [
            {"billing_provider": "stripe", "delivery_method": "direct_to_billing_provider",
             "configuration": {"stripe_customer_id": "cus_hooli"}},
        ],
    }  # fmt: skip
    before = len(customers(emulator))
    first = post(emulator, CREATE, body, key="create-hooli")
    second = post(emulator, CREATE, body, key="create-hooli")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(customers(emulator)) == before + 1, "no second customer"
    state = emulator.admin("state")
    configs = [
        c for c in state["billing_provider_configurations"] if c["customer_id"] == first.json()["data"]["id"]
    ]
    assert len(configs) == 1, "nor a second configuration"


def test_same_key_other_body_is_409(emulator: RunningEmulator) -> None:
    assert post(emulator, CREATE, {"name": "Hooli", "ingest_aliases": ["hooli"]}, key="k").status_code == 200
    other = post(emulator, CREATE, {"name": "Hooli", "ingest_aliases": ["hooli-2"]}, key="k")
    assert other.status_code == 409
    assert "already used with different parameters" in other.json()["message"]
    assert holder(emulator, "hooli-2") == []


def test_without_a_key_the_alias_is_the_natural_guard(emulator: RunningEmulator) -> None:
    """No key: a repeated create with aliases is a 409 on the alias; without aliases it creates twice."""
    body = {"name": "Hooli", "ingest_aliases": ["hooli"]}
    assert post(emulator, CREATE, body).status_code == 200
    assert_documented_409(post(emulator, CREATE, body), "hooli")
    before = len(customers(emulator))
    assert post(emulator, CREATE, {"name": "No alias"}).status_code == 200
    assert post(emulator, CREATE, {"name": "No alias"}).status_code == 200
    assert len(customers(emulator)) == before + 2


def test_set_ingest_aliases_replays_under_its_key(emulator: RunningEmulator) -> None:
    path = f"/v1/customers/{seeds.ACME}/setIngestAliases"
    first = post(emulator, path, {"ingest_aliases": ["acme", "acme-eu"]}, key="aliases-1")
    second = post(emulator, path, {"ingest_aliases": ["acme", "acme-eu"]}, key="aliases-1")
    assert first.status_code == second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert post(emulator, path, {"ingest_aliases": ["acme"]}, key="aliases-1").status_code == 409
    assert aliases_of(emulator, seeds.ACME) == ["acme", "acme-eu"]
