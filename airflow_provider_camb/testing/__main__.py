"""Run the CAMB stand-in in the foreground: ``python -m airflow_provider_camb.testing --port 8765``."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys

from airflow_provider_camb.testing.server import CambStandIn


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_camb.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--preview-port", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="default: a fresh random key")
    parser.add_argument("--pending-seconds", type=float, default=2.0)
    parser.add_argument(
        "--pending-from-first-status",
        action="store_true",
        help="count --pending-seconds from a task's first status read, not from its creation",
    )
    parser.add_argument(
        "--pending-seconds-max",
        type=float,
        default=None,
        help="each task stays pending a random time between --pending-seconds and this",
    )
    parser.add_argument("--outcome", default="SUCCESS")
    parser.add_argument("--preview-bytes", type=int, default=None)
    parser.add_argument("--request-log", default=None, metavar="FILE", help="append one JSON line per request")
    parser.add_argument("--no-record", action="store_true", help="count requests but keep no record of them")
    return parser.parse_args(argv)


def _announce(standin: CambStandIn) -> None:
    print(f"CAMB stand-in API:      {standin.base_url}")
    print(f"CAMB stand-in previews: {standin.preview_base_url}")
    print(f"API key:                {standin.api_key}")
    print(f"AIRFLOW_CONN_CAMB_DEFAULT={shlex.quote(standin.connection_json())}", flush=True)


async def _serve(standin: CambStandIn) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, standin.stop_serving)
    await standin.serve(lambda: _announce(standin))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    standin = CambStandIn(
        host=args.host,
        port=args.port,
        preview_port=args.preview_port,
        api_key=args.api_key,
        pending_seconds=args.pending_seconds,
        outcome=args.outcome,
        preview_bytes=args.preview_bytes,
        request_log_path=args.request_log,
        record_requests=not args.no_record,
    )
    if args.pending_from_first_status:
        standin.configure(pending_from_first_status=True)
    if args.pending_seconds_max is not None:
        standin.configure(pending_seconds_max=args.pending_seconds_max)
    asyncio.run(_serve(standin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
