"""A JSON ``POST`` prepared once by the SDK and sent many times: the sync's hot read.

A sync reads every customer's configurations (``POST
/v1/getCustomerBillingProviderConfigurations``), one request per customer: most of
its calls. For each request the SDK transforms the parameters against their
TypedDict, merges a dozen default headers, builds an ``httpx.Request`` through the
client's ``build_request`` and wraps the answer in its response classes: about 0.3 ms
of CPU per call, as much as sending it. All of it depends only on the path, so
:class:`PreparedPost` asks the SDK client for it once (its own ``_build_request``:
its headers, token, URL and timeout) and, per call, only encodes the body with the
SDK's encoder and sends the request on the SDK's httpx client. Error answers and
transport failures raise the SDK's own exceptions, made by the SDK client, so the
request executor cannot tell the two paths apart.

``_build_request`` (with its options class and JSON encoder), ``_client`` and
``_make_status_error_from_response`` are the SDK's base client, not its documented
API: should a release of the SDK lack them, building a :class:`PreparedPost` fails
and the call goes through the SDK's public method instead
(:meth:`.sdk.SdkTransport.prepared_post` returns ``None``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Imported on first use of a client (see .sdk), never when a DAG file is parsed.
import httpx
from metronome import APIConnectionError, APITimeoutError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from metronome import Metronome


class PreparedPost:
    """``POST path`` with a JSON body, on ``sdk``'s client and with its headers.

    :param sdk: the SDK client (with its own retries off: the executor retries).
    :param path: the API path (``/v1/...``).
    """

    def __init__(self, sdk: Metronome, path: str) -> None:
        from metronome._models import FinalRequestOptions
        from metronome._utils._json import openapi_dumps

        # Parts of the SDK's base client that are not its public API: checked here, so
        # that an SDK release without them is seen before any request is sent.
        if not (isinstance(sdk._client, httpx.Client) and callable(sdk._make_status_error_from_response)):
            raise TypeError("this SDK's client has no httpx client or status-error factory")
        self.sdk = sdk
        self.path = path
        # The header with_raw_response adds: the request is the SDK's, byte for byte.
        options = FinalRequestOptions.construct(
            method="post", url=path, json_data={}, headers={"X-Stainless-Raw-Response": "raw"}
        )
        template = sdk._build_request(options)
        template.headers.pop("Content-Length", None)
        self._url = template.url
        self._headers = template.headers
        self._extensions = template.extensions
        # The SDK's own JSON encoder, as its _build_request uses for bodies.
        self._dumps: Callable[[Any], bytes] = openapi_dumps

    def send(self, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send ``payload``; return the 2xx answer, its body read.

        :param payload: the JSON body (JSON types only).
        :param headers: extra headers (e.g. ``Idempotency-Key``).
        :raises metronome.APIStatusError: any other status (the SDK's subclass for it).
        :raises metronome.APIConnectionError: no answer (``APITimeoutError`` on a timeout).
        """
        request = httpx.Request(
            "POST",
            self._url,
            headers=self._headers,
            content=self._dumps(payload),
            extensions=dict(self._extensions),
        )
        if headers:
            request.headers.update(headers)
        try:
            response = self.sdk._client.send(request)
        except httpx.TimeoutException as err:
            raise APITimeoutError(request=request) from err
        except Exception as err:
            raise APIConnectionError(request=request) from err
        if not 200 <= response.status_code < 300:
            raise self.sdk._make_status_error_from_response(response) from None
        return response
