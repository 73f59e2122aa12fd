"""The warehouse row contract: one row = one desired billing provider configuration.

| column               | required            | meaning                                         |
|----------------------|---------------------|-------------------------------------------------|
| ``customer_id``      | one of these two    | Metronome customer UUID                         |
| ``ingest_alias``     | one of these two    | the customer's ingest alias                     |
| ``billing_provider`` | yes                 | see :data:`~.rules.BILLING_PROVIDERS`            |
| ``configuration``    | yes                 | JSON object (text or native JSON)               |
| ``delivery_method``  | one of these two    | see :data:`~.rules.DELIVERY_METHODS`             |
| ``delivery_method_id``| one of these two   | UUID from ``listConfiguredBillingProviders``    |
| ``tax_provider``     | no                  | see :data:`~.rules.TAX_PROVIDERS`                |
| ``updated_at``       | no                  | for incremental windows; not sent to Metronome  |
| ``customer_name``    | to create a customer| name of a customer the sync creates             |
| ``ingest_aliases``   | no                  | more aliases of the same customer: JSON array   |
|                      |                     | or comma-separated text                         |
| ``custom_fields``    | no                  | JSON object of text → text, for a new customer  |

Empty or blank strings count as missing (warehouses often hold ``''`` where ``NULL``
was meant). Other columns are ignored.

The last three columns matter only with ``create_missing_customers``: a row whose
``ingest_alias`` matches no active customer then creates one, named ``customer_name``,
with ``ingest_alias`` and ``ingest_aliases`` as its aliases and ``custom_fields``
(https://docs.metronome.com/api-reference/customers/create-a-customer.md). Aliases a
row lists that its existing customer lacks are added to it in any case.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from airflow_provider_metronome.models.rules import (
    BILLING_PROVIDERS,
    DELIVERY_METHODS,
    TAX_PROVIDERS,
    configuration_problems,
)

MAX_ALIAS_LENGTH = 128
# "ingest_aliases: maxItems 2000" (create-a-customer, setIngestAliases).
MAX_ALIASES = 2000
MAX_CUSTOM_FIELDS_BYTES = 16 * 1024
MAX_CONFIGURATION_BYTES = 64 * 1024
ROW_COLUMNS = (
    "customer_id",
    "ingest_alias",
    "billing_provider",
    "configuration",
    "delivery_method",
    "delivery_method_id",
    "tax_provider",
    "updated_at",
    "customer_name",
    "ingest_aliases",
    "custom_fields",
)


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _enum(value: Any, allowed: tuple[str, ...], what: str) -> str | None:
    value = _blank_to_none(value)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {type(value).__name__} {value!r}")
    text = value.strip()
    if text in allowed:
        return text
    hint = f" (did you mean {text.lower()!r}?)" if text.lower() in allowed else ""
    raise ValueError(f"{_short(text)!r} is not a known {what}{hint}; use one of {', '.join(allowed)}")


def _uuid(value: Any, what: str) -> str | None:
    value = _blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a UUID string, got {type(value).__name__} {value!r}")
    try:
        parsed = uuid.UUID(value.strip())
    except ValueError:
        raise ValueError(f"{_short(value)!r} is not a UUID") from None
    if len(value.strip()) != 36:
        raise ValueError(f"{_short(value)!r} is not a UUID in the 8-4-4-4-12 form")
    return str(parsed)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class BillingConfigRow(BaseModel):
    """A warehouse row, validated. Build it with :func:`parse_row`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    customer_id: str | None = None
    ingest_alias: str | None = None
    billing_provider: str
    configuration: dict[str, Any]
    delivery_method: str | None = None
    delivery_method_id: str | None = None
    tax_provider: str | None = None
    customer_name: str | None = None
    ingest_aliases: tuple[str, ...] = ()
    custom_fields: dict[str, str] | None = None

    @field_validator("customer_name", mode="before")
    @classmethod
    def _customer_name(cls, value: Any) -> str | None:
        value = _blank_to_none(value)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"customer_name must be text, got {type(value).__name__}")
        # Metronome truncates a longer name to 160 characters; it is not refused.
        return value.strip()

    @field_validator("ingest_aliases", mode="before")
    @classmethod
    def _ingest_aliases(cls, value: Any) -> tuple[str, ...]:
        return _alias_list(value)

    @field_validator("custom_fields", mode="before")
    @classmethod
    def _custom_fields(cls, value: Any) -> dict[str, str] | None:
        return _text_map(value)

    @field_validator("customer_id", mode="before")
    @classmethod
    def _customer_id(cls, value: Any) -> str | None:
        return _uuid(value, "customer_id")

    @field_validator("delivery_method_id", mode="before")
    @classmethod
    def _delivery_method_id(cls, value: Any) -> str | None:
        return _uuid(value, "delivery_method_id")

    @field_validator("ingest_alias", mode="before")
    @classmethod
    def _ingest_alias(cls, value: Any) -> str | None:
        value = _blank_to_none(value)
        if value is None:
            return None
        if isinstance(value, (int,)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f"ingest_alias must be text, got {type(value).__name__}")
        if len(value) > MAX_ALIAS_LENGTH:
            raise ValueError(
                f"ingest_alias is {len(value)} characters; Metronome allows at most {MAX_ALIAS_LENGTH}"
            )
        return value

    @field_validator("billing_provider", mode="before")
    @classmethod
    def _billing_provider(cls, value: Any) -> str:
        checked = _enum(value, BILLING_PROVIDERS, "billing_provider")
        if checked is None:
            raise ValueError("billing_provider is required")
        return checked

    @field_validator("delivery_method", mode="before")
    @classmethod
    def _delivery_method(cls, value: Any) -> str | None:
        return _enum(value, DELIVERY_METHODS, "delivery_method")

    @field_validator("tax_provider", mode="before")
    @classmethod
    def _tax_provider(cls, value: Any) -> str | None:
        return _enum(value, TAX_PROVIDERS, "tax_provider")

    @field_validator("configuration", mode="before")
    @classmethod
    def _configuration(cls, value: Any) -> dict[str, Any]:
        if value is None:
            raise ValueError("configuration is required (NULL)")
        if isinstance(value, (bytes, bytearray, memoryview)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"configuration is not valid UTF-8 text (bad byte at position {err.start})"
                ) from None
        if isinstance(value, str):
            if not value.strip():
                raise ValueError(
                    'configuration is empty; give a JSON object such as {"stripe_customer_id": "cus_…"}'
                )
            if len(value) > MAX_CONFIGURATION_BYTES:
                raise ValueError(
                    f"configuration is {len(value)} characters; at most {MAX_CONFIGURATION_BYTES}"
                )
            value = _loads_strict(value)
        if not isinstance(value, dict):
            raise ValueError(f"configuration must be a JSON object, got {_json_type(value)}")
        _check_json(value, "configuration", 0)
        if len(json.dumps(value, allow_nan=False)) > MAX_CONFIGURATION_BYTES:
            raise ValueError(f"configuration is larger than {MAX_CONFIGURATION_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _either_or(self) -> BillingConfigRow:
        if (self.customer_id is None) == (self.ingest_alias is None):
            raise ValueError(
                "give exactly one of customer_id and ingest_alias"
                + (" (both are set)" if self.customer_id is not None else " (both are empty)")
            )
        # At least one: the API takes either, or both when they agree (its SDK sends
        # both); whether they agree is checked once the id is resolved.
        # https://docs.metronome.com/api-reference/customers/set-billing-provider-configurations-for-a-customer.md
        if self.delivery_method is None and self.delivery_method_id is None:
            raise ValueError("give delivery_method or delivery_method_id (both are empty)")
        problems = configuration_problems(
            self.billing_provider, self.configuration, self.delivery_method, self.tax_provider
        )
        if problems:
            raise _ProviderRuleError(problems)
        return self


def _alias_list(value: Any) -> tuple[str, ...]:
    """``ingest_aliases`` as given: a JSON array of text, a list, or comma-separated text."""
    value = _blank_to_none(value)
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            raise ValueError(
                "ingest_aliases is a JSON object; give a JSON array of text or comma-separated text"
            )
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(
                    "ingest_aliases starts with '[' but is not a JSON array; give a JSON array of "
                    'text (["a", "b"]) or comma-separated text (a, b)'
                ) from None
        else:
            value = [part.strip() for part in text.split(",")]
            value = [part for part in value if part]
    if not isinstance(value, (list, tuple)):
        raise ValueError(
            f"ingest_aliases must be a JSON array or comma-separated text, got {_json_type(value)}"
        )
    aliases: list[str] = []
    for i, alias in enumerate(value):
        if isinstance(alias, int) and not isinstance(alias, bool):
            alias = str(alias)
        if not isinstance(alias, str) or not alias:
            raise ValueError(f"ingest_aliases[{i}] must be non-empty text, got {_json_type(alias)}")
        if len(alias) > MAX_ALIAS_LENGTH:
            raise ValueError(
                f"ingest_aliases[{i}] is {len(alias)} characters; Metronome allows at most {MAX_ALIAS_LENGTH}"
            )
        if alias not in aliases:
            aliases.append(alias)
    if len(aliases) > MAX_ALIASES:
        raise ValueError(f"ingest_aliases has {len(aliases)} aliases; Metronome allows at most {MAX_ALIASES}")
    return tuple(aliases)


def _text_map(value: Any) -> dict[str, str] | None:
    """``custom_fields``: a JSON object (text or native) whose values are text."""
    value = _blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > MAX_CUSTOM_FIELDS_BYTES:
            raise ValueError(f"custom_fields is {len(value)} characters; at most {MAX_CUSTOM_FIELDS_BYTES}")
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(
                'custom_fields is not valid JSON; give an object such as {"region": "emea"}'
            ) from None
    if not isinstance(value, dict):
        raise ValueError(f"custom_fields must be a JSON object of text values, got {_json_type(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ValueError(
                f"custom_fields.{key} must be text (Metronome's custom fields map text to text), "
                f"got {_json_type(item)}"
            )
    return dict(value) or None


# Deeper than any provider configuration needs, far below Python's recursion limit.
MAX_CONFIGURATION_DEPTH = 32


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, item in pairs:
        if key in seen:
            raise ValueError(f"configuration has the key {_short(key)!r} twice; keep one")
        seen[key] = item
    return seen


def _no_constant(name: str) -> Any:
    raise ValueError(f"configuration holds {name}, which JSON does not allow; use a number or a string")


def _loads_strict(text: str) -> Any:
    """JSON text → value; duplicate keys, NaN/Infinity and runaway nesting are errors, not guesses."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"configuration is nested deeper than {MAX_CONFIGURATION_DEPTH} levels") from None
    except ValueError as err:
        if str(err).startswith("configuration "):
            raise
        raise ValueError(f"configuration is not valid JSON ({err.args[0].split(':')[0]})") from None


def _check_json(value: Any, path: str, depth: int) -> None:
    """Raise ``ValueError`` naming the first part of ``value`` that is not plain, finite JSON."""
    if depth > MAX_CONFIGURATION_DEPTH:
        raise ValueError(f"configuration is nested deeper than {MAX_CONFIGURATION_DEPTH} levels (at {path})")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path} has a key that is not text: {key!r}")
            _check_json(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{path} is {value}, which JSON does not allow; use a number or a string")
    elif not (value is None or isinstance(value, (str, int))):
        raise ValueError(f"{path} is {type(value).__name__}, not a JSON value (text, number, boolean, null)")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


class _ProviderRuleError(ValueError):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(reason for _, reason in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One reason a row was rejected.

    :param field: the column (or ``configuration.<key>``) at fault.
    :param reason: what is wrong and how to fix it.
    """

    field: str
    reason: str


def parse_row(raw: Any) -> BillingConfigRow | list[RowProblem]:
    """Validate one warehouse row.

    :param raw: a mapping (dict, DB-API row mapped to column names, ...).
    :return: the validated row, or every problem found.
    """
    if not isinstance(raw, dict):
        try:
            raw = dict(raw)
        except (TypeError, ValueError):
            return [
                RowProblem(
                    "row", f"a row must be a mapping of column names to values, got {type(raw).__name__}"
                )
            ]
    try:
        return BillingConfigRow.model_validate(raw)
    except ValidationError as err:
        return _problems(err)


def _problems(err: ValidationError) -> list[RowProblem]:
    problems: list[RowProblem] = []
    for item in err.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in item["loc"]) or "row"
        ctx = item.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, _ProviderRuleError):
            problems.extend(RowProblem(f, r) for f, r in cause.problems)
            continue
        message = str(cause) if cause is not None else item["msg"]
        if item["type"] == "missing":
            message = f"{loc} is required"
        elif item["type"] == "dict_type":
            message = f"{loc} must be a JSON object"
        if loc == "row":
            loc = _field_from_message(message)
        problems.append(RowProblem(loc, message))
    return problems


def _field_from_message(message: str) -> str:
    for name in ("customer_id", "delivery_method"):
        if name in message:
            return f"{name}/{'ingest_alias' if name == 'customer_id' else 'delivery_method_id'}"
    return "row"
