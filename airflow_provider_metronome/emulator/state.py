"""The emulator's data and the API semantics, free of HTTP.

Each ``op_*`` method takes the parsed request and returns ``(status, body)``. The
HTTP layer (:mod:`.app`) does auth, faults, schema validation and idempotency.

Why one module past 400 lines: the eleven operations share one lock and one set of
tables, and each is short; kept together, every rule of the emulated API (what is
unique, what is archived, what a page holds) reads in one place. Seed and state-file
validation could move out; that split is planned.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from airflow_provider_metronome.emulator.rules import (
    BILLING_PROVIDERS,
    DELIVERY_METHODS,
    configuration_problem,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

Answer = tuple[int, Any]

# What a dump shows in place of a secret: whether it is set, never a value or a digest.
SET = "<set>"
SECRET_KINDS = ("avalara_password", "anrok_api_token")
_AVALARA_VISIBLE = ("avalara_environment", "avalara_username", "commit_transactions", "updated_at")

_STRING_OR_NULL = {"type": ["string", "null"]}
_UUID = {"type": "string", "format": "uuid"}
# The seed / state-file format read by EmulatorState.load. Records may carry more keys
# (a dump has created_at, external_id, ...); the top level may not, so a misspelt
# section is named instead of silently ignored.
SEED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "customers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": _UUID,
                    "name": {"type": "string"},
                    "ingest_aliases": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": 128},
                    },
                    "external_id": _STRING_OR_NULL,
                    "archived": {"type": "boolean"},
                    "archived_at": _STRING_OR_NULL,
                    "created_at": {"type": "string"},
                    "updated_at": {"type": "string"},
                    "custom_fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    "salesforce_account_id": _STRING_OR_NULL,
                    "customer_config": {
                        "type": "object",
                        "properties": {"salesforce_account_id": _STRING_OR_NULL},
                    },
                },
            },
        },
        "delivery_methods": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["billing_provider"],
                "properties": {
                    "billing_provider": {"enum": sorted(BILLING_PROVIDERS)},
                    "delivery_method": {"enum": sorted(DELIVERY_METHODS)},
                    "delivery_method_id": _UUID,
                    "delivery_method_configuration": {"type": "object"},
                },
            },
        },
        "billing_provider_configurations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["customer_id", "billing_provider"],
                "properties": {
                    "id": _UUID,
                    "customer_id": _UUID,
                    "billing_provider": {"enum": sorted(BILLING_PROVIDERS)},
                    "configuration": {"type": "object"},
                    "delivery_method_id": _UUID,
                    "delivery_method": {"enum": sorted(DELIVERY_METHODS)},
                    "delivery_method_configuration": {"type": "object"},
                    "tax_provider": {"enum": ["anrok", "avalara", "stripe", None]},
                    "archived_at": _STRING_OR_NULL,
                },
            },
        },
        "avalara_credentials": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "avalara_environment": {"enum": ["PRODUCTION", "SANDBOX"]},
                    "avalara_username": {"type": "string"},
                    "avalara_password": {"type": "string"},
                    "commit_transactions": {"type": ["boolean", "null"]},
                    "updated_at": {"type": "string"},
                },
            },
        },
        "anrok_api_tokens": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"anrok_api_token": {"type": "string"}, "updated_at": {"type": "string"}},
            },
        },
    },
}
_SEED_VALIDATOR = Draft202012Validator(SEED_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

# listConfiguredBillingProviders' cursor is declared as a UUID: encode the offset in one.
_CURSOR_PREFIX = "00000000-0000-4000-8000-"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str) -> Answer:
    return status, {"message": message}


def _location(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


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
        # Secrets are kept only as salted scrypt digests, under a salt that lives and
        # dies with this process: no dump, state file or log holds them, and a digest
        # seen in a core dump cannot be looked up in a table of unsalted hashes.
        self._salt = secrets.token_bytes(16)
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
        # (secret kind, delivery method id) -> salted digest; never dumped.
        self.secret_digests: dict[tuple[str, str], bytes] = {}
        self.idempotency: dict[str, tuple[str, int, Any]] = {}
        self.dirty = False

    # -- secrets --------------------------------------------------------------------

    def digest(self, value: str) -> bytes:
        """A salted scrypt digest of a secret (the salt is this process's).

        :param value: the secret.
        """
        return hashlib.scrypt(value.encode(), salt=self._salt, n=2**12, r=8, p=1, dklen=32)

    def check_secret(self, kind: str, delivery_method_id: str, value: str) -> dict[str, Any]:
        """Whether the secret stored for a delivery method is ``value``.

        :param kind: ``avalara_password`` or ``anrok_api_token``.
        :param delivery_method_id: the delivery method the secret was set for.
        :param value: the candidate secret.
        :return: ``{"set": bool, "match": bool | None}``; ``match`` is ``None`` when the
            secret was set before this process started (a state file keeps no digest).
        """
        table = self.avalara if kind == "avalara_password" else self.anrok
        if delivery_method_id not in table:
            return {"set": False, "match": None}
        known = self.secret_digests.get((kind, delivery_method_id))
        if known is None:
            return {"set": True, "match": None}
        return {"set": True, "match": hmac.compare_digest(known, self.digest(value))}

    def _keep_secret(self, kind: str, delivery_method_id: str, value: Any) -> None:
        # A plain value (a hand-written seed) is digested; the "<set>" marker of a dump,
        # or the unsalted digest an older state file carried, only says "set".
        if isinstance(value, str) and value != SET:
            self.secret_digests[(kind, delivery_method_id)] = self.digest(value)
        else:
            self.secret_digests.pop((kind, delivery_method_id), None)

    # -- seeds and dumps --------------------------------------------------------------

    def seed_problem(self, data: Any, *, adding: bool) -> tuple[str, str] | None:
        """The first reason :meth:`load` would refuse ``data``, or ``None``.

        :param data: a seed or a state dump.
        :param adding: whether the data is added to the current state (else it replaces it).
        :return: ``(field, reason)``, the field as a path such as ``customers[2].name``.
        """
        errors = sorted(_SEED_VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            err = errors[0]
            return _location(err.absolute_path), err.message
        customer_ids: set[str] = set(self.customers) if adding else set()
        alias_owner: dict[str, str] = dict(self.alias_owner) if adding else {}
        for index, c in enumerate(data.get("customers", [])):
            cid = c["id"]
            if cid in customer_ids:
                return f"customers[{index}].id", f"customer {cid} already exists"
            customer_ids.add(cid)
            for alias in c.get("ingest_aliases", []):
                if alias_owner.get(alias, cid) != cid:
                    return (
                        f"customers[{index}].ingest_aliases",
                        f"alias {alias!r} is already used by {alias_owner[alias]}",
                    )
                alias_owner[alias] = cid
        dm_ids: set[str] = set(self.dm_by_id) if adding else set()
        for index, dm in enumerate(data.get("delivery_methods", [])):
            dm_id = dm.get("delivery_method_id")
            if dm_id in dm_ids:
                return (
                    f"delivery_methods[{index}].delivery_method_id",
                    f"delivery method {dm_id} already exists",
                )
            if dm_id:
                dm_ids.add(dm_id)
        for index, cfg in enumerate(data.get("billing_provider_configurations", [])):
            if cfg["customer_id"] not in customer_ids:
                return (
                    f"billing_provider_configurations[{index}].customer_id",
                    f"customer {cfg['customer_id']} is not in the seed",
                )
        return None

    def load(self, data: dict[str, Any]) -> None:
        """Add the customers, delivery methods and configurations of a seed or state dump.

        Check the data with :meth:`seed_problem` first: this method trusts its shape.

        :param data: ``{"customers": [...], "delivery_methods": [...],
            "billing_provider_configurations": [...], "avalara_credentials": {...},
            "anrok_api_tokens": {...}}``. A credential may give its secret in plain
            (``avalara_password`` / ``anrok_api_token``); it is kept only as a digest.
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
                salesforce_account_id=c.get("salesforce_account_id")
                or (c.get("customer_config") or {}).get("salesforce_account_id"),
                created_at=c.get("created_at"),
                updated_at=c.get("updated_at"),
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
        for dm_id, cred in data.get("avalara_credentials", {}).items():
            entry = {k: cred[k] for k in _AVALARA_VISIBLE if k in cred}
            entry.setdefault("updated_at", _now())
            self.avalara[dm_id] = {**entry, "avalara_password": SET}
            self._keep_secret("avalara_password", dm_id, cred.get("avalara_password"))
        for dm_id, cred in data.get("anrok_api_tokens", {}).items():
            self.anrok[dm_id] = {"anrok_api_token": SET, "updated_at": cred.get("updated_at") or _now()}
            self._keep_secret("anrok_api_token", dm_id, cred.get("anrok_api_token"))
        self.dirty = True

    def dump(self) -> dict[str, Any]:
        """Everything, in the shape :meth:`load` reads.

        Secrets appear only as ``"<set>"``: the Metronome API never shows them back
        either (``listConfiguredBillingProviders``: "Some configuration may be omitted
        for security reasons").
        """
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
        # Created 0600 (the state names customers and Avalara usernames), written
        # whole, then renamed over the old file so a reader never sees half of it.
        tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.dump(), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
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
        salesforce_account_id: str | None = None,
        created_at: str | None = None,
        updated_at: str | None = None,
    ) -> dict[str, Any]:
        cid = customer_id or str(uuid.uuid4())
        stamp = _now()
        record = {
            "id": cid,
            "external_id": external_id or (ingest_aliases[0] if ingest_aliases else cid),
            "ingest_aliases": ingest_aliases,
            # "This will be truncated to 160 characters if the provided name is longer"
            # (https://docs.metronome.com/api-reference/customers/create-a-customer.md).
            "name": name[:160],
            "customer_config": {"salesforce_account_id": salesforce_account_id},
            "custom_fields": custom_fields or {},
            "created_at": created_at or stamp,
            "updated_at": updated_at or created_at or stamp,
            "archived_at": archived_at,
        }
        self.customers[cid] = record
        self.customer_order.append(cid)
        for alias in ingest_aliases:
            self.alias_owner[alias] = cid
        return record

    def _alias_taken(self, aliases: Iterable[str], owner: str | None) -> str | None:
        # "Returns 409 Conflict if ingest alias is already in use", and an alias moves
        # between customers "only if you first remove it from the original customer.
        # This rule applies to both archived and active customers"
        # (https://docs.metronome.com/api-reference/idempotency.md): an archived
        # customer's aliases stay taken until it gives them up with setIngestAliases.
        for alias in aliases:
            holder = self.alias_owner.get(alias)
            if holder is not None and holder != owner:
                return alias
        return None

    @staticmethod
    def _aliases_problem(aliases: list[str]) -> Answer | None:
        # The docs call the aliases a set ("fully replaces the set of ingest aliases",
        # create-or-update-customer-ingest-aliases.md) and say nothing of repeats: the
        # emulator refuses a repeated alias rather than guess how it is stored.
        seen: set[str] = set()
        for alias in aliases:
            if alias in seen:
                return _error(400, f"ingest_aliases: {alias!r} is given more than once")
            seen.add(alias)
        return None

    def _conflict(self, alias: str) -> Answer:
        return _error(409, f"ingest alias {alias!r} is already in use by another customer")

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
        problem = self._aliases_problem(aliases)
        if problem is not None:
            return problem
        taken = self._alias_taken(aliases, None)
        if taken is not None:
            return self._conflict(taken)
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
        salesforce_account_ids: list[str] | None = None,
    ) -> Answer:
        # Every filter given narrows the list (they combine with AND).
        if ingest_alias is not None:
            owner = self.alias_owner.get(ingest_alias)
            candidates = [owner] if owner and (customer_ids is None or owner in customer_ids) else []
        elif customer_ids is not None:
            candidates = [cid for cid in customer_ids if cid in self.customers]
        else:
            candidates = self.customer_order
        if salesforce_account_ids is not None:
            wanted = set(salesforce_account_ids)
            candidates = [
                cid
                for cid in candidates
                if self.customers[cid]["customer_config"].get("salesforce_account_id") in wanted
            ]
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
        # "fully replaces the set of ingest aliases for the given customer"
        # (https://docs.metronome.com/api-reference/customers/create-or-update-customer-ingest-aliases.md):
        # aliases left out are released, for any customer to take.
        aliases = list(body["ingest_aliases"])
        problem = self._aliases_problem(aliases)
        if problem is not None:
            return problem
        taken = self._alias_taken(aliases, customer_id)
        if taken is not None:
            return self._conflict(taken)
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
        # "If not provided, the `delivery_method` must be provided" (and the other way
        # round): at least one, and both may come together (the official SDKs send
        # both when given both); then they must name the same delivery method.
        has_id, has_method = "delivery_method_id" in item, "delivery_method" in item
        if not has_id and not has_method:
            return f"{where}: delivery_method_id or delivery_method is required", None
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
            if has_method and item["delivery_method"] != dm["delivery_method"]:
                return (
                    f"{where}.delivery_method: {item['delivery_method']!r} does not match delivery method "
                    f"{dm['delivery_method_id']}, which is {dm['delivery_method']}",
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
        problem = configuration_problem(
            provider, dm["delivery_method"], configuration, item.get("tax_provider")
        )
        if problem is not None:
            field, reason = problem
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

    def op_upsert_avalara(self, body: dict[str, Any]) -> Answer:
        ids = body["delivery_method_ids"]
        problem = self._unknown_delivery_methods(ids)
        if problem is not None:
            return problem
        digest = self.digest(body["avalara_password"])
        for dm_id in ids:
            self.avalara[dm_id] = {
                "avalara_environment": body["avalara_environment"],
                "avalara_username": body["avalara_username"],
                "avalara_password": SET,
                "commit_transactions": body.get("commit_transactions"),
                "updated_at": _now(),
            }
            self.secret_digests[("avalara_password", dm_id)] = digest
        self.dirty = True
        return 200, {}

    def op_upsert_anrok(self, body: dict[str, Any]) -> Answer:
        ids = body["delivery_method_ids"]
        problem = self._unknown_delivery_methods(ids)
        if problem is not None:
            return problem
        digest = self.digest(body["anrok_api_token"])
        for dm_id in ids:
            self.anrok[dm_id] = {"anrok_api_token": SET, "updated_at": _now()}
            self.secret_digests[("anrok_api_token", dm_id)] = digest
        self.dirty = True
        return 200, {"data": {"success": True}}
