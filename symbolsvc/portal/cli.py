"""``symbolsvc portal serve|link --config C`` (docs/PORTAL.md): the CLI glue of the portal.

:func:`register` adds the subcommands to the main parser (one line in ``symbolsvc/cli.py``);
the `portal` extra (web framework, link signer) is imported only when a subcommand runs.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import ConfigError, SymbolsvcError
from ..symbols import symbol_version
from .settings import portal_settings, witness_keys


def _link(args: argparse.Namespace) -> int:
    from .links import load_key, mint  # itsdangerous: the `portal` extra

    settings = portal_settings(load_config(Path(args.config)))
    try:
        symbol_version(args.symbol)
    except SymbolsvcError as exc:
        raise ConfigError(f"SYMBOL: {exc.message}") from None
    ttl = args.ttl or settings.link_ttl_seconds
    token = mint(load_key(settings.link_key, create=True), args.symbol, ttl)
    print(f"{settings.public_url}/p/{token}/")
    print(f"valid for {ttl} s; it stands in for the national login: hand it only to the "
          "person the symbol names", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..verify.keychain import parse_vkeys
    from .app import Portal, build_app
    from .i18n import Labels
    from .links import load_key

    config = load_config(Path(args.config))
    settings = portal_settings(config, args.listen)
    try:
        vkeys = [str(k) for k in parse_vkeys(settings.vkey.read_text(encoding="utf-8"))]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{settings.vkey}: cannot read the log's verifier key: {exc}") from None
    for path in (settings.ca, settings.cert, settings.key):
        if not path.is_file():
            raise ConfigError(f"{path}: missing (the portal's mTLS identity, [portal] cert/key)")
    family = socket.AF_INET6 if ":" in settings.listen_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.listen_host, settings.listen_port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.listen_host}:{settings.listen_port}: "
                          f"{exc.strerror}") from None
    settings = portal_settings(config, f"{settings.listen_host}:{sock.getsockname()[1]}"
                               if settings.listen_port == 0 else args.listen)
    portal = Portal(settings, load_key(settings.link_key, create=True), "\n".join(vkeys),
                    Labels.load(settings.labels), witnesses=witness_keys(settings))
    ready = f"symbolsvc portal serving on {settings.public_url}"
    # No access log: the path holds the person's link (docs/PORTAL.md).
    server = uvicorn.Server(uvicorn.Config(
        build_app(portal, on_ready=lambda: print(ready, flush=True)), access_log=False,
        log_level="warning", timeout_graceful_shutdown=5, server_header=False))
    server.run(sockets=[sock])
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("portal", help="the reference portal web app: one person's access "
                                      "records, holdings and in-browser proofs "
                                      "(docs/PORTAL.md)")
    psub = p.add_subparsers(dest="portal_command", required=True)
    s = psub.add_parser("serve", help="serve the portal on [portal] listen, calling the "
                                      "server as the portal principal over mTLS")
    s.add_argument("--config", required=True, help="the deployment's config.toml")
    s.add_argument("--listen", metavar="HOST:PORT", help="override [portal] listen "
                   "(port 0: any free port, printed on the readiness line)")
    s.set_defaults(func=_serve)
    ln = psub.add_parser("link", help="print a signed, expiring link to one person's page "
                                      "(stands in for the national login)")
    ln.add_argument("--config", required=True, help="the deployment's config.toml")
    ln.add_argument("--ttl", type=int, default=0, metavar="SECONDS",
                    help="how long the link is valid (default [portal] link_ttl_seconds)")
    ln.add_argument("symbol", metavar="SYMBOL", help="the portal's own symbol for the person")
    ln.set_defaults(func=_link)
