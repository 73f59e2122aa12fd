"""With the package installed, Airflow discovers the provider and its connection types."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_provider_metronome.get_provider_info import get_provider_info


def test_provider_info_matches_airflow_schema() -> None:
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_providers_manager_lists_both_connection_types() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    pm = ProvidersManager()
    assert "airflow-provider-metronome" in pm.providers
    hooks = ProvidersManagerTaskRuntime().hooks
    assert hooks["metronome"] is not None
    assert hooks["metronome"].hook_class_name == "airflow_provider_metronome.hooks.metronome.MetronomeHook"
    assert hooks["avalara"] is not None
    assert hooks["avalara"].connection_id_attribute_name == "avalara_conn_id"
    behaviour = pm.field_behaviours["metronome"]
    assert behaviour["relabeling"] == {"password": "API token", "host": "Base URL"}
    assert {"login", "port", "schema"} <= set(behaviour["hidden_fields"])
    assert behaviour["placeholders"]["host"] == "https://api.metronome.com"
    widgets = pm.connection_form_widgets
    assert {"extra__metronome__timeout", "extra__metronome__max_retries"} <= set(widgets)
    assert {"extra__avalara__environment", "extra__avalara__commit_transactions"} <= set(widgets)
    assert pm.field_behaviours["avalara"]["relabeling"]["login"] == "Avalara username"


def test_airflow_providers_list_shows_the_package(airflow_home: str) -> None:
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), "providers", "list", "--output", "json"],
        capture_output=True, text=True, env={**os.environ, "AIRFLOW_HOME": airflow_home}, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    packages = {p["package_name"] for p in json.loads(out.stdout)}
    assert "airflow-provider-metronome" in packages


def test_every_path_in_provider_info_resolves() -> None:
    import importlib

    info = get_provider_info()
    classes = [c["hook-class-name"] for c in info["connection-types"]] + info["extra-links"]
    for dotted in classes:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted
    for group in ("hooks", "operators"):
        for entry in info[group]:
            for module in entry["python-modules"]:
                importlib.import_module(module)


def test_extra_link_is_registered() -> None:
    from airflow.providers_manager import ProvidersManager

    assert "airflow_provider_metronome.links.MetronomeLink" in ProvidersManager().extra_links_class_names
