"""Airflow hook for the Metronome API: an Airflow connection turned into a Metronome client."""

from __future__ import annotations

import functools
from functools import cached_property
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_metronome.client.client import MetronomeClient
from airflow_provider_metronome.client.endpoints import MetronomeEndpoints
from airflow_provider_metronome.client.redact import mask_in_airflow
from airflow_provider_metronome.client.retry import RetryPolicy
from airflow_provider_metronome.client.settings import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    ClientSettings,
    normalize_base_url,
    valid_timeout,
)
from airflow_provider_metronome.exceptions import MetronomeConfigError
from airflow_provider_metronome.hooks.connections import extra_number, extra_value, get_connection

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.providers.common.compat.sdk import Connection
    from metronome import Metronome

P = ParamSpec("P")
R = TypeVar("R")

CONN_TYPE = "metronome"


def connection_settings(
    conn: Connection,
    conn_id: str,
    *,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> tuple[ClientSettings, str | None]:
    """The client settings a ``metronome`` connection describes, and its ``app_url`` extra.

    The token (the connection's password) is registered with Airflow's secrets masker
    as given, stripped and as ``Bearer <token>`` before anything else is checked.

    :param conn: the connection.
    :param conn_id: its id, for messages.
    :param timeout: overrides the ``timeout`` extra.
    :param max_retries: overrides the ``max_retries`` extra.
    :param max_connections: size of the HTTP connection pool.
    :raises MetronomeConfigError: a field is unusable; the message names the connection.
    """
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
    seconds = (
        timeout
        if timeout is not None
        else extra_number(extra, "timeout", DEFAULT_TIMEOUT, conn_id, positive=True)
    )
    if not valid_timeout(seconds):
        raise MetronomeConfigError(
            f"Connection {conn_id!r}: the timeout must be a number of seconds above 0, got {seconds!r}"
        )
    retries = max_retries if max_retries is not None else int(extra_number(extra, "max_retries", 5, conn_id))
    total_wait = extra_number(extra, "max_retry_wait", 120.0, conn_id)
    raw_app_url = extra_value(extra, "app_url", CONN_TYPE)
    app_url = str(raw_app_url) if raw_app_url else None
    # The link is shown to everyone who can see the task: no credentials in it.
    if app_url and "@" in urlsplit(app_url if "://" in app_url else f"https://{app_url}").netloc:
        raise MetronomeConfigError(
            f"Connection {conn_id!r}: extra field 'app_url' must not hold a user name or password"
        )
    try:
        base_url = normalize_base_url(conn.host if not conn.port else f"{conn.host}:{conn.port}")
    except MetronomeConfigError as err:
        raise MetronomeConfigError(f"Connection {conn_id!r}: {err}") from None
    settings = ClientSettings(
        base_url=base_url,
        token=given,
        timeout=float(seconds),
        retry=RetryPolicy(max_retries=retries, max_total_wait=total_wait),
        max_connections=max_connections,
        source=f"Airflow connection {conn_id!r}",
    )
    return settings, app_url


def _forward(
    call: Callable[Concatenate[MetronomeEndpoints, P], R],
) -> Callable[Concatenate[MetronomeHook, P], R]:
    """A hook method that runs the client's method of the same name (same signature and docs)."""
    name = call.__name__

    @functools.wraps(call)
    def forwarded(self: MetronomeHook, /, *args: P.args, **kwargs: P.kwargs) -> R:
        method: Callable[P, R] = getattr(self.client, name)
        return method(*args, **kwargs)

    return forwarded


class MetronomeHook(BaseHook):
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

    :attr:`client` is the :class:`~airflow_provider_metronome.client.MetronomeClient`
    of the connection, built once; the hook's typed methods are the client's. Each
    retries connection errors, timeouts, 408 and 5xx (up to ``max_retries`` times)
    and 429 (for as long as ``max_retry_wait`` allows) with exponential backoff and
    jitter, never waiting less than the server's ``Retry-After``; other 4xx fail at
    once with the API's message.

    :param metronome_conn_id: the Airflow connection id of type ``metronome``.
    :param timeout: overrides the connection's ``timeout``.
    :param max_retries: overrides the connection's ``max_retries``.
    :param max_connections: size of the HTTP connection pool.
    """

    conn_name_attr = "metronome_conn_id"
    default_conn_name = "metronome_default"
    conn_type = CONN_TYPE
    hook_name = "Metronome"

    def __init__(
        self,
        metronome_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metronome_conn_id = metronome_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_connections = max_connections
        self._app_url_extra: str | None = None

    @cached_property
    def settings(self) -> ClientSettings:
        """The client settings of the connection (read on first use)."""
        conn_id = self.metronome_conn_id
        conn = get_connection(self, conn_id, CONN_TYPE)
        settings, self._app_url_extra = connection_settings(
            conn,
            conn_id,
            timeout=self.timeout,
            max_retries=self.max_retries,
            max_connections=self.max_connections,
        )
        return settings

    @cached_property
    def client(self) -> MetronomeClient:
        """The Metronome client of the connection (built on first use)."""
        return MetronomeClient.from_settings(self.settings)

    def get_conn(self) -> Metronome:
        """Return the official SDK client (``metronome.Metronome``) for this connection.

        It is configured with the base URL, the token, the timeout, this package's
        ``User-Agent`` and the SDK's own retries (``max_retries`` of the connection),
        for code that wants to call endpoints this provider does not wrap.
        """
        return self.client.get_conn()

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated read (``GET /v1/customers?limit=1``); return ``(ok, message)``.

        A connection that cannot make a request (no token, a bad base URL) is
        reported without one. The message never holds the token.
        """
        try:
            client = self.client
        except Exception as err:
            return False, f"Cannot test the Metronome connection: {err}"
        return client.test_connection()

    @property
    def api_calls(self) -> int:
        """HTTP requests sent so far by the typed methods (every retry counts)."""
        client: MetronomeClient | None = self.__dict__.get("client")
        return client.api_calls if client is not None else 0

    @property
    def api_calls_by_endpoint(self) -> dict[str, int]:
        """HTTP requests sent so far, by endpoint (``"GET /v1/customers"``: ids grouped by template)."""
        client: MetronomeClient | None = self.__dict__.get("client")
        return client.api_calls_by_endpoint if client is not None else {}

    def close(self) -> None:
        """Close the client's HTTP connection pool, if one was opened; log pending retry counts."""
        client: MetronomeClient | None = self.__dict__.get("client")
        if client is not None:
            client.close()

    @property
    def app_url(self) -> str | None:
        """The Metronome app for this connection's links (see :func:`~..links.app_url_for`)."""
        from airflow_provider_metronome.links import app_url_for

        base_url = self.settings.base_url  # reads the connection on first use
        return app_url_for(base_url, self._app_url_extra)

    # The typed calls (see MetronomeEndpoints), run by the connection's client.
    set_billing_provider_configurations = _forward(MetronomeEndpoints.set_billing_provider_configurations)
    get_billing_provider_configurations = _forward(MetronomeEndpoints.get_billing_provider_configurations)
    archive_billing_provider_configurations = _forward(
        MetronomeEndpoints.archive_billing_provider_configurations
    )
    iter_configured_billing_providers = _forward(MetronomeEndpoints.iter_configured_billing_providers)
    list_configured_billing_providers = _forward(MetronomeEndpoints.list_configured_billing_providers)
    upsert_avalara_credentials = _forward(MetronomeEndpoints.upsert_avalara_credentials)
    iter_customers = _forward(MetronomeEndpoints.iter_customers)
    list_customers = _forward(MetronomeEndpoints.list_customers)
    get_customer = _forward(MetronomeEndpoints.get_customer)
    find_customer_by_ingest_alias = _forward(MetronomeEndpoints.find_customer_by_ingest_alias)
    create_customer = _forward(MetronomeEndpoints.create_customer)
    set_ingest_aliases = _forward(MetronomeEndpoints.set_ingest_aliases)

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
