"""UpsertAvalaraCredentialsOperator: set or rotate Avalara credentials on delivery methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_metronome.hooks.avalara import AvalaraHook
from airflow_provider_metronome.hooks.metronome import MetronomeHook
from airflow_provider_metronome.operators.base import MetronomeBaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context, XComArg

    from airflow_provider_metronome.hooks.avalara import AvalaraCredentials


class UpsertAvalaraCredentialsOperator(MetronomeBaseOperator):
    """Set Avalara credentials on Metronome delivery methods (``POST /v1/upsertAvalaraCredentials``).

    The credentials come from an Airflow connection of type ``avalara`` (login =
    user name, password = password, extra ``environment`` and
    ``commit_transactions``), never from an argument, so they stay out of DAG files,
    rendered templates, XCom and logs.

    Choose the delivery methods by id (``delivery_method_ids``), or by a selector
    (``billing_provider`` and/or ``delivery_method``) matched against every page of
    ``listConfiguredBillingProviders``; not both. Unknown ids fail the task, naming
    them. An empty id list and no selector (e.g. an upstream task found nothing
    needing Avalara) does nothing and succeeds, unless ``allow_empty`` is false (an
    on-demand DAG, where an empty selection means the person forgot to choose).
    Empty strings count as not given, so all three can be templated from DAG params.

    Returns the delivery method ids updated.

    :param delivery_method_ids: ids to update: a list, a JSON list or comma-separated
        text. (templated)
    :param billing_provider: select every delivery method of this provider. (templated)
    :param delivery_method: select every delivery method of this kind. (templated)
    :param avalara_conn_id: the ``avalara`` connection. (templated)
    :param metronome_conn_id: the ``metronome`` connection. (templated)
    :param avalara_environment: overrides the connection's ``environment``
        (``SANDBOX`` or ``PRODUCTION``). (templated)
    :param commit_transactions: overrides the connection's ``commit_transactions``.
    :param allow_empty: succeed doing nothing when no delivery method is chosen
        (default); when false, fail and say how to choose.
    """

    template_fields: Sequence[str] = (
        "delivery_method_ids",
        "billing_provider",
        "delivery_method",
        "avalara_conn_id",
        "metronome_conn_id",
        "avalara_environment",
    )
    template_fields_renderers = {"delivery_method_ids": "json"}
    ui_color = "#fdf2e9"

    def __init__(
        self,
        *,
        delivery_method_ids: list[str] | str | XComArg | None = None,
        billing_provider: str | None = None,
        delivery_method: str | None = None,
        avalara_conn_id: str = AvalaraHook.default_conn_name,
        metronome_conn_id: str = MetronomeHook.default_conn_name,
        avalara_environment: str | None = None,
        commit_transactions: bool | None = None,
        allow_empty: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(metronome_conn_id=metronome_conn_id, **kwargs)
        if delivery_method_ids is None and billing_provider is None and delivery_method is None:
            raise ValueError(
                f"{self.task_id}: give delivery_method_ids, or billing_provider and/or "
                "delivery_method to select them"
            )
        self.delivery_method_ids = delivery_method_ids
        self.billing_provider = billing_provider
        self.delivery_method = delivery_method
        self.avalara_conn_id = avalara_conn_id
        self.avalara_environment = avalara_environment
        self.commit_transactions = commit_transactions
        self.allow_empty = allow_empty

    def execute(self, context: Context) -> list[str]:
        from airflow_provider_metronome.client.delivery_methods import DeliveryMethodSelection

        with self.failing_fast():
            selection = DeliveryMethodSelection.parse(
                self.delivery_method_ids,
                billing_provider=self.billing_provider,
                delivery_method=self.delivery_method,
            )
            if selection.empty:
                return self._nothing_chosen()
            creds = self._credentials()
            self.persist_link(context)
            ids = selection.resolve(
                self.hook.iter_configured_billing_providers(),
                account=f"the Metronome account of connection {self.metronome_conn_id!r}",
            )
            self.log.info(
                "Setting Avalara credentials of %s (%s) on %d delivery method(s): %s",
                creds.username, creds.environment, len(ids), ", ".join(ids),
            )  # fmt: skip
            self.hook.upsert_avalara_credentials(
                ids,
                avalara_environment=creds.environment,
                avalara_username=creds.username,
                avalara_password=creds.password,
                commit_transactions=creds.commit_transactions,
                idempotency_key=self._idempotency_key(context, ids, creds),
            )
        return ids

    def _nothing_chosen(self) -> list[str]:
        if not self.allow_empty:
            raise AirflowFailException(
                "No delivery method chosen: give delivery_method_ids, or billing_provider and/or "
                "delivery_method to select every matching delivery method"
            )
        self.log.info("No delivery methods to update: nothing to do")
        return []

    def _credentials(self) -> AvalaraCredentials:
        from airflow.providers.common.compat.sdk import mask_secret

        creds = AvalaraHook(avalara_conn_id=self.avalara_conn_id).get_credentials(
            environment=(self.avalara_environment or "").strip() or None,
            commit_transactions=self.commit_transactions,
        )
        mask_secret(creds.password)
        return creds

    @staticmethod
    def _idempotency_key(context: Context, ids: list[str], creds: AvalaraCredentials) -> str:
        """The same key for a retried request of this try; a new one for the next try or run."""
        from airflow_provider_metronome.client.idempotency import idempotency_key

        ti = context["ti"]
        # The key never derives from the password: keys are logged by servers.
        facts = [ids, creds.environment, creds.username, creds.commit_transactions]
        return idempotency_key("upsertAvalaraCredentials", [*facts, ti.dag_id, ti.run_id, ti.try_number])
