"""Deterministic Idempotency-Keys for Metronome writes.

A key is derived from the operation and a business key (for the sync engine: the
exact payload plus the state it was computed against), so a retry of the same write
carries the same key and Metronome replays the first answer instead of creating a
second configuration (https://docs.metronome.com/api-reference/idempotency.md). A 5xx
answer is cached under its key too: after a 5xx the caller checks what was created
and retries with a *new* key ("verify that resource was not partially created and
retry using a different key", https://docs.metronome.com/api-reference/status-codes.md),
which :func:`retry_key` gives.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

_NAMESPACE = "airflow-provider-metronome"


def canonical_json(value: Any) -> str:
    """Serialise ``value`` the same way every time (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def idempotency_key(operation: str, business_key: Any) -> str:
    """Return a stable key for one write.

    :param operation: the API operation, e.g. ``"setCustomerBillingProviderConfigurations"``.
    :param business_key: anything JSON-serialisable that identifies the write.
    """
    digest = hashlib.sha256(f"{_NAMESPACE}:{operation}:{canonical_json(business_key)}".encode()).hexdigest()
    return f"apm-{digest[:40]}"


def retry_key(key: str) -> str:
    """A fresh key to retry a write whose previous key got a 5xx.

    It is random on purpose: a deterministic successor would collide with the cached
    5xx of an earlier run that walked the same path.
    """
    return f"{key[:44]}-r{uuid.uuid4().hex[:12]}"
