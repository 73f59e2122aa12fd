"""Request validation against the bundled copy of the OpenAPI subset.

``openapi.yaml`` here is the OpenAPI subset assembled from Metronome's API reference
pages (https://docs.metronome.com/api-reference), the same file the contract tests
check (a test keeps the copies equal), so the emulator validates that contract even
when installed from a wheel.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

SPEC_FILE = "openapi.yaml"


@functools.lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The bundled OpenAPI document."""
    import yaml

    text = resources.files(__package__).joinpath(SPEC_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def to_json_schema(node: Any) -> Any:
    """Translate OpenAPI 3.0 schema dialect (``nullable``, ``x-*``) into JSON Schema."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-") or key in ("example", "examples", "nullable", "description"):
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = value
        elif key in ("properties", "components", "schemas"):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value)
    if node.get("nullable") is True:
        typ = out.get("type")
        if isinstance(typ, str):
            out["type"] = [typ, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if "$ref" in out:
            out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
    return out


@functools.cache
def request_validator(method: str, path: str) -> Draft202012Validator | None:
    """A validator of the JSON request body of an operation, or ``None`` if it has none.

    :param method: lower-case HTTP method.
    :param path: the path template as written in the spec.
    """
    spec = load_spec()
    operation = spec["paths"][path][method]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = body.get("schema")
    if schema is None:
        return None
    root = to_json_schema(schema)
    root["components"] = to_json_schema({"schemas": spec["components"]["schemas"]})
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _location(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _preview(value: str, size: int = 40) -> str:
    return repr(value if len(value) <= size else value[:size] + "...")


def _message(err: ValidationError) -> str:
    """The violation in words, stating the limit for size rules.

    jsonschema's own text for ``maxItems`` / ``maxLength`` repeats the whole value (a
    2,001-alias list would fill the message) and does not say the limit; for those
    the count and the limit are given instead (``ingest_aliases``: "maxItems: 2000",
    each item "minLength: 1, maxLength: 128" in
    https://docs.metronome.com/api-reference/customers/create-a-customer.md).
    """
    value, limit = err.instance, err.validator_value
    if err.validator in ("maxItems", "minItems") and isinstance(value, list):
        bound = f"at most {limit} allowed" if err.validator == "maxItems" else f"at least {limit} required"
        return f"{len(value)} items given, {bound}"
    if err.validator in ("maxLength", "minLength") and isinstance(value, str):
        unit = "character" if limit == 1 else "characters"
        bound = (
            f"at most {limit} {unit} allowed"
            if err.validator == "maxLength"
            else f"at least {limit} {unit} required"
        )
        return f"{_preview(value)} has {len(value)} characters, {bound}"
    return str(err.message)


def body_errors(method: str, path: str, body: Any) -> list[str]:
    """Messages for every violation of the operation's request schema, each naming the field.

    :param method: lower-case HTTP method.
    :param path: the path template as written in the spec.
    :param body: the parsed JSON body.
    """
    validator = request_validator(method, path)
    if validator is None:
        return []
    messages = []
    for err in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))):
        messages.append(f"{_location(err.absolute_path)}: {_message(err)}")
    return messages
