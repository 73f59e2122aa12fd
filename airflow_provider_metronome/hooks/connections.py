"""Reading Airflow connections for the provider's hooks: the connection, its extra fields.

Every problem is a :class:`~airflow_provider_metronome.exceptions.MetronomeConfigError`
naming the connection and saying how to fix it: retrying a task cannot create a
connection or correct a field, so the operators fail such a task without retries.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client.settings import parse_bool
from airflow_provider_metronome.exceptions import MetronomeConfigError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseHook, Connection


def get_connection(hook: BaseHook, conn_id: str, conn_type: str) -> Connection:
    """The Airflow connection ``conn_id``, or a config error saying how to define it.

    :param hook: the hook reading it (its ``get_connection`` is used, so secrets
        backends and environment variables are searched as Airflow does).
    :param conn_id: the connection id.
    :param conn_type: the connection type to suggest when it is missing.
    :raises MetronomeConfigError: no such connection.
    """
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    try:
        return hook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise MetronomeConfigError(
            f"Airflow connection {conn_id!r} is not defined: create a {conn_type!r} connection with that id "
            f"(UI, CLI, or the AIRFLOW_CONN_{conn_id.upper()} environment variable)"
        ) from None


def extra_value(extra: dict[str, Any], name: str, conn_type: str) -> Any:
    """An extra field, by its plain name or the prefixed name older connection forms wrote.

    :param extra: the connection's ``extra_dejson``.
    :param name: the field's plain name (``timeout``).
    :param conn_type: the connection type (prefix ``extra__<conn_type>__``).
    """
    return extra.get(name, extra.get(f"extra__{conn_type}__{name}"))


def extra_number(
    extra: dict[str, Any],
    name: str,
    default: float,
    conn_id: str,
    *,
    conn_type: str = "metronome",
    positive: bool = False,
) -> float:
    """A numeric extra field: finite, at least 0 (above 0 when ``positive``); ``default`` when unset.

    :param extra: the connection's ``extra_dejson``.
    :param name: the field's plain name.
    :param default: the value when the field is unset or empty.
    :param conn_id: the connection id, for messages.
    :param conn_type: the connection type (see :func:`extra_value`).
    :param positive: refuse 0 too.
    :raises MetronomeConfigError: not a number, not finite, or out of range.
    """
    value = extra_value(extra, name, conn_type)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MetronomeConfigError(
            f"Connection {conn_id!r}: extra field {name!r} must be a number, got {value!r}"
        ) from None
    if not math.isfinite(number):
        raise MetronomeConfigError(f"Connection {conn_id!r}: extra field {name!r} must be a finite number")
    if positive and number <= 0:
        raise MetronomeConfigError(f"Connection {conn_id!r}: extra field {name!r} must be > 0")
    if number < 0:
        raise MetronomeConfigError(f"Connection {conn_id!r}: extra field {name!r} must be >= 0")
    return number


def extra_bool(extra: dict[str, Any], name: str, source: str, *, conn_type: str) -> bool | None:
    """A boolean extra field; ``None`` when unset.

    Read by :func:`~airflow_provider_metronome.client.settings.parse_bool`, the
    package's one boolean parser.

    :param extra: the connection's ``extra_dejson``.
    :param name: the field's plain name.
    :param source: what to name in the error message.
    :param conn_type: the connection type (see :func:`extra_value`).
    :raises MetronomeConfigError: not a boolean.
    """
    value = extra_value(extra, name, conn_type)
    if value in (None, ""):
        return None
    return parse_bool(value, name=name, source=source)
