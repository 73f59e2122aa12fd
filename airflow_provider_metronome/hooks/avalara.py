"""Avalara credentials held in an Airflow connection of type ``avalara``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_metronome.client.redact import mask_in_airflow
from airflow_provider_metronome.exceptions import MetronomeConfigError
from airflow_provider_metronome.hooks.connections import extra_bool, extra_value, get_connection

AVALARA_ENVIRONMENTS = ("SANDBOX", "PRODUCTION")


@dataclass(frozen=True)
class AvalaraCredentials:
    """Avalara credentials. The password never appears in ``repr``.

    :param username: Avalara user name.
    :param password: Avalara password.
    :param environment: ``SANDBOX`` or ``PRODUCTION``.
    :param commit_transactions: whether Metronome commits transactions in Avalara.
    """

    username: str
    password: str = field(repr=False)
    environment: str
    commit_transactions: bool | None = None


class AvalaraHook(BaseHook):
    """Read Avalara credentials from an Airflow connection.

    ``login`` is the Avalara user name and ``password`` the Avalara password. Extra:
    ``{"environment": "SANDBOX" | "PRODUCTION", "commit_transactions": true | false}``
    (``environment`` defaults to ``SANDBOX`` so a forgotten field never writes to
    production tax filings).

    :param avalara_conn_id: the Airflow connection id of type ``avalara``.
    """

    conn_name_attr = "avalara_conn_id"
    default_conn_name = "avalara_default"
    conn_type = "avalara"
    hook_name = "Avalara (Metronome tax credentials)"

    def __init__(self, avalara_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.avalara_conn_id = avalara_conn_id

    def get_conn(self) -> AvalaraCredentials:
        """Return the credentials of the connection."""
        return self.get_credentials()

    def get_credentials(
        self, *, environment: str | None = None, commit_transactions: bool | None = None
    ) -> AvalaraCredentials:
        """Return the credentials, with optional overrides of the non-secret values.

        :param environment: overrides the connection's ``environment``.
        :param commit_transactions: overrides the connection's ``commit_transactions``.
        """
        conn = get_connection(self, self.avalara_conn_id, self.conn_type)
        source = f"Airflow connection {self.avalara_conn_id!r}"
        extra = conn.extra_dejson or {}
        if not conn.login:
            raise MetronomeConfigError(f"{source} has no login: put the Avalara user name in it")
        if not conn.password:
            raise MetronomeConfigError(f"{source} has no password: put the Avalara password in it")
        env = environment or extra_value(extra, "environment", self.conn_type) or "SANDBOX"
        env = str(env).strip().upper()
        if env not in AVALARA_ENVIRONMENTS:
            raise MetronomeConfigError(f"{source}: environment must be SANDBOX or PRODUCTION, got {env!r}")
        commit = commit_transactions
        if commit is None:
            commit = extra_bool(extra, "commit_transactions", source, conn_type=self.conn_type)
        # Out of task logs from now on, whoever prints it (the SDK's DEBUG request line
        # included; the client scrubs its own messages and logs too).
        mask_in_airflow(conn.password)
        return AvalaraCredentials(
            username=conn.login, password=conn.password, environment=env, commit_transactions=commit
        )

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection holds usable credentials (no call to Avalara is made)."""
        try:
            creds = self.get_credentials()
        except MetronomeConfigError as err:
            return False, str(err)
        return True, f"Avalara credentials for {creds.username} ({creds.environment}) are complete"

    def __repr__(self) -> str:
        return f"AvalaraHook(avalara_conn_id={self.avalara_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide connection form fields (legacy UI)."""
        from airflow_provider_metronome.get_provider_info import AVALARA_UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": AVALARA_UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": AVALARA_UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": AVALARA_UI_FIELD_BEHAVIOUR["placeholders"],
        }
