"""The emulator's ASGI application (Starlette).

Order of work for every API request, chosen to mirror where a real API fails:

1. bearer auth (401 ``{"message": ...}``; never cached);
2. the token-bucket rate limit (429 with ``Retry-After`` / ``retry-after-ms``);
3. injected pre-execution faults: connection reset, 429, 500, 503 (never cached,
   the request did not execute);
4. JSON parsing and request-schema validation against the bundled OpenAPI subset
   (400 naming the field; not cached: a key "applies once the request begins
   executing", https://docs.metronome.com/api-reference/idempotency.md);
5. Idempotency-Key (POST only): same key + same method, path and body replays the
   first executed answer (header ``Idempotent-Replayed: true``); same key + other
   body is a 409; a key whose request is still executing is a 409 too ("doesn't
   conflict with another concurrent request", same page), not cached;
6. execution, which takes the injected latency and holds the key all along; then,
   for writes, the injected commit-then-500 (the write stays applied, the 500 is
   cached under the key like any executed answer).

Every answer but 401 and the rate limit's 429 comes after the injected latency.

Before any of it, every request (API and admin) must name a loopback host or one the
operator allowed in its ``Host`` header (400 otherwise): a web page the user visits
cannot reach the emulator through a DNS name rebound to 127.0.0.1.

The admin API under ``/_emulator/`` (all but ``health``) needs the process's admin
token in ``X-Emulator-Admin-Token`` (401 when missing, 403 when wrong), and its POSTs
need ``Content-Type: application/json`` (415): a cross-site form cannot send either,
so a page cannot reset the state or inject faults. Bad admin input is a 400 (not
JSON) or a 422 (wrong shape) naming the field.

Why one module past 400 lines: the order above is the emulator's contract, and it
lives in one request path (``_api`` and its helpers) that a reader follows top to
bottom here; the admin routes beside it share that path's guards. Splitting the
admin API into its own module is planned (it is a test-only surface).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_metronome.emulator.faults import FaultConfig, FaultInjector, FaultSettingError
from airflow_provider_metronome.emulator.spec import body_errors
from airflow_provider_metronome.emulator.state import SECRET_KINDS, Answer, EmulatorState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

ADMIN_TOKEN_HEADER = "X-Emulator-Admin-Token"
ADMIN_TOKEN_ENV = "METRONOME_EMULATOR_ADMIN_TOKEN"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
# A DNS name or an IPv4 address (IPv6 comes in brackets and is parsed apart).
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")
SECRET_FIELDS = SECRET_KINDS
WRITE_OPERATIONS = frozenset(
    {
        "setCustomerBillingProviderConfigurations",
        "archiveCustomerBillingProviderConfigurations",
        "setUpBillingProvider",
        "upsertAvalaraCredentials",
        "upsertAnrokApiToken",
        "createCustomer",
        "setIngestAliases",
    }
)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


async def _pause(seconds: float) -> None:
    if seconds:
        await asyncio.sleep(seconds)


def split_host(value: str) -> tuple[str, str] | None:
    """Split a ``Host`` header (or an ``--allowed-host`` value) into name and port.

    :param value: ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``; a bare IPv6
        address is accepted too (as an option value) and bracketed.
    :return: ``(lower-case name, port or "")``, or ``None`` when it is not a host.
    """
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        rest = value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
        try:  # one spelling per address: [0:0:0:0:0:0:0:1] is [::1]
            name = f"[{ipaddress.IPv6Address(value[1:end])}]"
        except ValueError:
            return None
    elif value.count(":") > 1:
        try:
            return f"[{ipaddress.IPv6Address(value)}]", ""
        except ValueError:
            return None
    else:
        name, _, port = value.partition(":")
        if not _HOST_NAME.match(name):
            return None
    if not name or (port and not port.isdigit()):
        return None
    return name, port


def _is_loopback_or_wildcard(name: str) -> bool:
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name == "localhost"
    return address.is_loopback or address.is_unspecified


def allowed_host_names(bind_host: str | None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names a request may address: loopback, the bind address, the extras.

    :param bind_host: the interface the server binds; added unless it is loopback or a
        wildcard (``0.0.0.0`` / ``::`` accept any address, so no name follows from them).
    :param extra: names the operator allows (``--allowed-host``), with or without port.
    :raises ValueError: naming an extra that is not a host name.
    """
    names = set(LOOPBACK_HOSTS)
    for value in extra:
        parsed = split_host(value)
        if parsed is None:
            raise ValueError(f"--allowed-host {value!r} is not a host name")
        names.add(parsed[0])
    if bind_host and not _is_loopback_or_wildcard(bind_host):
        parsed = split_host(bind_host)
        if parsed is not None:
            names.add(parsed[0])
    return frozenset(names)


