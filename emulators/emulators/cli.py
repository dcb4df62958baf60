"""``emulators serve``: start the Capillary and Adobe emulators on loopback and print their URLs."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from emulators.adobe import config as adobe_config
from emulators.adobe import create_app as create_adobe_app
from emulators.capillary import config as capillary_config
from emulators.capillary import create_app as create_capillary_app
from emulators.server import LOOPBACK, BackgroundServer

DEFAULT_CAPILLARY_PORT = 8701
DEFAULT_ADOBE_PORT = 8702


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emulators",
        description="Local emulators of the Capillary loyalty API and of Adobe IMS + AEP streaming ingestion.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="start both emulators and print their base URLs; stop with Ctrl-C or SIGTERM",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=(
            "Start both emulators on loopback. Fault profiles are JSON (inline or @file): "
            '{"seed": 1, "rules": [{"path": "/v2/*", "method": "*", "status_rates": {"429": 0.05, "503": 0.01}, '
            '"retry_after": 1, "latency_ms": 50, "drop_rate": 0.0, "revoke_token_rate": 0.0, "max_faults": null}]}. '
            "The first rule matching a request's path (glob) and method applies."
        ),
    )
    serve.add_argument("--host", default=LOOPBACK, help="loopback address to bind")
    serve.add_argument("--capillary-port", type=int, default=DEFAULT_CAPILLARY_PORT, help="0 picks a free port")
    serve.add_argument("--adobe-port", type=int, default=DEFAULT_ADOBE_PORT, help="0 picks a free port")
    serve.add_argument("--urls-file", type=Path, help="also write the base URLs as JSON to this file once serving")
    capillary_config.add_cli_arguments(serve)
    adobe_config.add_cli_arguments(serve)
    return parser


def serve(args: argparse.Namespace) -> None:
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        msg = f"the emulators bind to loopback only, not {args.host}"
        raise SystemExit(msg)
    servers = {
        "capillary": BackgroundServer(
            create_capillary_app(capillary_config.config_from_cli(args)), host=args.host, port=args.capillary_port
        ),
        "adobe": BackgroundServer(
            create_adobe_app(adobe_config.config_from_cli(args)), host=args.host, port=args.adobe_port
        ),
    }
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        for server in servers.values():
            server.start()
        urls = {name: server.base_url for name, server in servers.items()}
        if args.urls_file:
            args.urls_file.write_text(json.dumps(urls))
        for name, url in urls.items():
            sys.stdout.write(f"{name}: {url}\n")
        sys.stdout.flush()
        stop.wait()
    finally:
        for server in servers.values():
            server.stop()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args)
    sys.exit(0)
