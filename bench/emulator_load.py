"""Requests per second the emulator serves with no latency injected.

Starts the emulator in its own process, then drives it from this one with raw
keep-alive HTTP/1.1 over asyncio streams (much cheaper than a full HTTP client, so
the figure is the emulator's, not the load generator's).

    uv run python -m bench.emulator_load --seconds 10 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from airflow_provider_metronome.emulator.testing import SEED_CUSTOMER_ID, TOKEN, running_emulator


async def _worker(port: int, request: bytes, deadline: float, counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            key = "ok" if b" 200 " in status_line else "error"
            counts[key] = counts.get(key, 0) + 1
    finally:
        writer.close()


def _request(kind: str) -> bytes:
    if kind == "get":
        return (
            f"GET /v1/customers/{SEED_CUSTOMER_ID} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\nAccept: application/json\r\n\r\n"
        ).encode()
    # A validated JSON POST: the engine's most frequent call.
    body = json.dumps({"customer_id": SEED_CUSTOMER_ID, "include_archived": True})
    return (
        f"POST /v1/getCustomerBillingProviderConfigurations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def _drive(port: int, seconds: float, connections: int, kind: str = "get") -> dict[str, int]:
    request = _request(kind)
    counts: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(_worker(port, request, deadline, counts) for _ in range(connections)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--request", choices=["get", "post"], default="get", help="GET or POST")
    args = parser.parse_args()
    with running_emulator() as emu:
        asyncio.run(_drive(emu.port, 1.0, args.connections, args.request))  # warm-up
        start = time.perf_counter()
        counts = asyncio.run(_drive(emu.port, args.seconds, args.connections, args.request))
        elapsed = time.perf_counter() - start
    total = sum(counts.values())
    result = {
        "benchmark": "emulator_throughput",
        "request": args.request,
        "requests": total,
        "errors": counts.get("error", 0),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(total / elapsed),
        "connections": args.connections,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
