"""UpsertAvalaraCredentialsOperator: set or rotate Avalara credentials on delivery methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_metronome.hooks.avalara import AvalaraHook
from airflow_provider_metronome.hooks.metronome import MetronomeHook
from airflow_provider_metronome.links import MetronomeLink, metronome_url

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context, XComArg


class UpsertAvalaraCredentialsOperator(BaseOperator):
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

    :param delivery_method_ids: ids to update. (templated)
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
    operator_extra_links = (MetronomeLink(),)

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
        super().__init__(**kwargs)
        if delivery_method_ids is None and billing_provider is None and delivery_method is None:
            raise ValueError(
                f"{self.task_id}: give delivery_method_ids, or billing_provider and/or "
                "delivery_method to select them"
            )
        self.delivery_method_ids = delivery_method_ids
        self.billing_provider = billing_provider
        self.delivery_method = delivery_method
        self.avalara_conn_id = avalara_conn_id
        self.metronome_conn_id = metronome_conn_id
        self.avalara_environment = avalara_environment
        self.commit_transactions = commit_transactions
        self.allow_empty = allow_empty

    def _requested_ids(self) -> list[str] | None:
        ids = self.delivery_method_ids
        if ids is None:
            return None
        if isinstance(ids, str):
            import json

            text = ids.strip()
            ids = (
                json.loads(text)
                if text.startswith("[")
                else [p.strip() for p in text.split(",") if p.strip()]
            )
        if not isinstance(ids, (list, tuple)):
            raise AirflowFailException(f"delivery_method_ids must be a list, got {type(ids).__name__}")
        return list(dict.fromkeys(str(i) for i in ids))

    def execute(self, context: Context) -> list[str]:
        from airflow.providers.common.compat.sdk import mask_secret

        from airflow_provider_metronome.client.idempotency import idempotency_key
        from airflow_provider_metronome.exceptions import MetronomeAuthError, MetronomeConfigError

        requested = self._requested_ids() or None
        provider = (self.billing_provider or "").strip() or None
        method = (self.delivery_method or "").strip() or None
        if requested is not None and (provider or method):
            raise AirflowFailException(
                "Give delivery_method_ids or a selector (billing_provider/delivery_method), not both"
            )
        if requested is None and provider is None and method is None:
            if not self.allow_empty:
                raise AirflowFailException(
                    "No delivery method chosen: give delivery_method_ids, or billing_provider and/or "
                    "delivery_method to select every matching delivery method"
                )
            self.log.info("No delivery methods to update: nothing to do")
            return []
        try:
            creds = AvalaraHook(avalara_conn_id=self.avalara_conn_id).get_credentials(
                environment=(self.avalara_environment or "").strip() or None,
                commit_transactions=self.commit_transactions,
            )
        except MetronomeConfigError as err:
            raise AirflowFailException(str(err)) from None
        mask_secret(creds.password)
        hook = MetronomeHook(metronome_conn_id=self.metronome_conn_id)
        try:
            MetronomeLink.persist(context, metronome_url(hook.app_url))
            configured = hook.list_configured_billing_providers()
            if requested is not None:
                known = {d["delivery_method_id"] for d in configured}
                unknown = [i for i in requested if i not in known]
                if unknown:
                    raise AirflowFailException(
                        f"Unknown delivery method id(s) in the Metronome account of connection "
                        f"{self.metronome_conn_id!r}: {', '.join(unknown)} "
                        "(see listConfiguredBillingProviders)"
                    )
                ids = requested
            else:
                ids = [
                    d["delivery_method_id"]
                    for d in configured
                    if (provider is None or d["billing_provider"] == provider)
                    and (method is None or d["delivery_method"] == method)
                ]
                if not ids:
                    raise AirflowFailException(
                        f"No configured delivery method matches billing_provider={provider!r}, "
                        f"delivery_method={method!r}"
                    )
            # The key never derives from the password: keys are logged by servers.
            ti = context["ti"]
            key = idempotency_key(
                "upsertAvalaraCredentials",
                [
                    ids,
                    creds.environment,
                    creds.username,
                    creds.commit_transactions,
                    ti.dag_id,
                    ti.run_id,
                    ti.try_number,
                ],
            )
            self.log.info(
                "Setting Avalara credentials of %s (%s) on %d delivery method(s): %s",
                creds.username, creds.environment, len(ids), ", ".join(ids),
            )  # fmt: skip
            hook.upsert_avalara_credentials(
                ids,
                avalara_environment=creds.environment,
                avalara_username=creds.username,
                avalara_password=creds.password,
                commit_transactions=creds.commit_transactions,
                idempotency_key=key,
            )
        except MetronomeAuthError as err:
            raise AirflowFailException(
                f"Metronome refused the credentials of connection {self.metronome_conn_id!r}: {err}"
            ) from None
        except MetronomeConfigError as err:
            raise AirflowFailException(str(err)) from None
        finally:
            hook.close()
        return ids
