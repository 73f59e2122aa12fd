"""``metronome-emulator`` / ``python -m airflow_provider_metronome.emulator``."""

from __future__ import annotations

import argparse
import json
import os
import sys

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
    emu = Emulator(
        token=args.token,
        faults=faults,
        providers_page_size=args.providers_page_size,
        state_file=args.state_file,
        request_log_size=args.request_log_size,
    )
    emu.faults.reconfigure()
    if args.state_file and os.path.exists(args.state_file):
        with open(args.state_file, encoding="utf-8") as fh:
            emu.state.load(json.load(fh))
        emu.state.dirty = False
    elif args.seed:
        with open(args.seed, encoding="utf-8") as fh:
            emu.state.load(json.load(fh))

    def ready(port: int) -> None:
        if args.port_file:
            with open(args.port_file + ".tmp", "w") as fh:
                fh.write(str(port))
            os.replace(args.port_file + ".tmp", args.port_file)
        print(f"metronome-emulator listening on http://{args.host}:{port}", flush=True)

    serve(create_app(emu), args.host, args.port, ready=ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
