"""Provider metadata read by Airflow's providers manager. Cheap: no heavy imports."""

from __future__ import annotations

from typing import Any

METRONOME_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["login", "port", "schema", "extra"],
    "relabeling": {"password": "API token", "host": "Base URL"},
    "placeholders": {
        "host": "https://api.metronome.com",
        "password": "Metronome API token (Connections > API tokens & webhooks)",
        "timeout": "60",
        "max_retries": "5",
        "max_retry_wait": "120",
        "app_url": "https://app.metronome.com",
    },
}

AVALARA_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "port", "schema", "extra"],
    "relabeling": {"login": "Avalara username", "password": "Avalara password"},
    "placeholders": {"login": "you@example.com", "environment": "SANDBOX"},
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider: connection types, form fields, hooks, operators, links."""
    from airflow_provider_metronome import __version__

    return {
        "package-name": "airflow-provider-metronome",
        "name": "Metronome",
        "description": "Keep Metronome billing provider configurations and tax credentials in step "
        "with your data warehouse.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Metronome",
                "external-doc-url": "https://docs.metronome.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Metronome",
                "python-modules": [
                    "airflow_provider_metronome.hooks.metronome",
                    "airflow_provider_metronome.hooks.avalara",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "Metronome",
                "python-modules": [
                    "airflow_provider_metronome.operators.billing_config",
                    "airflow_provider_metronome.operators.avalara",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_metronome.hooks.metronome.MetronomeHook",
                "hook-name": "Metronome",
                "connection-type": "metronome",
                "conn-fields": {
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Per-request timeout.",
                        "schema": {"type": ["number", "null"], "default": 60},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries of connection errors, timeouts, 408 and 5xx "
                        "(429s are retried for as long as the max total retry wait allows).",
                        "schema": {"type": ["integer", "null"], "default": 5},
                    },
                    "max_retry_wait": {
                        "label": "Max total retry wait (seconds)",
                        "description": "All retries of one request wait at most this long together "
                        "(the budget of 429 retries).",
                        "schema": {"type": ["number", "null"], "default": 120},
                    },
                    "app_url": {
                        "label": "Metronome app URL (for links)",
                        "description": "Where the task's Metronome button points. Empty: the Metronome "
                        "app for the production API, no button for other hosts.",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": METRONOME_UI_FIELD_BEHAVIOUR,
            },
            {
                "hook-class-name": "airflow_provider_metronome.hooks.avalara.AvalaraHook",
                "hook-name": "Avalara (Metronome tax credentials)",
                "connection-type": "avalara",
                "conn-fields": {
                    "environment": {
                        "label": "Avalara environment",
                        "schema": {
                            "type": ["string", "null"],
                            "default": "SANDBOX",
                            "enum": ["SANDBOX", "PRODUCTION"],
                        },
                    },
                    "commit_transactions": {
                        "label": "Commit transactions",
                        "description": "Commit Metronome tax calculations in Avalara (reporting, filings).",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                },
                "ui-field-behaviour": AVALARA_UI_FIELD_BEHAVIOUR,
            },
        ],
        "extra-links": ["airflow_provider_metronome.links.MetronomeLink"],
    }
