"""A run conf key that is not a param of its DAG fails the run, before anything is read or sent.

Airflow validates a run's params against their schema, but keeps any other conf key (in
``dag_run.conf`` and ``params``) without a word: a trigger passing a misspelt
``full_refesh``, or a setting that is the DAG author's (a connection id, a table, a file
path), would get a run that does something else than asked. The example DAGs call
:func:`refuse_foreign_conf` in their first task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def refuse_foreign_conf(
    dag_run: Any,
    params: Iterable[str],
    *,
    author_settings: Mapping[str, str] | None = None,
    hint: str = "",
    nothing_done: str = "nothing was read or written",
) -> None:
    """Fail the run (no retry) when its conf holds a key that is not one of ``params``.

    :param dag_run: the run (its ``conf`` is checked).
    :param params: the DAG's param names.
    :param author_settings: conf keys that are DAG-author settings, each with where it is
        set (e.g. ``"SOURCE_TABLE (env METRONOME_SYNC_SOURCE_TABLE)"``): the message says so.
    :param hint: appended to the message about other keys.
    :param nothing_done: what the message says was not done.
    :raises AirflowFailException: naming the keys.
    """
    from airflow.providers.common.compat.sdk import AirflowFailException

    conf = getattr(dag_run, "conf", None) or {}
    settings = author_settings or {}
    moved = sorted(key for key in conf if key in settings)
    if moved:
        where = "; ".join(f"{key}: {settings[key]}" for key in moved)
        raise AirflowFailException(
            f"Run conf key(s) {', '.join(map(repr, moved))} are DAG-author settings of this DAG, not run "
            f"choices: whoever may trigger a run must not choose which connection it reads, which SQL it "
            f"runs or which file it writes. They are set at the top of the DAG file or in the "
            f"deployment's environment ({where}). Trigger again without them; {nothing_done}."
        )
    names = list(params)
    unknown = sorted(key for key in conf if key not in names)
    if unknown:
        raise AirflowFailException(
            f"Run conf key(s) {', '.join(map(repr, unknown))} are not params of this DAG (its params: "
            f"{', '.join(names)}){hint}. Trigger again without them; {nothing_done}."
        )
