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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_metronome.emulator.faults import FaultConfig, FaultInjector
from airflow_provider_metronome.emulator.spec import body_errors
from airflow_provider_metronome.emulator.state import Answer, EmulatorState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.requests import Request

SECRET_FIELDS = ("avalara_password", "anrok_api_token")
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


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


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
    """

    def __init__(
        self,
        *,
        token: str,
        faults: FaultConfig | None = None,
        providers_page_size: int = 50,
        state_file: str | None = None,
        request_log_size: int = 100_000,
    ) -> None:
        self.token = token
        self._auth_header = f"Bearer {token}"
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
        if request.headers.get("authorization") != self._auth_header:
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
            fingerprint = _digest(f"{request.method} {request.url.path} {raw.decode(errors='replace')}")
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
    only_archived = q.get("only_archived", "false").lower() == "true"
    return emu.state.op_list_customers(
        limit=limit,
        next_page=q.get("next_page"),
        ingest_alias=q.get("ingest_alias"),
        customer_ids=customer_ids,
        only_archived=only_archived,
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
                lambda r, b: s.op_upsert_avalara(b, _digest(b["avalara_password"])),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/upsertAnrokApiToken",
            _route(
                emu,
                "upsertAnrokApiToken",
                "/v1/upsertAnrokApiToken",
                lambda r, b: s.op_upsert_anrok(b, _digest(b["anrok_api_token"])),
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

    return Starlette(routes=routes, lifespan=lifespan)


def _admin_routes(emu: Emulator) -> list[Route]:
    """Introspection under ``/_emulator/``: no auth, loopback use only."""

    async def health(request: Request) -> Response:
        return _json(200, {"ok": True})

    async def state(request: Request) -> Response:
        with emu.state.lock:
            return _json(200, emu.state.dump())

    async def requests(request: Request) -> Response:
        since = int(request.query_params.get("since", "0"))
        return _json(200, {"data": [r for r in list(emu.requests) if r["seq"] > since], "last_seq": emu.seq})

    async def clear_requests(request: Request) -> Response:
        emu.requests.clear()
        emu.counts.clear()
        return _json(200, {"last_seq": emu.seq})

    async def stats(request: Request) -> Response:
        total = sum(emu.counts.values())
        return _json(200, {"requests_total": total, "by_operation_status": dict(emu.counts)})

    async def reset(request: Request) -> Response:
        raw = await request.body()
        with emu.state.lock:
            emu.state.reset()
            emu.state.dirty = True
            if raw:
                emu.state.load(json.loads(raw))
        emu.requests.clear()
        emu.counts.clear()
        return _json(200, {"ok": True})

    async def seed(request: Request) -> Response:
        raw = await request.body()
        with emu.state.lock:
            emu.state.load(json.loads(raw or b"{}"))
        return _json(200, {"ok": True})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                emu.faults.config.update(json.loads(await request.body() or b"{}"))
            except ValueError as err:
                return _json(400, {"message": str(err)})
            emu.faults.reconfigure()
        return _json(200, emu.faults.config.as_dict())

    async def save(request: Request) -> Response:
        emu.state.dirty = True
        emu.save()
        return _json(200, {"saved": emu.state_file})

    async def settings(request: Request) -> Response:
        if request.method == "POST":
            changes = json.loads(await request.body() or b"{}")
            if "providers_page_size" in changes:
                emu.state.providers_page_size = max(1, int(changes["providers_page_size"]))
        return _json(200, {"providers_page_size": emu.state.providers_page_size})

    return [
        Route("/_emulator/health", health, methods=["GET"]),
        Route("/_emulator/state", state, methods=["GET"]),
        Route("/_emulator/requests", requests, methods=["GET"]),
        Route("/_emulator/requests", clear_requests, methods=["DELETE"]),
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/seed", seed, methods=["POST"]),
        Route("/_emulator/faults", faults, methods=["GET", "POST"]),
        Route("/_emulator/settings", settings, methods=["GET", "POST"]),
        Route("/_emulator/save", save, methods=["POST"]),
    ]
