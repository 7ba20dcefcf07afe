"""The witness's HTTP service: Starlette routes over :class:`.protocol.Witness`, served
by uvicorn (HTTP/1.1 keep-alive, optional TLS). One route, ``POST /add-checkpoint``
(c2sp.org/tlog-witness), plus ``GET /healthz``. Bodies beyond ``max_body_bytes`` are
refused with 413 before they are read in full."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .config import WitnessConfig
from .protocol import Witness
from .state import WitnessState

log = logging.getLogger("symbolsvc.witness")


def make_app(witness: Witness) -> Starlette:
    limit = witness.config.max_body_bytes

    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return PlainTextResponse("request body too large\n", status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return PlainTextResponse("request body too large\n", status_code=413)
        answer = await run_in_threadpool(witness.add_checkpoint, bytes(body))
        return Response(answer.body, status_code=answer.status,
                        media_type=answer.content_type)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    return Starlette(routes=[
        Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


def serve(config: WitnessConfig) -> None:
    """Run the witness until SIGINT/SIGTERM (uvicorn's signal handling). The socket is
    bound first, so ``listen = "HOST:0"`` works: the line
    ``symbolsvc witness serving on HOST:PORT`` on stdout names the port."""
    import asyncio
    import socket

    import uvicorn

    witness = Witness(config, WitnessState(config.state))
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        make_app(witness), log_level="warning", access_log=False, server_header=False,
        timeout_keep_alive=30, lifespan="off",
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
    ))
    log.info("witness %s serving %d log(s) on %s:%d", config.name, len(config.logs),
             config.host, port)
    print(f"symbolsvc witness serving on {config.host}:{port}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))
