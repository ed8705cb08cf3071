"""The dashboard's FastAPI app: JSON API under ``/api``, the page at ``/``, static files at ``/static``.

``create_app(lake_root)`` builds it; ``python -m jobs.serving.dashboard`` serves it with uvicorn. OpenAPI is at
``/openapi.json`` and a small locally served endpoint list at ``/docs`` (FastAPI's Swagger UI would
load its assets from a CDN, and the machines running this may have no internet).
"""

from __future__ import annotations

import copy
import html
import logging
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lib.dashboard import offers
from lib.dashboard.limits import MAX_BODY_BYTES, MAX_TOKEN_LENGTH, BodyLimit
from lib.dashboard.panels import PANELS
from lib.dashboard.panels.common import ErrorResponse, get_now, get_reader
from lib.dashboard.tables import LakeReader, TableReadError
from lib.retarget.redact import install

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_VERSION = "1.0.0"
# the redacting filter: an exception text that quotes an address logs its pseudonym only
log = install(logging.getLogger("lib.dashboard.app"))

# answers every operation may give besides its own (413: lib/dashboard/limits.py). Spelt out instead of
# `model=`: FastAPI would document a model's answer in the route's media type (text/html for the pages).
TOO_LARGE: dict[int | str, dict[str, Any]] = {413: {"description": f"request body over {MAX_BODY_BYTES} bytes", "content": {"application/json": {
    "schema": {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}}}}
# the API's routers (not the pages): a table that exists but cannot be read
LAKE_ERRORS: dict[int | str, dict[str, Any]] = {503: {"model": ErrorResponse, "description": "a table exists but cannot be read"}}

# The page may only talk to this server: no inline scripts, no third-party hosts (defence in depth on
# top of the page inserting data with textContent only).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

class UnsubscribeAnswer(Protocol):
    """What :func:`lib.retarget.unsubscribe.make_handler` returns (``Outcome``): truthy when genuine;
    ``status`` and ``message`` explain a false answer."""

    status: str

    @property
    def message(self) -> str: ...

    def __bool__(self) -> bool: ...


UnsubscribeHandler = Callable[[str], "bool | UnsubscribeAnswer"]
"""Unsubscribe links of the cart-recovery emails (``lib.retarget.unsubscribe.handler_from_config``).

A callable that receives the opaque token of an email's unsubscribe link and returns True when the
token is genuine (the person is unsubscribed), False when it is forged or malformed. With a handler,
``GET /unsubscribe?token=...`` shows a confirmation page and ``POST /unsubscribe`` performs it (also
RFC 8058 one-click: mail clients POST ``List-Unsubscribe=One-Click`` to the link itself).
"""

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/static/dashboard.css"></head><body><main class="unsubscribe">
<h1 data-testid="unsubscribe-title">{title}</h1><p data-testid="unsubscribe-text">{text}</p>{form}</main></body></html>"""


class TableStatus(BaseModel):
    table: str = Field(examples=["gold/sales_per_minute"])
    exists: bool
    version: int | None = Field(None, description="Delta table version (commit number)")


class Healthz(BaseModel):
    ok: bool


class Health(BaseModel):
    ok: bool
    server_time: datetime
    lake_root: str
    tables: list[TableStatus]


health_router = APIRouter(prefix="/api", tags=["health"])


@health_router.get("/health", response_model=Health, summary="Is the dashboard up, which tables exist")
def get_health(reader: Annotated[LakeReader, Depends(get_reader)],
               now: Annotated[datetime, Depends(get_now)]) -> Health:
    return Health(ok=True, server_time=now, lake_root=reader.lake_root,
                  tables=[TableStatus(table=i.table, exists=i.exists, version=i.version) for i in reader.info()])


def _page(status: int, title: str, text: str, form: str = "") -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), text=html.escape(text), form=form), status_code=status,
                        headers={"Cache-Control": "no-store"})


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


_TOKEN_DOC = f"the token of the email's link (at most {MAX_TOKEN_LENGTH} characters)"
# documented, checked by hand: a longer token gets the "not valid" page (400), not FastAPI's JSON 422
TokenQuery = Annotated[str, Query(description=_TOKEN_DOC, json_schema_extra={"maxLength": MAX_TOKEN_LENGTH})]
# RFC 8058 one-click: mail clients POST `List-Unsubscribe=One-Click` to the link (token in the query);
# the confirmation page's form posts `token`. The body is read by hand (no form-parsing dependency).
_UNSUBSCRIBE_BODY = {"requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "properties": {
        "token": {"type": "string", "maxLength": MAX_TOKEN_LENGTH, "description": _TOKEN_DOC},
        "List-Unsubscribe": {"type": "string", "enum": ["One-Click"], "description": "RFC 8058 one-click"}}}}}}}


def _mount_extensions(app: FastAPI, unsubscribe_handler: UnsubscribeHandler | None) -> None:
    """Routes that need something from outside the lake. See :data:`UnsubscribeHandler`.

    The unsubscribe routes are HTML pages for people, kept out of ``/openapi.json`` (the JSON API);
    :func:`openapi_document` describes them too (the fuzz test runs them from it)."""
    if unsubscribe_handler is None:
        return

    @app.get("/unsubscribe", include_in_schema=False, response_class=HTMLResponse, summary="Unsubscribe: confirmation page",
             responses={200: _html("asks for confirmation (a form posting the token)"),
                        400: _html("no token, or one longer than any genuine link's")})
    def unsubscribe_page(token: TokenQuery = "") -> HTMLResponse:
        if not token:
            return _page(400, "Link incomplete", "This unsubscribe link is missing its token.")
        if len(token) > MAX_TOKEN_LENGTH:
            return _not_valid()
        form = ('<form method="post" action="/unsubscribe"><input type="hidden" name="token" value="'
                f'{html.escape(token, quote=True)}"><button type="submit" data-testid="unsubscribe-confirm">'
                "Unsubscribe</button></form>")
        return _page(200, "Unsubscribe", "Stop receiving cart reminders and offers from us?", form)

    @app.post("/unsubscribe", include_in_schema=False, response_class=HTMLResponse, summary="Unsubscribe (also one-click)",
              openapi_extra=_UNSUBSCRIBE_BODY,
              responses={200: _html("unsubscribed (now or before)"),
                         400: _html("no token, or not a genuine one"),
                         503: _html("the unsubscribe cannot be recorded right now (try again)")})
    async def unsubscribe(request: Request, token: TokenQuery = "") -> HTMLResponse:
        # the body is at most MAX_BODY_BYTES (BodyLimit answered 413 otherwise): reading it here is cheap
        body = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=64)
        token = token or (body.get("token") or [""])[0]
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return _not_valid()
        try:
            # the handler reads and appends a Delta table: blocking I/O, off the event loop
            genuine = await run_in_threadpool(unsubscribe_handler, token)
        except Exception as exc:  # noqa: BLE001 - any storage failure: a page saying so, never a 500
            log.warning("unsubscribe could not be recorded: %s: %s", type(exc).__name__, exc)
            return _page(503, "Please try again", "Your unsubscribe could not be recorded just now. "
                         "Please try the link again in a few minutes.")
        if not genuine:
            if not isinstance(genuine, bool) and getattr(genuine, "status", "") == "expired":  # genuine, too old
                return _page(400, "Link expired", genuine.message)
            return _not_valid()
        return _page(200, "You are unsubscribed", "You will not receive cart reminders or offers from us any more.")


def _not_valid() -> HTMLResponse:
    return _page(400, "Link not valid", "This unsubscribe link is not valid. Please use the link in our email.")


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI description of **every** route of ``app``: ``/openapi.json`` (the JSON API) plus the
    routes kept out of it — the page, ``/docs``, ``/unsubscribe`` (GET, POST), the unsubscribe service's
    ``/healthz`` and stylesheet. Works for the unsubscribe service too, which serves no OpenAPI.
    ``tests/unit/test_dashboard_fuzz.py`` fuzzes every operation of it with schemathesis."""
    routes = []
    for route in app.routes:
        if isinstance(route, APIRoute) and not route.include_in_schema:
            route = copy.copy(route)
            route.include_in_schema = True
        routes.append(route)
    return get_openapi(title=app.title, version=app.version, description=app.description, routes=routes)


def _security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        path = request.url.path
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if path.startswith("/api/") or path == "/openapi.json":
            response.headers["Cache-Control"] = "no-store"
        else:
            response.headers.setdefault("Cache-Control", "no-cache")
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response


def create_unsubscribe_app(unsubscribe_handler: UnsubscribeHandler, *, lake_root: str | None = None,
                           clock: Callable[[], datetime] | None = None,
                           storage_options: dict[str, str] | None = None) -> FastAPI:
    """The public unsubscribe service: ``/unsubscribe`` (GET confirm page, POST one-click), the page's
    stylesheet, ``/healthz`` and — with ``lake_root`` — the offer-code check ``GET /api/offers/{code}``
    (``lib/dashboard/offers.py``: the shop's checkout server calls it; the answer holds nothing
    personal) — nothing else. No other API, no other lake reads, no OpenAPI: on Google Cloud it is
    the one service anyone may reach (the dashboard itself sits behind IAP)."""
    app = FastAPI(title="Unsubscribe", docs_url=None, redoc_url=None, openapi_url=None, responses=TOO_LARGE)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    _security_headers(app)
    _mount_extensions(app, unsubscribe_handler)
    if lake_root is not None:
        app.state.reader = LakeReader(lake_root, storage_options=storage_options)
        app.state.clock = clock or (lambda: datetime.now(UTC))
        app.include_router(offers.router)

    @app.get("/static/dashboard.css", include_in_schema=False, response_class=FileResponse,
             responses={200: {"description": "the stylesheet of the unsubscribe pages",
                              "content": {"text/css": {"schema": {"type": "string"}}}}})
    def stylesheet() -> FileResponse:
        return FileResponse(STATIC_DIR / "dashboard.css", media_type="text/css")

    @app.get("/healthz", include_in_schema=False, response_model=Healthz)
    def healthz() -> Healthz:
        return Healthz(ok=True)

    return app


def create_app(lake_root: str, *, unsubscribe_handler: UnsubscribeHandler | None = None,
               clock: Callable[[], datetime] | None = None,
               storage_options: dict[str, str] | None = None) -> FastAPI:
    """The dashboard app over the lake at ``lake_root`` (a folder, or a ``gs://`` URI).

    ``unsubscribe_handler``: extension point for a later issue, see :data:`UnsubscribeHandler`.
    ``clock``: returns the current time (aware UTC); tests pin it. ``storage_options``: passed to deltalake.
    """
    app = FastAPI(
        title="Shop dashboard API",
        version=API_VERSION,
        description="Live sales and data quality, read from the gold Delta tables of the lake. "
                    "Times are UTC (ISO-8601 with Z). A table that does not exist yet gives empty data.",
        docs_url=None, redoc_url=None, openapi_url="/openapi.json",
        responses=TOO_LARGE,
    )
    app.state.reader = LakeReader(lake_root, storage_options=storage_options)
    app.state.clock = clock or (lambda: datetime.now(UTC))
    app.state.unsubscribe_handler = unsubscribe_handler
    # added before the header middleware, so it runs inside it: a 413 carries the same headers
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    _security_headers(app)

    @app.exception_handler(TableReadError)
    async def unreadable(_request: Request, exc: TableReadError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    app.include_router(health_router, responses=LAKE_ERRORS)
    for router in PANELS:
        app.include_router(router, responses=LAKE_ERRORS)
    app.include_router(offers.router)  # its own 503 (no lake details: the public service serves it too)
    _mount_extensions(app, unsubscribe_handler)

    @app.get("/", include_in_schema=False, response_class=HTMLResponse, responses={200: _html("the dashboard page")})
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse, responses={200: _html("the endpoint list")})
    def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
