"""``metronome-emulator`` / ``python -m airflow_provider_metronome.emulator``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from airflow_provider_metronome.emulator.faults import FaultConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="metronome-emulator",
        description="A local, stateful Metronome API for demos, tests and benchmarks.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one (default: 8080)")
    p.add_argument(
        "--token",
        default=os.environ.get("METRONOME_EMULATOR_TOKEN"),
        help="bearer token clients must send (default: $METRONOME_EMULATOR_TOKEN)",
    )
    p.add_argument(
        "--admin-token",
        default=os.environ.get("METRONOME_EMULATOR_ADMIN_TOKEN") or None,
        help="token the admin API (/_emulator/*) needs in header X-Emulator-Admin-Token "
        "(default: $METRONOME_EMULATOR_ADMIN_TOKEN; when unset, a random one is printed at start)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host header names NAME (any port); repeatable. "
        "Loopback names and a non-wildcard --host are always allowed",
    )
    p.add_argument(
        "--seed",
        metavar="FILE",
        help="JSON seed: customers, delivery_methods, billing_provider_configurations",
    )
    p.add_argument(
        "--state-file", metavar="FILE", help="load state from FILE if it exists; save to it on change"
    )
    p.add_argument(
        "--providers-page-size", type=int, default=50, help="page size of listConfiguredBillingProviders"
    )
    p.add_argument("--port-file", metavar="FILE", help="write the bound port to FILE once listening")
    p.add_argument(
        "--request-log-size", type=int, default=100_000, help="requests kept by /_emulator/requests"
    )
    g = p.add_argument_group("faults (also settable at run time: POST /_emulator/faults)")
    g.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every API request")
    g.add_argument("--jitter-ms", type=float, default=0.0, help="extra random latency, up to this much")
    g.add_argument("--p-429", type=float, default=0.0, help="probability of a 429 with Retry-After")
    g.add_argument("--p-500", type=float, default=0.0, help="probability of a 500 before execution")
    g.add_argument("--p-503", type=float, default=0.0, help="probability of a 503 before execution")
    g.add_argument("--p-reset", type=float, default=0.0, help="probability of a connection reset")
    g.add_argument(
        "--p-commit-500", type=float, default=0.0, help="probability a write is applied but answered 500"
    )
    g.add_argument("--retry-after-ms", type=int, default=200, help="wait asked by an injected 429")
    g.add_argument(
        "--rate-limit", type=float, default=0.0, help="requests per second (token bucket); 0 = none"
    )
    g.add_argument("--rate-burst", type=float, default=0.0, help="token bucket size (default: rate/5)")
    g.add_argument("--fault-seed", type=int, default=0, help="seed of the fault generator")
    return p


def _has_legacy_digests(data: dict[str, Any]) -> bool:
    """Whether a state file still holds the unsalted secret digests of older versions."""
    entries = [
        *data.get("avalara_credentials", {}).values(),
        *data.get("anrok_api_tokens", {}).values(),
    ]
    return any(k.endswith("_sha256") for entry in entries for k in entry)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until interrupted."""
    args = _parser().parse_args(argv)
    if not args.token:
        print("metronome-emulator: --token (or METRONOME_EMULATOR_TOKEN) is required", file=sys.stderr)
        return 2
    from airflow_provider_metronome.emulator.app import Emulator, create_app
    from airflow_provider_metronome.emulator.server import serve

    faults = FaultConfig()
    try:
        faults.update(
            {
                "latency_ms": args.latency_ms,
                "jitter_ms": args.jitter_ms,
                "p_429": args.p_429,
                "p_500": args.p_500,
                "p_503": args.p_503,
                "p_reset": args.p_reset,
                "p_commit_500": args.p_commit_500,
                "retry_after_ms": args.retry_after_ms,
                "rate_limit": args.rate_limit,
                "rate_burst": args.rate_burst,
                "seed": args.fault_seed,
            }
        )
    except ValueError as err:
        print(f"metronome-emulator: {err}", file=sys.stderr)
        return 2
    try:
        emu = Emulator(
            token=args.token,
            faults=faults,
            providers_page_size=args.providers_page_size,
            state_file=args.state_file,
            request_log_size=args.request_log_size,
            admin_token=args.admin_token,
            allowed_hosts=args.allowed_host,
            bind_host=args.host,
        )
    except ValueError as err:
        print(f"metronome-emulator: {err}", file=sys.stderr)
        return 2
    emu.faults.reconfigure()
    from_state = bool(args.state_file and os.path.exists(args.state_file))
    source = args.state_file if from_state else args.seed
    if source:
        try:
            with open(source, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as err:
            print(f"metronome-emulator: cannot read {source}: {err}", file=sys.stderr)
            return 2
        problem = emu.state.seed_problem(data, adding=False)
        if problem is not None:
            print(f"metronome-emulator: {source}: {problem[0]}: {problem[1]}", file=sys.stderr)
            return 2
        emu.state.load(data)
        # A state file loaded as is needs no rewrite; a seed (or a state file written
        # before secrets were redacted) is saved in the current format.
        emu.state.dirty = not from_state or _has_legacy_digests(data)

    def ready(port: int) -> None:
        if args.port_file:
            with open(args.port_file + ".tmp", "w") as fh:
                fh.write(str(port))
            os.replace(args.port_file + ".tmp", args.port_file)
        print(f"metronome-emulator listening on http://{args.host}:{port}", flush=True)
        if emu.admin_token_generated:
            print(
                f"metronome-emulator admin token (send it as header X-Emulator-Admin-Token): "
                f"{emu.admin_token}",
                flush=True,
            )
        hosts = ", ".join(sorted(emu.allowed_hosts))
        print(f"metronome-emulator answers requests addressed to: {hosts}", flush=True)

    serve(create_app(emu), args.host, args.port, ready=ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
