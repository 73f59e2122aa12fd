"""What every Metronome operator shares: the hook, the link, and failing fast on what retries cannot fix."""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_metronome.client.settings import DEFAULT_MAX_CONNECTIONS
from airflow_provider_metronome.hooks.metronome import MetronomeHook
from airflow_provider_metronome.links import MetronomeLink, metronome_url

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow.providers.common.compat.sdk import Context


class MetronomeBaseOperator(BaseOperator):
    """Base class of the Metronome operators.

    * :attr:`hook` — the :class:`~airflow_provider_metronome.hooks.metronome.MetronomeHook`
      of ``metronome_conn_id``, built on first use (so after templating);
    * :meth:`failing_fast` — the one place where errors no retry can fix (a missing
      or unusable connection, credentials Metronome refuses, arguments that make no
      sense) become :class:`AirflowFailException`: the task fails at once instead of
      waiting out its retries;
    * :meth:`persist_link` — the task's "Metronome" button
      (:class:`~airflow_provider_metronome.links.MetronomeLink`).

    :param metronome_conn_id: the ``metronome`` connection. (templated)
    """

    template_fields: Sequence[str] = ("metronome_conn_id",)
    operator_extra_links = (MetronomeLink(),)

    def __init__(self, *, metronome_conn_id: str = MetronomeHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metronome_conn_id = metronome_conn_id

    @property
    def http_connections(self) -> int:
        """HTTP connections the hook may keep open (operators that send in parallel need more)."""
        return DEFAULT_MAX_CONNECTIONS

    @cached_property
    def hook(self) -> MetronomeHook:
        """The Metronome hook of ``metronome_conn_id`` (the connection is read on first use)."""
        return MetronomeHook(metronome_conn_id=self.metronome_conn_id, max_connections=self.http_connections)

    @contextmanager
    def failing_fast(self) -> Iterator[None]:
        """Run the block; fail the task without retries on errors no retry can fix; close the hook.

        Turned into :class:`AirflowFailException` (same message):
        :class:`~airflow_provider_metronome.exceptions.MetronomeConfigError` (a
        missing or unusable connection, arguments that make no sense, unknown ids),
        :class:`~airflow_provider_metronome.exceptions.MetronomeAuthError` (Metronome
        refused the token; the message names the connection) and Airflow's
        ``AirflowNotFoundException`` (any other connection that is not defined).
        Everything else (5xx, timeouts, rate limits after every retry) is left to the
        task's retries.
        """
        from airflow.providers.common.compat.sdk import AirflowNotFoundException

        from airflow_provider_metronome.exceptions import MetronomeAuthError, MetronomeConfigError

        try:
            yield
        except MetronomeAuthError as err:
            raise AirflowFailException(
                f"Metronome refused the credentials of connection {self.metronome_conn_id!r}: {err}"
            ) from None
        except (MetronomeConfigError, AirflowNotFoundException) as err:
            raise AirflowFailException(str(err)) from None
        finally:
            self.hook.close()

    def persist_link(self, context: Context, customer_id: str | None = None) -> None:
        """Point the task's "Metronome" button at what it touched (customers page without one customer).

        :param context: the task's context.
        :param customer_id: the one customer the task touched, if exactly one.
        """
        MetronomeLink.persist(context, metronome_url(self.hook.app_url, customer_id))
