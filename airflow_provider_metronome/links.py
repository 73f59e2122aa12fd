"""Operator extra link: from a task in the Airflow UI to Metronome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context, TaskInstanceKey

METRONOME_APP_URL = "https://app.metronome.com"


def metronome_url(base_url: str, customer_id: str | None = None) -> str:
    """Where a person looks at what the task changed.

    For the real API that is the Metronome app (the customer's page when the task
    touched exactly one customer); for the emulator, its state dump.

    :param base_url: the API base URL the task used.
    :param customer_id: the one customer the task touched, if any.
    """
    if base_url.rstrip("/") in ("https://api.metronome.com", "http://api.metronome.com"):
        return (
            f"{METRONOME_APP_URL}/customers/{customer_id}"
            if customer_id
            else f"{METRONOME_APP_URL}/customers"
        )
    return f"{base_url.rstrip('/')}/_emulator/state"


class MetronomeLink(BaseOperatorLink):
    """The "Metronome" button of a task: opens what the task changed."""

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
