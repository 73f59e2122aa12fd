"""Reading the answers of the endpoints: checked, never trusted.

The SDK made the request and raised on error statuses; these helpers read the JSON of
its raw response directly (building the SDK's pydantic models only to dump them again
costs about 15% of the client's CPU per call) and check that it holds what the
endpoint documents. What is missing raises :class:`MalformedResponse`, which the
request executor turns into a
:class:`~airflow_provider_metronome.exceptions.MetronomeResponseError` naming the
request. :class:`Pages` makes every paging loop end.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_metronome.exceptions import MetronomeResponseError


class MalformedResponse(Exception):
    """A success answer without what the endpoint documents (the request is named by the caller).

    :param detail: what was wrong.
    :param status: the answer's status.
    """

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type (for messages)."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _http(response: Any) -> Any:
    """The ``httpx.Response`` of an SDK raw response (or the ``httpx.Response`` itself)."""
    return getattr(response, "http_response", response)


def body(response: Any, *, empty_ok: bool = False) -> dict[str, Any]:
    """The JSON object of a raw SDK response.

    :param response: the SDK's raw response (``with_raw_response``), or an
        ``httpx.Response`` (:mod:`.prepared`).
    :param empty_ok: an empty body counts as ``{}``.
    :raises MalformedResponse: the body is not a JSON object.
    """
    http = _http(response)
    status = http.status_code
    if empty_ok and not http.content.strip():
        return {}
    try:
        decoded = http.json()
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        kind = http.headers.get("content-type") or "no content type"
        text = http.text.strip()
        snippet = text[:100] + ("..." if len(text) > 100 else "")
        raise MalformedResponse(f"the body is not JSON ({kind}): {snippet!r}", status) from None
    if not isinstance(decoded, dict):
        raise MalformedResponse(f"the body is a JSON {json_type(decoded)}, not an object", status)
    return decoded


def data_of(payload: dict[str, Any], kind: type, status: int) -> Any:
    """``payload["data"]``, checked to be a ``kind`` (of objects, for a list).

    :param payload: a decoded JSON object.
    :param kind: ``list`` or ``dict``.
    :param status: the answer's status, for messages.
    :raises MalformedResponse: ``data`` is missing or of another type.
    """
    if "data" not in payload:
        keys = ", ".join(sorted(map(str, payload))[:5]) or "none"
        raise MalformedResponse(f"the body has no 'data' (keys: {keys})", status)
    data: Any = payload["data"]
    if not isinstance(data, kind):
        raise MalformedResponse(
            f"'data' is a JSON {json_type(data)}, not {'an array' if kind is list else 'an object'}", status
        )
    if isinstance(data, list):
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                raise MalformedResponse(f"data[{i}] is a JSON {json_type(item)}, not an object", status)
    return data


def data(response: Any, kind: type) -> Any:
    """The ``data`` of a raw SDK response, checked to be a ``kind`` (of objects, for a list).

    :param response: the SDK's raw response, or an ``httpx.Response``.
    :param kind: ``list`` or ``dict``.
    """
    return data_of(body(response), kind, _http(response).status_code)


def page(response: Any) -> dict[str, Any]:
    """A page of a list endpoint: ``data`` an array of objects, ``next_page`` a string or null.

    :param response: the SDK's raw response.
    """
    payload = body(response)
    status = _http(response).status_code
    data_of(payload, list, status)
    cursor = payload.get("next_page")
    if cursor is not None and not isinstance(cursor, str):
        raise MalformedResponse(f"'next_page' is a JSON {json_type(cursor)}, not a string", status)
    return payload


class Pages:
    """The pages of one list: stops a cursor that comes back and a list without end.

    :param method: HTTP method, for messages.
    :param path: API path, for messages.
    :param limit: most pages read before giving up.
    """

    def __init__(self, method: str, path: str, limit: int) -> None:
        self.method = method
        self.path = path
        self.limit = limit
        self.count = 0
        self.seen: set[str] = set()

    def next(self, current: dict[str, Any]) -> str | None:
        """The cursor of the page after ``current``, or ``None`` at the end of the list.

        :raises MetronomeResponseError: the cursor came back, or there are more than ``limit`` pages.
        """
        self.count += 1
        cursor = current.get("next_page")
        if not cursor:
            return None
        if cursor in self.seen:
            shown = cursor if len(cursor) <= 60 else f"{cursor[:57]}..."
            raise MetronomeResponseError(
                f"next_page {shown!r} came back after {self.count} pages: the paging is a cycle "
                "and would never end",
                method=self.method,
                path=self.path,
            )
        if self.count >= self.limit:
            raise MetronomeResponseError(
                f"still a next_page after {self.count} pages; stopped (at most {self.limit} pages "
                "are read, more than any account holds: the paging seems to have no end)",
                method=self.method,
                path=self.path,
            )
        self.seen.add(cursor)
        return cursor
