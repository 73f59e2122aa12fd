"""``run_conf.py``: a run conf key that is not a param fails the run and says why."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_metronome.run_conf import refuse_foreign_conf

PARAMS = ("full_refresh", "dry_run")
SETTINGS = {"source_table": "SOURCE_TABLE (env METRONOME_SYNC_SOURCE_TABLE)"}


def _run(conf: dict[str, object] | None) -> SimpleNamespace:
    return SimpleNamespace(conf=conf)


@pytest.mark.parametrize("conf", [None, {}, {"full_refresh": True}, {"full_refresh": True, "dry_run": False}])
def test_params_only_pass(conf: dict[str, object] | None) -> None:
    refuse_foreign_conf(_run(conf), PARAMS, author_settings=SETTINGS)


def test_an_author_setting_is_named_with_where_it_lives() -> None:
    with pytest.raises(AirflowFailException, match=r"'source_table' are DAG-author settings") as err:
        refuse_foreign_conf(_run({"source_table": "x", "full_refesh": 1}), PARAMS, author_settings=SETTINGS)
    assert "source_table: SOURCE_TABLE (env METRONOME_SYNC_SOURCE_TABLE)" in str(err.value)


def test_any_other_key_is_named_with_the_params() -> None:
    with pytest.raises(AirflowFailException) as err:
        refuse_foreign_conf(
            _run({"full_refesh": True}), PARAMS, hint="; a hint", nothing_done="nothing was sent"
        )
    assert str(err.value) == (
        "Run conf key(s) 'full_refesh' are not params of this DAG (its params: full_refresh, dry_run); "
        "a hint. Trigger again without them; nothing was sent."
    )
