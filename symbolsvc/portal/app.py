"""The reference portal's web application (Starlette): one person's page, live, with proofs.

Routes, every one under the person's signed link (:mod:`.links`)::

    GET /p/TOKEN/                   the page (``?lang=ja|en``, ``?page=`` older records)
    GET /p/TOKEN/events             server-sent events: new records, as table rows
    GET /p/TOKEN/proof/RECORD_ID    the record's leaf, inclusion proof and checkpoint (JSON)
    GET /static/...                 the page's script and style sheet

The symbol comes only from the verified link, so no URL reaches another person's
records: a record id that is not this person's is NOT_FOUND at the server. Every
response carries a strict Content-Security-Policy (no inline script or style, nothing
from another origin), ``no-store`` and ``no-referrer`` (the link is a credential).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import i18n
from .hub import Hub
from .links import LinkError, open_link
from .settings import PortalSettings
from .upstream import NotHeld, NotYetProvable, Unavailable, Upstream
from .views import RecordView

HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
MAX_PAGE_TOKEN = 256
MAX_RECORD_ID = (1 << 63) - 1
SSE_PING_S = 15


class SecurityHeaders:
    """Pure ASGI middleware (streams pass through untouched): the headers above on every reply."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {n for n, _ in SECURITY_HEADERS}
                headers = [(n, v) for n, v in message.get("headers", []) if n not in names]
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


class Portal:
    """The app's state: settings, the link key, the labels, the upstream and the hub."""

    def __init__(self, settings: PortalSettings, link_key: bytes, vkey: str,
                 labels: i18n.Labels, clock: Callable[[], float] | None = None,
                 witnesses: list[str] | None = None) -> None:
        self.settings = settings
        self.witnesses = witnesses or []
        self.link_key = link_key
        self.vkey = vkey
        self.labels = labels
        self.clock = clock
        self.upstream: Upstream | None = None
        self.hub: Hub | None = None
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True))

    # ------------------------------------------------------------------ helpers

    def _lang(self, request: Request) -> str:
        return i18n.negotiate(request.query_params.get("lang"),
                              request.headers.get("accept-language", ""))

    def _symbol(self, request: Request) -> str:
        now = self.clock() if self.clock else None
        return open_link(self.link_key, request.path_params["token"], now).symbol

    def _render(self, name: str, lang: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        labels = self.labels

        def label(section: str, ident: str) -> str:
            return labels.name(lang, section, ident)

        html = self.env.get_template(name).render(
            lang=lang, t=lambda key, **v: i18n.t(lang, key, **v), label=label,
            when=lambda us: i18n.format_time(lang, us), iso=i18n.iso_time, **ctx)
        return HTMLResponse(html, status_code=status)

    def _refused(self, lang: str) -> HTMLResponse:
        return self._render("message.html", lang, 403, heading="refused_title",
                            body="refused_body")

    # ------------------------------------------------------------------ routes

    async def page(self, request: Request) -> Response:
        lang = self._lang(request)
        try:
            symbol = self._symbol(request)
        except LinkError:
            return self._refused(lang)
        page_token = request.query_params.get("page", "")
        if len(page_token) > MAX_PAGE_TOKEN:
            return self._render("message.html", lang, 404, heading="not_found",
                                body="unknown_person")
        assert self.upstream is not None
        try:
            records = await self.upstream.records(symbol, page_token)
            try:
                holdings: list[Any] | None = await self.upstream.holdings(symbol)
            except Unavailable:
                holdings = None
        except NotHeld:
            return self._render("message.html", lang, 404, heading="not_found",
                                body="unknown_person")
        except grpc.aio.AioRpcError:
            return self._render("message.html", lang, 503, heading="unavailable_title",
                                body="try_later")
        return self._render(
            "page.html", lang, records=records, holdings=holdings, vkey=self.vkey,
            witnesses=self.witnesses, quorum=self.settings.witness_quorum,
            page_token=page_token,
            newest=max((r.record_id for r in records.records), default=0))

    async def proof(self, request: Request) -> Response:
        try:
            symbol = self._symbol(request)
        except LinkError:
            return JSONResponse({"error": "refused"}, 403)
        record_id = request.path_params["record_id"]
        if record_id > MAX_RECORD_ID:
            return JSONResponse({"error": "not_found"}, 404)
        assert self.upstream is not None
        try:
            return JSONResponse(await self.upstream.proof(symbol, record_id))
        except NotHeld:
            return JSONResponse({"error": "not_found"}, 404)
        except NotYetProvable:
            return JSONResponse({"error": "pending"}, 409)
        except grpc.aio.AioRpcError:
            return JSONResponse({"error": "unavailable"}, 503)

    async def events(self, request: Request) -> Response:
        lang = self._lang(request)
        try:
            symbol = self._symbol(request)
        except LinkError:
            return Response(status_code=403)
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            after = 0
        assert self.hub is not None and self.upstream is not None
        hub, upstream = self.hub, self.upstream

        async def stream() -> AsyncIterator[dict[str, str]]:
            queue = hub.subscribe(symbol)  # before the catch-up read: nothing falls between
            try:
                try:
                    first = await upstream.records(symbol)
                except (NotHeld, grpc.aio.AioRpcError):
                    return
                for r in reversed(first.records):  # oldest first, so each lands on top
                    if r.record_id > after:
                        yield self._event(lang, r)
                yield {"event": "ready", "data": ""}  # caught up: from here on, the watch
                while True:
                    record = await queue.get()
                    if record is not None:
                        yield self._event(lang, record)
            finally:
                hub.unsubscribe(symbol, queue)

        return EventSourceResponse(stream(), ping=SSE_PING_S)

    def _event(self, lang: str, record: RecordView) -> dict[str, str]:
        row = bytes(self._render("row.html", lang, r=record).body).decode()
        return {"event": "record", "id": str(record.record_id),
                "data": json.dumps({"id": record.record_id, "row": row})}


def build_app(portal: Portal, on_ready: Callable[[], None] = lambda: None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        portal.upstream = Upstream(portal.settings)
        portal.hub = Hub(portal.upstream)
        portal.hub.start()
        on_ready()
        try:
            yield
        finally:
            await portal.hub.stop()
            await portal.upstream.close()

    routes = [
        Route("/p/{token}/", portal.page),
        Route("/p/{token}/events", portal.events),
        Route("/p/{token}/proof/{record_id:int}", portal.proof),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    return app


