"""The emulator's data and the API semantics, free of HTTP.

Each ``op_*`` method takes the parsed request and returns ``(status, body)``. The
HTTP layer (:mod:`.app`) does auth, faults, schema validation and idempotency.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.models.rules import configuration_problems

if TYPE_CHECKING:
    from collections.abc import Iterable

Answer = tuple[int, Any]

# listConfiguredBillingProviders' cursor is declared as a UUID: encode the offset in one.
_CURSOR_PREFIX = "00000000-0000-4000-8000-"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str) -> Answer:
    return status, {"message": message}


def encode_offset_cursor(offset: int) -> str:
    return f"{_CURSOR_PREFIX}{offset:012x}"


def decode_offset_cursor(cursor: str) -> int | None:
    if not cursor.startswith(_CURSOR_PREFIX):
        return None
    try:
        return int(cursor[len(_CURSOR_PREFIX) :], 16)
    except ValueError:
        return None


class EmulatorState:
    """Customers, delivery methods, configurations, tax credentials and the idempotency cache.

    :param providers_page_size: page size of ``listConfiguredBillingProviders``.
    """

    def __init__(self, *, providers_page_size: int = 50) -> None:
        self.providers_page_size = providers_page_size
        self.lock = threading.RLock()
        self.reset()

    # -- lifecycle ------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything."""
        self.customers: dict[str, dict[str, Any]] = {}
        self.customer_order: list[str] = []
        self.alias_owner: dict[str, str] = {}
        self.configs: dict[str, list[dict[str, Any]]] = {}
        self.delivery_methods: list[dict[str, Any]] = []
        self.dm_by_id: dict[str, dict[str, Any]] = {}
        self.avalara: dict[str, dict[str, Any]] = {}
        self.anrok: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, tuple[str, int, Any]] = {}
        self.dirty = False

    def load(self, data: dict[str, Any]) -> None:
        """Add the customers, delivery methods and configurations of a seed or state dump.

        :param data: ``{"customers": [...], "delivery_methods": [...],
            "billing_provider_configurations": [...], "avalara_credentials": {...}}``.
        """
        for dm in data.get("delivery_methods", []):
            record = {
                "billing_provider": dm["billing_provider"],
                "delivery_method": dm.get("delivery_method", "direct_to_billing_provider"),
                "delivery_method_id": dm.get("delivery_method_id") or str(uuid.uuid4()),
                "delivery_method_configuration": dm.get("delivery_method_configuration", {}),
            }
            self.delivery_methods.append(record)
            self.dm_by_id[record["delivery_method_id"]] = record
        for c in data.get("customers", []):
            self._add_customer(
                name=c.get("name", c.get("id", "customer")),
                ingest_aliases=list(c.get("ingest_aliases", [])),
                customer_id=c.get("id"),
                archived_at=c.get("archived_at") or (_now() if c.get("archived") else None),
                external_id=c.get("external_id"),
                custom_fields=c.get("custom_fields"),
            )
        for cfg in data.get("billing_provider_configurations", []):
            record = dict(cfg)
            record.setdefault("id", str(uuid.uuid4()))
            record.setdefault("archived_at", None)
            dm = self.dm_by_id.get(record.get("delivery_method_id", ""))
            if dm is not None:
                record.setdefault("delivery_method", dm["delivery_method"])
                record.setdefault("delivery_method_configuration", dm["delivery_method_configuration"])
            self.configs.setdefault(record["customer_id"], []).append(record)
        self.avalara.update(data.get("avalara_credentials", {}))
        self.anrok.update(data.get("anrok_api_tokens", {}))
        self.dirty = True

    def dump(self) -> dict[str, Any]:
        """Everything, in the shape :meth:`load` reads (secrets are stored only as hashes)."""
        return {
            "customers": [self.customers[cid] for cid in self.customer_order],
            "delivery_methods": list(self.delivery_methods),
            "billing_provider_configurations": [
                cfg for cid in self.customer_order for cfg in self.configs.get(cid, [])
            ],
            "avalara_credentials": self.avalara,
            "anrok_api_tokens": self.anrok,
        }

    def save(self, path: str) -> None:
        """Write :meth:`dump` atomically to ``path``.

        :param path: the state file.
        """
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.dump(), fh)
        os.replace(tmp, path)
        self.dirty = False

    # -- helpers ----------------------------------------------------------------------

    def _add_customer(
        self,
        *,
        name: str,
        ingest_aliases: list[str],
        customer_id: str | None = None,
        archived_at: str | None = None,
        external_id: str | None = None,
        custom_fields: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        cid = customer_id or str(uuid.uuid4())
        stamp = _now()
        record = {
            "id": cid,
            "external_id": external_id or (ingest_aliases[0] if ingest_aliases else cid),
            "ingest_aliases": ingest_aliases,
            "name": name[:160],
            "customer_config": {"salesforce_account_id": None},
            "custom_fields": custom_fields or {},
            "created_at": stamp,
            "updated_at": stamp,
            "archived_at": archived_at,
        }
        self.customers[cid] = record
        self.customer_order.append(cid)
        for alias in ingest_aliases:
            self.alias_owner[alias] = cid
        return record

    def _alias_taken(self, aliases: Iterable[str], owner: str | None) -> str | None:
        for alias in aliases:
            holder = self.alias_owner.get(alias)
            if holder is not None and holder != owner:
                return alias
        return None

    def _match_delivery_methods(self, provider: str, method: str) -> list[dict[str, Any]]:
        return [
            dm
            for dm in self.delivery_methods
            if dm["billing_provider"] == provider and dm["delivery_method"] == method
        ]

    # -- customers ----------------------------------------------------------------------

    def op_create_customer(self, body: dict[str, Any]) -> Answer:
        aliases = list(body.get("ingest_aliases") or [])
        if body.get("external_id"):
            aliases = [body["external_id"], *[a for a in aliases if a != body["external_id"]]]
        if len(set(aliases)) != len(aliases):
            return _error(400, "ingest_aliases: contains duplicates")
        taken = self._alias_taken(aliases, None)
        if taken is not None:
            return _error(409, f"ingest alias {taken!r} is already in use by another customer")
        configs = body.get("customer_billing_provider_configurations") or []
        record = self._add_customer(
            name=body["name"],
            ingest_aliases=aliases,
            external_id=body.get("external_id"),
            custom_fields=body.get("custom_fields"),
        )
        if configs:
            items = [{**item, "customer_id": record["id"]} for item in configs]
            status, answer = self.op_set_configurations({"data": items})
            if status != 200:
                self.customers.pop(record["id"])
                self.customer_order.pop()
                for alias in aliases:
                    self.alias_owner.pop(alias, None)
                return status, answer
        self.dirty = True
        return 200, {
            "data": {k: record[k] for k in ("id", "external_id", "ingest_aliases", "name", "custom_fields")}
        }

    def op_list_customers(
        self,
        *,
        limit: int,
        next_page: str | None,
        ingest_alias: str | None,
        customer_ids: list[str] | None,
        only_archived: bool,
    ) -> Answer:
        if ingest_alias is not None:
            owner = self.alias_owner.get(ingest_alias)
            candidates = [owner] if owner else []
        elif customer_ids is not None:
            candidates = [cid for cid in customer_ids if cid in self.customers]
        else:
            candidates = self.customer_order
        selected = [cid for cid in candidates if bool(self.customers[cid]["archived_at"]) == only_archived]
        offset = 0
        if next_page:
            try:
                offset = int(next_page)
            except ValueError:
                return _error(400, f"next_page: invalid cursor {next_page!r}")
        page = selected[offset : offset + limit]
        more = offset + limit < len(selected)
        return 200, {
            "data": [self.customers[cid] for cid in page],
            "next_page": str(offset + limit) if more else None,
        }

    def op_get_customer(self, customer_id: str) -> Answer:
        record = self.customers.get(customer_id)
        if record is None:
            return _error(404, f"customer {customer_id} not found")
        return 200, {"data": record}

    def op_set_ingest_aliases(self, customer_id: str, body: dict[str, Any]) -> Answer:
        record = self.customers.get(customer_id)
        if record is None:
            return _error(404, f"customer {customer_id} not found")
        aliases = list(body["ingest_aliases"])
        taken = self._alias_taken(aliases, customer_id)
        if taken is not None:
            return _error(409, f"ingest alias {taken!r} is already in use by another customer")
        for alias in record["ingest_aliases"]:
            self.alias_owner.pop(alias, None)
        for alias in aliases:
            self.alias_owner[alias] = customer_id
        record["ingest_aliases"] = aliases
        record["updated_at"] = _now()
        self.dirty = True
        return 200, None

    # -- customer billing provider configurations ------------------------------------

    def _check_item(self, index: int, item: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        where = f"data[{index}]"
        cid = item["customer_id"]
        customer = self.customers.get(cid)
        if customer is None:
            return f"{where}.customer_id: customer {cid} not found", None
        if customer["archived_at"]:
            return f"{where}.customer_id: customer {cid} is archived", None
        has_id, has_method = "delivery_method_id" in item, "delivery_method" in item
        if has_id == has_method:
            return f"{where}: exactly one of delivery_method_id and delivery_method must be given", None
        provider = item["billing_provider"]
        if has_id:
            dm = self.dm_by_id.get(item["delivery_method_id"])
            if dm is None:
                return (
                    f"{where}.delivery_method_id: delivery method {item['delivery_method_id']} not found",
                    None,
                )
            if dm["billing_provider"] != provider:
                return (
                    f"{where}.delivery_method_id: delivery method {dm['delivery_method_id']} belongs to "
                    f"{dm['billing_provider']}, not {provider}",
                    None,
                )
        else:
            matches = self._match_delivery_methods(provider, item["delivery_method"])
            if not matches:
                return (
                    f"{where}.delivery_method: no {item['delivery_method']} delivery method is configured "
                    f"for {provider}",
                    None,
                )
            if len(matches) > 1:
                return (
                    f"{where}.delivery_method: {len(matches)} {item['delivery_method']} delivery methods are "
                    f"configured for {provider}; give delivery_method_id",
                    None,
                )
            dm = matches[0]
        configuration = item.get("configuration") or {}
        problems = configuration_problems(
            provider, configuration, dm["delivery_method"], item.get("tax_provider")
        )
        if problems:
            field, reason = problems[0]
            return f"{where}.{field}: {reason}", None
        return None, dm

    def op_set_configurations(self, body: dict[str, Any]) -> Answer:
        items = body["data"]
        resolved = []
        for index, item in enumerate(items):
            problem, dm = self._check_item(index, item)
            if problem is not None:
                return _error(400, problem)
            resolved.append((item, dm))
        created = []
        for item, dm in resolved:
            assert dm is not None
            record = {
                "id": str(uuid.uuid4()),
                "billing_provider": item["billing_provider"],
                "customer_id": item["customer_id"],
                "configuration": item.get("configuration") or {},
                "delivery_method_id": dm["delivery_method_id"],
                "delivery_method": dm["delivery_method"],
                "delivery_method_configuration": dm["delivery_method_configuration"],
                "archived_at": None,
            }
            if item.get("tax_provider"):
                record["tax_provider"] = item["tax_provider"]
            self.configs.setdefault(item["customer_id"], []).append(record)
            out = {
                k: record[k]
                for k in ("id", "billing_provider", "customer_id", "configuration", "delivery_method_id")
            }
            if "tax_provider" in record:
                out["tax_provider"] = record["tax_provider"]
            created.append(out)
        self.dirty = True
        return 200, {"data": created}

    def op_get_configurations(self, body: dict[str, Any]) -> Answer:
        cid = body["customer_id"]
        if cid not in self.customers:
            return _error(404, f"customer {cid} not found")
        include_archived = bool(body.get("include_archived"))
        configs = [c for c in self.configs.get(cid, []) if include_archived or not c["archived_at"]]
        return 200, {"data": configs}

    def op_archive_configurations(self, body: dict[str, Any]) -> Answer:
        cid = body["customer_id"]
        ids = body["customer_billing_provider_configuration_ids"]
        if cid not in self.customers:
            return _error(400, f"customer_id: customer {cid} not found")
        by_id = {c["id"]: c for c in self.configs.get(cid, [])}
        missing = [i for i in ids if i not in by_id]
        if missing:
            return _error(
                400,
                f"customer_billing_provider_configuration_ids: {', '.join(missing)} "
                f"not found for customer {cid}",
            )
        stamp = _now()
        for config_id in ids:
            # Archiving an archived configuration keeps its first archived_at.
            by_id[config_id]["archived_at"] = by_id[config_id]["archived_at"] or stamp
        self.dirty = True
        return 200, {"data": {"customer_billing_provider_configuration_ids": ids, "customer_id": cid}}

    # -- account-level billing providers and tax credentials ---------------------------

    def op_list_billing_providers(self, body: dict[str, Any]) -> Answer:
        cursor = body.get("next_page")
        offset = 0
        if cursor:
            decoded = decode_offset_cursor(cursor)
            if decoded is None:
                return _error(400, f"next_page: invalid cursor {cursor!r}")
            offset = decoded
        size = self.providers_page_size
        page = self.delivery_methods[offset : offset + size]
        more = offset + size < len(self.delivery_methods)
        return 200, {"data": page, "next_page": encode_offset_cursor(offset + size) if more else None}

    def op_set_up_billing_provider(self, body: dict[str, Any]) -> Answer:
        provider, method = body["billing_provider"], body["delivery_method"]
        if self._match_delivery_methods(provider, method):
            return _error(409, f"{provider} with {method} is already set up")
        config = {k: v for k, v in body["configuration"].items() if not k.startswith("raw_")}
        record = {
            "billing_provider": provider,
            "delivery_method": method,
            "delivery_method_id": str(uuid.uuid4()),
            "delivery_method_configuration": config,
        }
        self.delivery_methods.append(record)
        self.dm_by_id[record["delivery_method_id"]] = record
        self.dirty = True
        return 200, {"data": {"delivery_method_id": record["delivery_method_id"]}}

    def _unknown_delivery_methods(self, ids: list[str]) -> Answer | None:
        missing = [i for i in ids if i not in self.dm_by_id]
        if missing:
            return _error(404, f"delivery_method_ids: delivery method(s) not found: {', '.join(missing)}")
        return None

    def op_upsert_avalara(self, body: dict[str, Any], password_digest: str) -> Answer:
        ids = body["delivery_method_ids"]
        problem = self._unknown_delivery_methods(ids)
        if problem is not None:
            return problem
        for dm_id in ids:
            self.avalara[dm_id] = {
                "avalara_environment": body["avalara_environment"],
                "avalara_username": body["avalara_username"],
                "avalara_password_sha256": password_digest,
                "commit_transactions": body.get("commit_transactions"),
                "updated_at": _now(),
            }
        self.dirty = True
        return 200, {}

    def op_upsert_anrok(self, body: dict[str, Any], token_digest: str) -> Answer:
        ids = body["delivery_method_ids"]
        problem = self._unknown_delivery_methods(ids)
        if problem is not None:
            return problem
        for dm_id in ids:
            self.anrok[dm_id] = {"anrok_api_token_sha256": token_digest, "updated_at": _now()}
        self.dirty = True
        return 200, {"data": {"success": True}}
