"""Operator extra link: from a task in the Airflow UI to Metronome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context, TaskInstanceKey

METRONOME_APP_URL = "https://app.metronome.com"
_PRODUCTION_API_HOST = "api.metronome.com"


def app_url_for(base_url: str, configured: str | None = None) -> str | None:
    """The Metronome app that shows what the API at ``base_url`` holds, if one is known.

    :param base_url: the API base URL of the connection.
    :param configured: the connection's ``app_url`` extra, which wins when set.
    :return: the production app for the production API, ``configured`` for any
        other host, or ``None`` (no link) when neither applies.
    """
    if configured and configured.strip():
        return configured.strip().rstrip("/")
    from urllib.parse import urlsplit

    if urlsplit(base_url).hostname == _PRODUCTION_API_HOST:
        return METRONOME_APP_URL
    return None


def metronome_url(app_url: str | None, customer_id: str | None = None) -> str:
    """The most specific Metronome page for what a task touched.

    :param app_url: the Metronome app (:func:`app_url_for`); ``None`` gives no link.
    :param customer_id: the one customer the task touched, if exactly one.
    :return: the customer's page, else the customers page; ``""`` without an app.
    """
    if not app_url:
        return ""
    return f"{app_url}/customers/{customer_id}" if customer_id else f"{app_url}/customers"


class MetronomeLink(BaseOperatorLink):
    """The "Metronome" button of a task: opens what the task changed.

    Tasks store the URL as they start (so a failed task has one too) and make it more
    specific when they end; a connection to a non-production API without an
    ``app_url`` extra gives no link.
    """

    name = "Metronome"
    # Airflow 3 reads links from XCom under this key (its default for this class);
    # Airflow 2's BaseOperatorLink has no such attribute, so it is spelled out.
    xcom_key = "_link_MetronomeLink"

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        """Store the link for the task instance being run.

        :param context: the task's context.
        :param url: the URL to open.
        """
        context["ti"].xcom_push(key=cls().xcom_key, value=url)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value: Any = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return str(value) if value else ""
