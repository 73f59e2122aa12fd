"""Per-provider configuration rules, kept as data so a reader can check them against the docs.

Sources: the Metronome API reference for
https://docs.metronome.com/api-reference/customers/set-billing-provider-configurations-for-a-customer.md
(its enums and request examples) and the pages it links to. Keys a provider
*requires* are the ones every documented example of that provider carries;
Stripe's ``stripe_collection_method`` values are the documented ones.
``tax_provider`` is documented as "only supported for Stripe billing provider
configurations with auto_charge_payment_intent or manual_charge_payment_intent
collection methods".

Plain Python, no imports beyond the standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BILLING_PROVIDERS: tuple[str, ...] = (
    "aws_marketplace",
    "stripe",
    "netsuite",
    "custom",
    "azure_marketplace",
    "quickbooks_online",
    "workday",
    "gcp_marketplace",
    "metronome",
)
DELIVERY_METHODS: tuple[str, ...] = ("direct_to_billing_provider", "aws_sqs", "tackle", "aws_sns")
TAX_PROVIDERS: tuple[str, ...] = ("anrok", "avalara", "stripe")

STRIPE_COLLECTION_METHODS: tuple[str, ...] = (
    "charge_automatically",
    "send_invoice",
    "auto_charge_payment_intent",
    "manual_charge_payment_intent",
)
# Collection methods with which Metronome accepts a tax_provider on a Stripe configuration.
TAX_CAPABLE_COLLECTION_METHODS: tuple[str, ...] = (
    "auto_charge_payment_intent",
    "manual_charge_payment_intent",
)

DIRECT_TO_BILLING_PROVIDER = "direct_to_billing_provider"
AWS_REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")


@dataclass(frozen=True)
class ProviderRule:
    """What a billing provider's ``configuration`` must hold.

    :param required: keys that must be present as non-empty strings when the delivery
        method is ``direct_to_billing_provider`` (the only one whose keys the reference
        documents; an empty configuration is invalid for "most", not all, of the others).
    :param enums: keys whose value, when present, must be one of the listed strings.
    :param booleans: keys whose value, when present, must be a JSON boolean.
    :param patterns: keys whose value, when present, must match a regular expression.
    :param delivery_methods: delivery methods allowed for this provider.
    :param tax_provider_allowed: whether a ``tax_provider`` may be set.
    """

    required: tuple[str, ...] = ()
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    booleans: tuple[str, ...] = ()
    patterns: dict[str, re.Pattern[str]] = field(default_factory=dict)
    delivery_methods: tuple[str, ...] = ("direct_to_billing_provider", "aws_sqs", "aws_sns")
    tax_provider_allowed: bool = False


PROVIDER_RULES: dict[str, ProviderRule] = {
    "stripe": ProviderRule(
        required=("stripe_customer_id",),
        enums={"stripe_collection_method": STRIPE_COLLECTION_METHODS},
        booleans=("leave_stripe_invoices_in_draft",),
        tax_provider_allowed=True,
    ),
    "aws_marketplace": ProviderRule(
        required=("aws_customer_id", "aws_product_code", "aws_region"),
        booleans=("aws_is_subscription_product",),
        patterns={"aws_region": AWS_REGION_PATTERN},
        # Tackle is documented "specifically for AWS Marketplace transactions".
        delivery_methods=("direct_to_billing_provider", "aws_sqs", "tackle", "aws_sns"),
    ),
    "azure_marketplace": ProviderRule(required=("azure_subscription_id",)),
    "gcp_marketplace": ProviderRule(required=("gcp_entitlement_id", "gcp_service_name")),
    "netsuite": ProviderRule(required=("netsuite_customer_id",)),
    "quickbooks_online": ProviderRule(),
    "workday": ProviderRule(),
    "custom": ProviderRule(),
    "metronome": ProviderRule(),
}


def configuration_problems(
    billing_provider: str,
    configuration: dict[str, object],
    delivery_method: str | None,
    tax_provider: str | None,
) -> list[tuple[str, str]]:
    """Check one configuration against :data:`PROVIDER_RULES`.

    :param billing_provider: one of :data:`BILLING_PROVIDERS`.
    :param configuration: the provider-specific configuration object.
    :param delivery_method: the delivery method name; ``None`` when not known yet (the
        keys a provider requires are then not checked: check again once it is).
    :param tax_provider: the tax provider, when given.
    :return: ``(field, reason)`` pairs; empty when the configuration is acceptable.
    """
    rule = PROVIDER_RULES.get(billing_provider)
    if rule is None:
        return [("billing_provider", f"unknown billing provider {billing_provider!r}")]
    problems: list[tuple[str, str]] = []
    # Present keys are always checked; their presence is required only where documented.
    # delivery_method None: not known yet (the row gave an id); checked again once resolved.
    required = delivery_method == DIRECT_TO_BILLING_PROVIDER
    for key in rule.required:
        value = configuration.get(key)
        if value is None:
            if required:
                problems.append((f"configuration.{key}", f"{billing_provider} requires {key}"))
        elif not isinstance(value, str):
            problems.append(
                (f"configuration.{key}", f"{key} must be a string, got {type(value).__name__} {value!r}")
            )
        elif not value.strip():
            problems.append((f"configuration.{key}", f"{key} must not be empty"))
    for key, allowed in rule.enums.items():
        if key in configuration and configuration[key] not in allowed:
            problems.append(
                (f"configuration.{key}", f"{key} {configuration[key]!r} is not one of {', '.join(allowed)}")
            )
    for key in rule.booleans:
        if key in configuration and not isinstance(configuration[key], bool):
            problems.append(
                (f"configuration.{key}", f"{key} must be true or false, got {configuration[key]!r}")
            )
    for key, pattern in rule.patterns.items():
        value = configuration.get(key)
        if isinstance(value, str) and value.strip() and not pattern.match(value):
            problems.append(
                (f"configuration.{key}", f"{key} {value!r} is not a valid region (e.g. us-west-1)")
            )
    if delivery_method is not None and delivery_method not in rule.delivery_methods:
        problems.append(
            (
                "delivery_method",
                f"{delivery_method!r} is not available for {billing_provider} "
                f"(allowed: {', '.join(rule.delivery_methods)})",
            )
        )
    if tax_provider is not None:
        if not rule.tax_provider_allowed:
            problems.append(
                ("tax_provider", f"tax_provider is only supported for stripe, not {billing_provider}")
            )
        elif configuration.get("stripe_collection_method") not in TAX_CAPABLE_COLLECTION_METHODS:
            problems.append(
                (
                    "tax_provider",
                    "tax_provider needs stripe_collection_method "
                    f"{' or '.join(TAX_CAPABLE_COLLECTION_METHODS)}",
                )
            )
    return problems
