"""Where a call's client CPU goes: the same read through ever more of the stack.

Against an emulator in another process (latency 0), each line sends ``--calls`` reads
of a customer's configurations (``POST /v1/getCustomerBillingProviderConfigurations``)
and reports this process's CPU milliseconds per call, with 1 thread and with
``--threads`` threads:

1. the standard library alone: a socket per thread, ``http.client``, ``json`` (what
   any Python client here costs at least);
2. ``httpx.Client`` on its default transport (httpcore, h11);
3. ``httpx.Client`` on this provider's transport (:mod:`.client.stdlib_transport`);
4. the provider's typed call (``MetronomeClient.get_billing_provider_configurations``:
   the executor, the request prepared by the SDK, the answer checked);
5. the sync's own work per row, its reads answered in-process (no HTTP): reading,
   validating and staging rows, locks, diff, bookkeeping (the creates still go out).

    uv run python -m bench.cpu_floor [--calls 3000] [--threads 48]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.emulator.testing import running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from scripts import demo_data

if TYPE_CHECKING:
    from collections.abc import Callable

PATH = "/v1/getCustomerBillingProviderConfigurations"


def _cpu_ms_per_call(send: Callable[[str], Any], ids: list[str], threads: int) -> float:
    send(ids[0])  # connect, import, warm up
    cpu = time.process_time()
    if threads == 1:
        for customer_id in ids:
            send(customer_id)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send, ids))
    return round(1000 * (time.process_time() - cpu) / len(ids), 3)


class _ReadsInProcess(MetronomeClient):
    """A client whose configuration reads are answered here (an empty list), still counted."""

    def get_billing_provider_configurations(
        self, customer_id: str, *, include_archived: bool = False
    ) -> list[dict[str, Any]]:
        self.executor.count_call("POST", PATH)
        return []


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import httpx

    from airflow_provider_metronome.client.stdlib_transport import StdlibTransport

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=SyncOptions().max_concurrency)
    args = parser.parse_args(argv)
    data = demo_data.build(args.calls, with_bad_rows=False)
    ids = [str(c["id"]) for c in data.seed["customers"]][: args.calls]
    out: dict[str, Any] = {"bench": "cpu_floor", "calls": len(ids), "threads": args.threads, "lines": []}
    with running_emulator(seed=data.seed) as emu:
        headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}

        def stdlib() -> Callable[[str], Any]:
            local = threading.local()

            def send(customer_id: str) -> Any:
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = http.client.HTTPConnection("127.0.0.1", emu.port)
                body = json.dumps({"customer_id": customer_id, "include_archived": False}).encode()
                conn.request("POST", PATH, body=body, headers=headers)
                return json.loads(conn.getresponse().read())["data"]

            return send

        def httpx_client(transport: httpx.BaseTransport | None) -> Callable[[], Callable[[str], Any]]:
            def make() -> Callable[[str], Any]:
                client = httpx.Client(base_url=emu.url, headers=headers, transport=transport)

                def send(customer_id: str) -> Any:
                    body = {"customer_id": customer_id, "include_archived": False}
                    return client.post(PATH, json=body).json()["data"]

                return send

            return make

        def provider() -> Callable[[str], Any]:
            return MetronomeClient(emu.url, emu.token).get_billing_provider_configurations

        limits = httpx.Limits(max_connections=args.threads, max_keepalive_connections=args.threads)
        lines: list[tuple[str, Callable[[], Callable[[str], Any]]]] = [
            ("1. standard library: socket per thread, http.client, json", stdlib),
            ("2. httpx.Client, default transport (httpcore, h11)", httpx_client(None)),
            (
                "3. httpx.Client, the provider's transport",
                httpx_client(StdlibTransport(ssl.create_default_context(), limits)),
            ),
            ("4. the provider's typed read (executor, prepared request, checks)", provider),
        ]
        for name, make in lines:
            figures = {threads: _cpu_ms_per_call(make(), ids, threads) for threads in (1, args.threads)}
            out["lines"].append({"what": name, "cpu_ms_per_call": figures})
        # 5. The sync's own work per row: reads answered in-process.
        per_row = {}
        warm_up = _ReadsInProcess(emu.url, emu.token)
        BillingConfigSync(warm_up, SyncOptions()).run(data.rows[:100])  # imports, first use
        warm_up.close()
        for threads in (1, args.threads):
            emu.admin("reset", data.seed)
            client = _ReadsInProcess(emu.url, emu.token)
            rows = data.rows[: len(ids)]
            cpu = time.process_time()
            BillingConfigSync(client, SyncOptions(max_concurrency=threads)).run(rows)
            per_row[threads] = round(1000 * (time.process_time() - cpu) / len(rows), 3)
            client.close()
        out["lines"].append(
            {"what": "5. the sync's own work per row (reads answered in-process)", "cpu_ms_per_call": per_row}
        )
    print(json.dumps(out))
    print(f"{'':<70} {'1 thread':>9} {str(args.threads) + ' threads':>11}  (CPU ms per call)")
    for line in out["lines"]:
        figures = line["cpu_ms_per_call"]
        print(f"{line['what']:<70} {figures[1]:>9} {figures[args.threads]:>11}")
    return out


if __name__ == "__main__":
    main()
