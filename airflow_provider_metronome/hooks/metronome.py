"""Airflow hook for the Metronome API."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_metronome.client.api import (
    DEFAULT_TIMEOUT,
    ClientSettings,
    MetronomeApi,
    normalize_base_url,
)
from airflow_provider_metronome.client.redact import mask_in_airflow
from airflow_provider_metronome.client.retry import RetryPolicy
from airflow_provider_metronome.exceptions import MetronomeConfigError


def _extra_number(
    extra: dict[str, Any], name: str, default: float, conn_id: str, *, positive: bool = False
) -> float:
    # Accept both the plain key and the prefixed form older UIs wrote.
    value = extra.get(name, extra.get(f"extra__metronome__{name}"))
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


def _check_timeout(timeout: float, conn_id: str) -> float:
    # 0 would make every read fail at once ("Operation now in progress"); no timeout at
    # all would let a stalled server hold a task forever.
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise MetronomeConfigError(
            f"Connection {conn_id!r}: the timeout must be a number of seconds above 0, got {timeout!r}"
        )
    return float(timeout)


def _check_app_url(app_url: str, conn_id: str) -> str:
    # The link is shown to everyone who can see the task: no credentials in it.
    if "@" in urlsplit(app_url if "://" in app_url else f"https://{app_url}").netloc:
        raise MetronomeConfigError(
            f"Connection {conn_id!r}: extra field 'app_url' must not hold a user name or password"
        )
    return app_url


def _get_connection(hook: BaseHook, conn_id: str, conn_type: str) -> Any:
    """The connection, or a config error saying how to define it (retrying cannot create it)."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    try:
        return hook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise MetronomeConfigError(
            f"Airflow connection {conn_id!r} is not defined: create a {conn_type!r} connection with that id "
            f"(UI, CLI, or the AIRFLOW_CONN_{conn_id.upper()} environment variable)"
        ) from None


class MetronomeHook(MetronomeApi, BaseHook):
    """Interact with Metronome through the official ``metronome-sdk``.

    The connection is read on first use, never in ``__init__``. Its ``password`` is
    the API token; its ``host`` the base URL (a full URL such as
    ``http://127.0.0.1:8080``, a bare host with https assumed, or empty for
    ``https://api.metronome.com``; never with a ``user:password@``). Extra fields:
    ``timeout`` (seconds each request may take, answer included; above 0; default
    60), ``max_retries`` (default 5), ``max_retry_wait`` (seconds all
    retries of one request may wait together, default 120) and ``app_url`` (the
    Metronome app the task links point at; default: ``https://app.metronome.com``
    for the production API, no link for other hosts).

    Every typed method (see :class:`~airflow_provider_metronome.client.api.MetronomeApi`)
    retries connection errors, timeouts, 408 and 5xx (up to ``max_retries`` times) and
    429 (for as long as ``max_retry_wait`` allows) with exponential backoff and jitter,
    never waiting less than the server's ``Retry-After``; other 4xx fail at once with
    the API's message.

    :param metronome_conn_id: the Airflow connection id of type ``metronome``.
    :param timeout: overrides the connection's ``timeout``.
    :param max_retries: overrides the connection's ``max_retries``.
    :param max_connections: size of the HTTP connection pool.
    """

    conn_name_attr = "metronome_conn_id"
    default_conn_name = "metronome_default"
    conn_type = "metronome"
    hook_name = "Metronome"

    def __init__(
        self,
        metronome_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_connections: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metronome_conn_id = metronome_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_connections = max_connections
        self._app_url_extra: str | None = None

    def _client_settings(self) -> ClientSettings:
        conn_id = self.metronome_conn_id
        conn = _get_connection(self, conn_id, "metronome")
        extra = conn.extra_dejson or {}
        given = conn.password or ""
        # Metronome tokens hold no whitespace; one read from a secret file often ends
        # with a newline. The token is sent stripped; both forms are kept out of every
        # message and log (Airflow's masker included).
        token = given.strip()
        if not token:
            raise MetronomeConfigError(
                f"Connection {conn_id!r} has no API token: put the Metronome API token in its password"
            )
        mask_in_airflow(given, token, f"Bearer {token}")
        timeout = _check_timeout(
            self.timeout
            if self.timeout is not None
            else _extra_number(extra, "timeout", DEFAULT_TIMEOUT, conn_id, positive=True),
            conn_id,
        )
        retries = (
            self.max_retries
            if self.max_retries is not None
            else int(_extra_number(extra, "max_retries", 5, conn_id))
        )
        total_wait = _extra_number(extra, "max_retry_wait", 120.0, conn_id)
        app_url = extra.get("app_url", extra.get("extra__metronome__app_url"))
        self._app_url_extra = _check_app_url(str(app_url), conn_id) if app_url else None
        try:
            base_url = normalize_base_url(conn.host if not conn.port else f"{conn.host}:{conn.port}")
        except MetronomeConfigError as err:
            raise MetronomeConfigError(f"Connection {conn_id!r}: {err}") from None
        return ClientSettings(
            base_url=base_url,
            token=given,
            timeout=timeout,
            retry=RetryPolicy(max_retries=retries, max_total_wait=total_wait),
            max_connections=self.max_connections,
            source=f"Airflow connection {conn_id!r}",
        )

    @property
    def app_url(self) -> str | None:
        """The Metronome app for this connection's links (see :func:`~..links.app_url_for`)."""
        from airflow_provider_metronome.links import app_url_for

        base_url = self.settings.base_url  # reads the connection on first use
        return app_url_for(base_url, self._app_url_extra)

    def __repr__(self) -> str:
        return f"MetronomeHook(metronome_conn_id={self.metronome_conn_id!r})"

    # Legacy form hooks, for Airflow versions that read the form from the hook class.
    # Provider info (get_provider_info) declares the same thing declaratively.
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra connection form fields (legacy UI)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, StringField

        return {
            "timeout": StringField(lazy_gettext("Timeout (seconds)"), widget=BS3TextFieldWidget()),
            "max_retries": IntegerField(lazy_gettext("Max retries"), widget=BS3TextFieldWidget()),
            "max_retry_wait": StringField(
                lazy_gettext("Max total retry wait (seconds)"), widget=BS3TextFieldWidget()
            ),
            "app_url": StringField(
                lazy_gettext("Metronome app URL (for links)"), widget=BS3TextFieldWidget()
            ),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide connection form fields (legacy UI)."""
        from airflow_provider_metronome.get_provider_info import METRONOME_UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": METRONOME_UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": METRONOME_UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": METRONOME_UI_FIELD_BEHAVIOUR["placeholders"],
        }
