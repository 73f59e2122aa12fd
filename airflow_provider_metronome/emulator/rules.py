"""What the emulator accepts as a customer billing provider configuration.

An independent reading of Metronome's reference for
``setCustomerBillingProviderConfigurations``
(https://docs.metronome.com/api-reference/customers/set-billing-provider-configurations-for-a-customer.md),
written for the emulator alone: the provider package validates rows with its own
rules, and the tests run those rules against this server, so a disagreement between
the two readings shows up as a failing test rather than being copied into both.

What the page says, and how it becomes a rule here:

- ``configuration`` "is specific to the billing provider and delivery method
  combination. Defaults to an empty object, however, for most billing provider +
  delivery method combinations, it will not be a valid configuration." The page
  documents keys only through its request examples, all of which use
  ``delivery_method: direct_to_billing_provider`` (or a ``delivery_method_id``):

  ======================  ====================================================
  billing provider        keys in the documented examples
  ======================  ====================================================
  ``stripe``              ``stripe_customer_id``, ``stripe_collection_method``,
                          ``leave_stripe_invoices_in_draft``
  ``aws_marketplace``     ``aws_customer_id``, ``aws_product_code``,
                          ``aws_region``, ``aws_is_subscription_product``
  ``azure_marketplace``   ``azure_subscription_id``
  ``gcp_marketplace``     ``gcp_entitlement_id``, ``gcp_service_name``
  ``netsuite``            ``netsuite_customer_id``
  ======================  ====================================================

  So, for ``direct_to_billing_provider``, the key that names the customer in the
  downstream system (and, for the marketplaces, what a usage record there needs:
  the AWS product code and region, the GCP service name) is required. For the other
  delivery methods (``aws_sqs``, ``aws_sns``, ``tackle``) no example exists, and the
  page says only *most* combinations need a configuration: the emulator requires no
  key there. Providers without any documented key (``custom``, ``quickbooks_online``,
  ``workday``, ``metronome``) accept any object.
- Identifiers are strings in every example (even NetSuite's numeric id is quoted,
  ``netsuite_customer_id: '12345'``): a required key must be a non-blank string.
- ``aws_is_subscription_product`` is called a "flag" and
  ``leave_stripe_invoices_in_draft`` is ``true`` in the example: both booleans.
- ``tax_provider`` "is only supported for Stripe billing provider configurations with
  auto_charge_payment_intent or manual_charge_payment_intent collection methods".
  Those two plus the collection methods of Stripe's own invoices
  (``charge_automatically``, ``send_invoice``, the values of
  ``billing_config.stripe_collection_method`` in the official SDKs) are the values
  ``stripe_collection_method`` may take.
- ``tackle``: "Use specifically for AWS Marketplace transactions": only
  ``aws_marketplace`` may be delivered through Tackle.
- The region's spelling is not documented for ``configuration.aws_region`` (the
  example is ``us-west-1``): any non-blank string is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DIRECT = "direct_to_billing_provider"

# Enums of the request schema (BillingProviderType, BillingProviderDeliveryMethodType,
# TaxProviderType in the reference page's OpenAPI block).
BILLING_PROVIDERS: frozenset[str] = frozenset(
    {
        "aws_marketplace",
        "stripe",
        "netsuite",
        "custom",
        "azure_marketplace",
        "quickbooks_online",
        "workday",
        "gcp_marketplace",
        "metronome",
    }
)
DELIVERY_METHODS: frozenset[str] = frozenset({DIRECT, "aws_sqs", "tackle", "aws_sns"})

# "only supported for Stripe billing provider configurations with
# auto_charge_payment_intent or manual_charge_payment_intent collection methods".
PAYMENT_INTENT_COLLECTION = ("auto_charge_payment_intent", "manual_charge_payment_intent")
STRIPE_COLLECTION = ("charge_automatically", "send_invoice", *PAYMENT_INTENT_COLLECTION)


@dataclass(frozen=True)
class Provider:
    """The documented shape of one billing provider's ``configuration``.

    :param needs: keys required (non-blank strings) with ``direct_to_billing_provider``.
    :param strings: other keys that, when present, must be strings.
    :param flags: keys that, when present, must be JSON booleans.
    :param choices: keys that, when present, must take one of the listed values.
    :param tackle: whether the ``tackle`` delivery method may be used.
    :param tax: whether a ``tax_provider`` may be set.
    """

    needs: tuple[str, ...] = ()
    strings: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tackle: bool = False
    tax: bool = False


PROVIDERS: dict[str, Provider] = {
    "stripe": Provider(
        needs=("stripe_customer_id",),
        flags=("leave_stripe_invoices_in_draft",),
        choices={"stripe_collection_method": STRIPE_COLLECTION},
        tax=True,
    ),
    "aws_marketplace": Provider(
        needs=("aws_customer_id", "aws_product_code", "aws_region"),
        flags=("aws_is_subscription_product",),
        tackle=True,
    ),
    "azure_marketplace": Provider(needs=("azure_subscription_id",)),
    "gcp_marketplace": Provider(needs=("gcp_entitlement_id", "gcp_service_name")),
    "netsuite": Provider(needs=("netsuite_customer_id",)),
    "custom": Provider(),
    "quickbooks_online": Provider(),
    "workday": Provider(),
    "metronome": Provider(),
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def configuration_problem(
    billing_provider: str,
    delivery_method: str,
    configuration: dict[str, Any],
    tax_provider: str | None,
) -> tuple[str, str] | None:
    """The first thing wrong with one configuration, or ``None``.

    :param billing_provider: the item's ``billing_provider``.
    :param delivery_method: the delivery method the item resolved to.
    :param configuration: the item's ``configuration`` (``{}`` when absent).
    :param tax_provider: the item's ``tax_provider``, if any.
    :return: ``(field, reason)``, the field relative to the item
        (``configuration.stripe_customer_id``, ``delivery_method``, ``tax_provider``).
    """
    provider = PROVIDERS.get(billing_provider)
    if provider is None:
        return "billing_provider", f"{billing_provider!r} is not a billing provider"
    if delivery_method == "tackle" and not provider.tackle:
        return "delivery_method", f"tackle delivers AWS Marketplace transactions only, not {billing_provider}"
    if delivery_method == DIRECT:
        for key in provider.needs:
            if key not in configuration or configuration[key] is None:
                return (
                    f"configuration.{key}",
                    f"missing: {billing_provider} with {DIRECT} needs {key}",
                )
    for key in (*provider.needs, *provider.strings):
        if key in configuration and configuration[key] is not None:
            value = configuration[key]
            if not isinstance(value, str):
                return f"configuration.{key}", f"must be a string, not {_kind(value)}"
            if not value.strip():
                return f"configuration.{key}", "must not be blank"
    for key in provider.flags:
        if key in configuration and not isinstance(configuration[key], bool):
            return f"configuration.{key}", f"must be a boolean, not {_kind(configuration[key])}"
    for key, allowed in provider.choices.items():
        if key in configuration and configuration[key] not in allowed:
            return f"configuration.{key}", f"{configuration[key]!r} is not one of {', '.join(allowed)}"
    if tax_provider is not None:
        if not provider.tax:
            return (
                "tax_provider",
                f"a tax provider is supported on stripe configurations only, not {billing_provider}",
            )
        method = configuration.get("stripe_collection_method")
        if method not in PAYMENT_INTENT_COLLECTION:
            return (
                "tax_provider",
                f"a tax provider needs stripe_collection_method {' or '.join(PAYMENT_INTENT_COLLECTION)}"
                f" (got {method!r})",
            )
    return None