class HostGuard:
    """ASGI middleware refusing requests whose ``Host`` is not an allowed name (any port).

    A browser on a page whose DNS name was rebound to 127.0.0.1 sends that page's name
    as ``Host``; refusing it keeps such a page from calling the emulator.

    :param app: the wrapped ASGI app.
    :param allowed: allowed lower-case host names (IPv6 in brackets).
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            problem = self.problem(host)
            if problem is not None:
                await _json(400, {"message": problem})(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def problem(self, host: str | None) -> str | None:
        """Why ``host`` is refused, or ``None`` when it is allowed.

        :param host: the request's ``Host`` header, ``None`` when it has none.
        """
        if not host:
            return "missing Host header"
        parsed = split_host(host)
        if parsed is not None and parsed[0] in self.allowed:
            return None
        # The allowed names are not listed: a page that got here by DNS rebinding reads
        # this answer.
        return (
            f"Host header {host[:100]!r} is not allowed: this emulator answers only requests "
            "addressed to 127.0.0.1, localhost, [::1], its --host address or a name given "
            "with --allowed-host NAME (DNS rebinding protection)"
        )


def _redact(body: Any) -> Any:
    if isinstance(body, dict) and any(k in body for k in SECRET_FIELDS):
        return {k: ("***" if k in SECRET_FIELDS else v) for k, v in body.items()}
    return body


class Emulator:
    """State, faults and bookkeeping behind the ASGI app.

    :param token: the bearer token clients must send.
    :param faults: initial fault settings.
    :param providers_page_size: page size of ``listConfiguredBillingProviders``.
    :param state_file: where to persist state (loaded at start, saved when changed).
    :param request_log_size: how many requests the request log keeps.
    :param admin_token: the token the admin API (``/_emulator/*``) needs; a random one
        when not given (see :attr:`admin_token_generated`).
    :param allowed_hosts: host names requests may address besides loopback ones.
    :param bind_host: the interface the server binds, allowed as a host name when it
        is neither loopback nor a wildcard (see :func:`allowed_host_names`).
    :raises ValueError: when an allowed host is not a host name.
    """

    def __init__(
        self,
        *,
        token: str,
        faults: FaultConfig | None = None,
        providers_page_size: int = 50,
        state_file: str | None = None,
        request_log_size: int = 100_000,
        admin_token: str | None = None,
        allowed_hosts: Iterable[str] = (),
        bind_host: str | None = None,
    ) -> None:
        self.token = token
        self._auth_header = f"Bearer {token}".encode()
        self.admin_token_generated = not admin_token
        self.admin_token = admin_token or secrets.token_urlsafe(32)
        self.allowed_hosts = allowed_host_names(bind_host, allowed_hosts)
        # Idempotency fingerprints cover the raw body, secrets included: keyed by a
        # per-process key so they are no unsalted hash of a password.
        self._fingerprint_key = secrets.token_bytes(32)
        self.state = EmulatorState(providers_page_size=providers_page_size)
        self.faults = FaultInjector(faults or FaultConfig())
        self.state_file = state_file
        self.requests: deque[dict[str, Any]] = deque(maxlen=request_log_size)
        self.seq = 0
        self.counts: Counter[str] = Counter()
        # Idempotency-Keys whose request is executing right now.
        self.executing: set[str] = set()

    # -- the API pipeline ----------------------------------------------------------------

    def _log(
        self,
        request: Request,
        operation: str,
        status: int,
        *,
        key: str | None,
        body: Any,
        fault: str | None = None,
        replayed: bool = False,
    ) -> None:
        self.seq += 1
        self.counts[f"{operation} {status}"] += 1
        self.requests.append(
            {
                "seq": self.seq,
                "at": time.time(),
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "operation": operation,
                "status": status,
                "idempotency_key": key,
                "replayed": replayed,
                "fault": fault,
                "body": _redact(body),
            }
        )

    async def handle(
        self,
        request: Request,
        operation: str,
        spec_path: str,
        execute: Callable[[Any], Answer],
    ) -> Response:
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, self._auth_header):
            self._log(request, operation, 401, key=key, body=None)
            return _json(401, {"message": "Invalid access token"})
        wait = self.faults.rate_limited()
        if wait:
            self._log(request, operation, 429, key=key, body=None, fault="rate_limit")
            return _json(429, {"message": "Too many requests"}, FaultInjector.retry_after_headers(wait))
        latency = self.faults.latency()
        fault = self.faults.pre_fault()
        if fault is not None:
            await _pause(latency)
            self._log(
                request, operation, 0 if fault == "reset" else int(fault), key=key, body=None, fault=fault
            )
            if fault == "reset":
                transport = request.scope.get("state", {}).get("emulator_transport")
                if transport is not None:
                    transport.abort()
                    await asyncio.sleep(0)
                return Response(status_code=500)
            if fault == "429":
                retry_s = self.faults.config.retry_after_ms / 1000.0
                return _json(
                    429, {"message": "Too many requests"}, FaultInjector.retry_after_headers(retry_s)
                )
            return _json(int(fault), {"message": f"Injected {fault} error"})

        body: Any = None
        raw = await request.body()
        if request.method == "POST":
            try:
                body = json.loads(raw) if raw else {}
            except ValueError as err:
                await _pause(latency)
                self._log(request, operation, 400, key=key, body=None)
                return _json(400, {"message": f"body: invalid JSON ({err})"})
            problems = body_errors("post", spec_path, body)
            if problems:
                await _pause(latency)
                self._log(request, operation, 400, key=key, body=body)
                return _json(400, {"message": "; ".join(problems[:5])})

        fingerprint = ""
        if key:
            # No await from here to the key's registration: the check and the claim
            # are one step for the event loop.
            fingerprint = hmac.new(
                self._fingerprint_key, f"{request.method} {request.url.path} ".encode() + raw, hashlib.sha256
            ).hexdigest()
            cached = self.state.idempotency.get(key)
            if cached is not None:
                seen, status, answer = cached
                await _pause(latency)
                if seen != fingerprint:
                    self._log(request, operation, 409, key=key, body=body)
                    return _json(
                        409,
                        {"message": f"Idempotency-Key {key!r} was already used with different parameters"},
                    )
                self._log(request, operation, status, key=key, body=body, replayed=True)
                return _json(status, answer, {"Idempotent-Replayed": "true"})
            if key in self.executing:
                await _pause(latency)
                self._log(request, operation, 409, key=key, body=body)
                return _json(
                    409,
                    {
                        "message": f"Idempotency-Key {key!r} is in use by a concurrent request; "
                        "retry once it has finished"
                    },
                )
            self.executing.add(key)

        try:
            await _pause(latency)
            with self.state.lock:
                status, answer = execute(body)
            injected = None
            if status == 200 and operation in WRITE_OPERATIONS and self.faults.commit_then_500():
                status, answer, injected = 500, {"message": "Injected error after commit"}, "commit_then_500"
            if key and (status < 400 or status >= 500):
                self.state.idempotency[key] = (fingerprint, status, answer)
        finally:
            if key:
                self.executing.discard(key)
        self._log(request, operation, status, key=key, body=body, fault=injected)
        return _json(status, answer)

    # -- persistence ----------------------------------------------------------------------

    def save(self) -> None:
        if self.state_file and self.state.dirty:
            with self.state.lock:
                self.state.save(self.state_file)

    async def autosave(self) -> None:
        # Saving after every write would dominate benchmarks; a short debounce keeps
        # a killed demo's state at most a second old.
        while True:
            await asyncio.sleep(1.0)
            self.save()


def _route(
    emu: Emulator, operation: str, spec_path: str, execute: Callable[[Request, Any], Answer]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await emu.handle(request, operation, spec_path, lambda body: execute(request, body))

    return endpoint


def _list_customers(emu: Emulator, request: Request) -> Answer:
    q = request.query_params
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        return 400, {"message": f"limit: {q.get('limit')!r} is not an integer"}
    if not 1 <= limit <= 100:
        return 400, {"message": f"limit: {limit} is not between 1 and 100"}
    raw_ids = q.getlist("customer_ids")
    customer_ids = [i for part in raw_ids for i in part.split(",") if i] if raw_ids else None
    if customer_ids is not None and len(customer_ids) > 100:
        return 400, {"message": "customer_ids: at most 100 ids"}
    # salesforce_account_ids is an array query parameter ("Up to 100 ids can be
    # provided", https://docs.metronome.com/api-reference/customers/list-customers.md):
    # repeated (OpenAPI's default form style) or comma-separated (how the official
    # SDKs send arrays), like customer_ids.
    raw_sf = q.getlist("salesforce_account_ids")
    salesforce_ids = [i for part in raw_sf for i in part.split(",") if i] if raw_sf else None
    if salesforce_ids is not None and len(salesforce_ids) > 100:
        return 400, {"message": "salesforce_account_ids: at most 100 ids"}
    only_archived = q.get("only_archived", "false").lower() == "true"
    return emu.state.op_list_customers(
        limit=limit,
        next_page=q.get("next_page"),
        ingest_alias=q.get("ingest_alias"),
        customer_ids=customer_ids,
        only_archived=only_archived,
        salesforce_account_ids=salesforce_ids,
    )


def create_app(emu: Emulator) -> Starlette:
    """Build the ASGI app serving ``emu``.

    :param emu: the emulator instance (state, faults, request log).
    """
    s = emu.state
    routes = [
        Route(
            "/v1/setCustomerBillingProviderConfigurations",
            _route(
                emu,
                "setCustomerBillingProviderConfigurations",
                "/v1/setCustomerBillingProviderConfigurations",
                lambda r, b: s.op_set_configurations(b),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/getCustomerBillingProviderConfigurations",
            _route(
                emu,
                "getCustomerBillingProviderConfigurations",
                "/v1/getCustomerBillingProviderConfigurations",
                lambda r, b: s.op_get_configurations(b),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/archiveCustomerBillingProviderConfigurations",
            _route(
                emu,
                "archiveCustomerBillingProviderConfigurations",
                "/v1/archiveCustomerBillingProviderConfigurations",
                lambda r, b: s.op_archive_configurations(b),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/listConfiguredBillingProviders",
            _route(
                emu,
                "listConfiguredBillingProviders",
                "/v1/listConfiguredBillingProviders",
                lambda r, b: s.op_list_billing_providers(b),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/setUpBillingProvider",
            _route(
                emu,
                "setUpBillingProvider",
                "/v1/setUpBillingProvider",
                lambda r, b: s.op_set_up_billing_provider(b),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/upsertAvalaraCredentials",
            _route(
                emu,
                "upsertAvalaraCredentials",
                "/v1/upsertAvalaraCredentials",
                lambda r, b: s.op_upsert_avalara(b),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/upsertAnrokApiToken",
            _route(
                emu,
                "upsertAnrokApiToken",
                "/v1/upsertAnrokApiToken",
                lambda r, b: s.op_upsert_anrok(b),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/customers",
            _route(emu, "createCustomer", "/v1/customers", lambda r, b: s.op_create_customer(b)),
            methods=["POST"],
        ),
        Route(
            "/v1/customers",
            _route(emu, "listCustomers", "/v1/customers", lambda r, b: _list_customers(emu, r)),
            methods=["GET"],
        ),
        Route(
            "/v1/customers/{customer_id}",
            _route(
                emu,
                "getCustomer",
                "/v1/customers/{customer_id}",
                lambda r, b: s.op_get_customer(r.path_params["customer_id"]),
            ),
            methods=["GET"],
        ),
        Route(
            "/v1/customers/{customer_id}/setIngestAliases",
            _route(
                emu,
                "setIngestAliases",
                "/v1/customers/{customer_id}/setIngestAliases",
                lambda r, b: s.op_set_ingest_aliases(r.path_params["customer_id"], b),
            ),
            methods=["POST"],
        ),
        *_admin_routes(emu),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(emu.autosave()) if emu.state_file else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            emu.save()

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(HostGuard, allowed=emu.allowed_hosts)],
    )


class AdminInputError(Exception):
    """Admin input that is well-formed JSON but cannot be applied (answered 422).

    :param field: the field at fault, as a path (``customers[2].name``).
    :param reason: what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _admin_error(status: int, field: str, reason: str) -> Response:
    return _json(status, {"message": f"{field}: {reason}", "field": field})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _admin(
    emu: Emulator,
    handler: Callable[[Request, dict[str, Any]], Awaitable[Response]],
    *,
    public: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an admin handler: token, content type, a JSON object body, errors as 4xx."""

    async def endpoint(request: Request) -> Response:
        if not public:
            given = request.headers.get(ADMIN_TOKEN_HEADER)
            if given is None:
                return _json(
                    401,
                    {
                        "message": f"missing {ADMIN_TOKEN_HEADER} header: the admin API needs the token "
                        f"given with --admin-token / ${ADMIN_TOKEN_ENV}, or the one printed at start-up"
                    },
                )
            if not hmac.compare_digest(given.encode("latin-1"), emu.admin_token.encode()):
                return _json(403, {"message": f"wrong {ADMIN_TOKEN_HEADER}"})
        body: dict[str, Any] = {}
        if request.method == "POST":
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                return _json(
                    415,
                    {"message": f"Content-Type must be application/json, not {media_type or 'missing'!r}"},
                )
            raw = await request.body()
            if raw.strip():
                try:
                    parsed = json.loads(raw, parse_constant=_reject_constant)
                except (ValueError, RecursionError) as err:
                    return _admin_error(400, "body", f"invalid JSON ({err})")
                if not isinstance(parsed, dict):
                    return _admin_error(422, "body", f"must be a JSON object, not {type(parsed).__name__}")
                body = parsed
        try:
            return await handler(request, body)
        except AdminInputError as err:
            return _admin_error(422, err.field, err.reason)

    return endpoint


def _admin_routes(emu: Emulator) -> list[Route]:
    """Introspection under ``/_emulator/``: token-protected (but ``health``), JSON only."""

    async def health(request: Request, body: dict[str, Any]) -> Response:
        return _json(200, {"ok": True})

    async def state(request: Request, body: dict[str, Any]) -> Response:
        with emu.state.lock:
            return _json(200, emu.state.dump())

    async def requests(request: Request, body: dict[str, Any]) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            raise AdminInputError("since", "must be an integer") from None
        return _json(200, {"data": [r for r in list(emu.requests) if r["seq"] > since], "last_seq": emu.seq})

    async def clear_requests(request: Request, body: dict[str, Any]) -> Response:
        emu.requests.clear()
        emu.counts.clear()
        return _json(200, {"last_seq": emu.seq})

    async def stats(request: Request, body: dict[str, Any]) -> Response:
        total = sum(emu.counts.values())
        return _json(200, {"requests_total": total, "by_operation_status": dict(emu.counts)})

    async def reset(request: Request, body: dict[str, Any]) -> Response:
        with emu.state.lock:
            problem = emu.state.seed_problem(body, adding=False)
            if problem is not None:
                raise AdminInputError(*problem)
            emu.state.reset()
            emu.state.load(body)
            emu.state.dirty = True
        emu.requests.clear()
        emu.counts.clear()
        return _json(200, {"ok": True})

    async def seed(request: Request, body: dict[str, Any]) -> Response:
        with emu.state.lock:
            problem = emu.state.seed_problem(body, adding=True)
            if problem is not None:
                raise AdminInputError(*problem)
            emu.state.load(body)
        return _json(200, {"ok": True})

    async def faults(request: Request, body: dict[str, Any]) -> Response:
        if request.method == "POST":
            try:
                emu.faults.config.update(body)
            except FaultSettingError as err:
                raise AdminInputError(err.field, str(err)) from None
            emu.faults.reconfigure()
        return _json(200, emu.faults.config.as_dict())

    async def save(request: Request, body: dict[str, Any]) -> Response:
        emu.state.dirty = True
        emu.save()
        return _json(200, {"saved": emu.state_file})

    async def settings(request: Request, body: dict[str, Any]) -> Response:
        for name, value in body.items():
            if name != "providers_page_size":
                raise AdminInputError(name, "unknown setting (known: providers_page_size)")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise AdminInputError(name, f"must be an integer >= 1, not {value!r}")
        if "providers_page_size" in body:
            emu.state.providers_page_size = body["providers_page_size"]
        return _json(200, {"providers_page_size": emu.state.providers_page_size})

    async def check_secret(request: Request, body: dict[str, Any]) -> Response:
        # Lets a test confirm which password was sent without any dump holding it.
        kind = body.get("kind")
        if kind not in SECRET_KINDS:
            raise AdminInputError("kind", f"must be one of {', '.join(SECRET_KINDS)}")
        for name in ("delivery_method_id", "value"):
            if not isinstance(body.get(name), str):
                raise AdminInputError(name, "must be a string")
        unknown = sorted(set(body) - {"kind", "delivery_method_id", "value"})
        if unknown:
            raise AdminInputError(unknown[0], "unknown field")
        with emu.state.lock:
            return _json(200, emu.state.check_secret(kind, body["delivery_method_id"], body["value"]))

    return [
        Route("/_emulator/health", _admin(emu, health, public=True), methods=["GET"]),
        Route("/_emulator/state", _admin(emu, state), methods=["GET"]),
        Route("/_emulator/requests", _admin(emu, requests), methods=["GET"]),
        Route("/_emulator/requests", _admin(emu, clear_requests), methods=["DELETE"]),
        Route("/_emulator/stats", _admin(emu, stats), methods=["GET"]),
        Route("/_emulator/reset", _admin(emu, reset), methods=["POST"]),
        Route("/_emulator/seed", _admin(emu, seed), methods=["POST"]),
        Route("/_emulator/faults", _admin(emu, faults), methods=["GET", "POST"]),
        Route("/_emulator/settings", _admin(emu, settings), methods=["GET", "POST"]),
        Route("/_emulator/save", _admin(emu, save), methods=["POST"]),
        Route("/_emulator/check-secret", _admin(emu, check_secret), methods=["POST"]),
    ]
