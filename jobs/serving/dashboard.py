"""Serve the business dashboard (page + JSON API) with uvicorn.

    python -m jobs.serving.dashboard [--env local] [--host 127.0.0.1] [--port 8050] [--role all|dashboard|unsubscribe]

Roles: ``all`` (local default) serves the page, the API and the emails' ``/unsubscribe`` links;
``dashboard`` the page and the API only (read-only on the lake: the Cloud Run service behind IAP);
``unsubscribe`` only ``/unsubscribe`` and the offer-code check ``/api/offers/{code}`` (the public
Cloud Run service; it can do nothing else).
On Cloud Run ``terraform/dashboard/entrypoint.sh`` starts it with the role and ``$PORT``.

Binds 127.0.0.1 by default: the dashboard has no login, so expose it beyond this machine only behind
something that authenticates. ``--port 0`` picks a free port. Once listening it prints one line
``[dashboard] serving http://HOST:PORT/ (lake ...)`` (scripts and tests wait for it). Mistakes in the
config or a port already in use stop it with one line on stderr (exit 2 / 1). The dashboard itself
(app, panels, tables) is lib/dashboard/; this file is its server entry point.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import socket
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.config import ConfigError, load_config  # noqa: E402

ROLES = ("all", "dashboard", "unsubscribe")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to host:port (raises OSError)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.serving.dashboard", description=__doc__.split("\n")[0])
    p.add_argument("--env", help="config environment (conf/<env>.yaml); default $SHOP_ENV or local")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--access-log", action="store_true", help="log every request (the page polls every 2 s)")
    p.add_argument("--role", choices=ROLES, default="all",
                   help="all: page + API + /unsubscribe (default); dashboard: page + API; "
                        "unsubscribe: /unsubscribe and /api/offers/{code} only")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be between 0 and 65535, got {args.port}")
    try:
        cfg = load_config(args.env)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        # deferred: a missing package is one line naming it (below), not a trace
        import uvicorn

        # deferred: --help and a config mistake answer before these (~1.5 s: fastapi, deltalake, pandas)
        from lib.dashboard.app import create_app, create_unsubscribe_app
        from lib.retarget.unsubscribe import handler_from_config
    except ImportError as exc:
        print(f"error: the dashboard needs the package {exc.name!r}: run 'make setup'", file=sys.stderr)
        return 2
    try:
        sock = bind(args.host, args.port)
    except socket.gaierror as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: unknown host ({exc.strerror})", file=sys.stderr)
        return 1
    except OSError as exc:
        hint = " (is the dashboard already running? 'make dashboard-stop', or pick another --port)" \
            if exc.errno == errno.EADDRINUSE else ""
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}{hint}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    # Cloud Run (K_SERVICE is set) puts IAP in front of the dashboard; the unsubscribe role is public by design
    if not _is_loopback(host) and args.role != "unsubscribe" and not os.environ.get("K_SERVICE"):
        print(f"[dashboard] warning: listening on {host}, reachable from other machines; it has no login",
              file=sys.stderr)
    handler = None
    if args.role in ("all", "unsubscribe"):
        try:
            handler = handler_from_config(cfg)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
    if args.role == "unsubscribe":
        if handler is None:  # never: made just above for this role
            raise RuntimeError("the unsubscribe role needs its handler")
        app = create_unsubscribe_app(handler, lake_root=cfg.lake.root)
    else:
        app = create_app(cfg.lake.root, unsubscribe_handler=handler)
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, access_log=args.access_log,
                                           server_header=False, lifespan="off"))
    print(f"[dashboard] serving http://{shown}:{port}/ (lake {cfg.lake.root}, role {args.role})", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
