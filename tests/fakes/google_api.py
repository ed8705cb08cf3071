"""Google's REST conventions, once, for the fakes of Google APIs (``dataproc_api``, ``secret_manager_api``).

What every Google REST API answers the same way, and so every fake of one: errors as a ``google.rpc.Status``
JSON body (``{"error": {"code", "message", "status", "details"}}``, a ``BadRequest`` field violation
when the error is about one field); 400 ``INVALID_ARGUMENT`` "Unknown name" for a query parameter or a
body field the method does not have; a body that is not JSON or not ``application/json``; ``$alt``
(``json``, or ``json;enum-encoding=int`` for enums as numbers, which the REST transport of the client
libraries always asks for); 404 ``NOT_FOUND`` for a path the fake does not implement.

:class:`GoogleApiFake` is the server shell: pytest-httpserver (werkzeug, one thread per request) with one
catch-all handler that logs the request target in ``requests`` and hands method, path and query to the
fake's ``_route``; an :class:`ApiError` raised there becomes Google's error answer. (The SendGrid fake is
not a Google API and keeps its own error format.)
"""

from __future__ import annotations

import json
import re
import threading
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

ALT = ("json", "json;enum-encoding=int")


class ApiError(Exception):
    """An error answer: HTTP code, google.rpc status name, message (and the field it is about)."""

    def __init__(self, code: int, status: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.status, self.message, self.field = code, status, message, field

    def body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message, "status": self.status}
        if self.field:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                 "fieldViolations": [{"field": self.field, "description": self.message}]}]
        return {"error": error}


def invalid(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message, field)


def check_query(query: dict, allowed: set[str]) -> None:
    """400 for a query parameter the method does not have."""
    for key in query:
        if key not in allowed:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{key}\": Cannot bind query parameter.")


def check_fields(obj: object, allowed: set[str], where: str | None = None) -> dict:
    """``obj``, a body (``where``: the message field it is at, none for the request itself); 400 when it is not
    a JSON object or has a field the message does not have."""
    if not isinstance(obj, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    at = f" at '{where}'" if where else ""
    for key in obj:
        if key not in allowed:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{key}\"{at}: Cannot find field.")
    return obj


def json_body(raw: bytes, content_type: str) -> object:
    """The request body, which must be JSON sent as ``application/json``."""
    if not content_type.startswith("application/json"):
        raise invalid(f"Unsupported Content-Type {content_type!r}")
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise invalid("Invalid JSON payload received.") from None


def split_target(target: str) -> tuple[str, dict[str, str], bool]:
    """A request target -> (decoded path, query parameters but ``$alt``, whether enums go as numbers)."""
    parts = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    alt = query.pop("$alt", None)
    if alt not in (None, *ALT):
        raise invalid(f"Invalid $alt {alt!r}")
    return unquote(parts.path), query, alt == "json;enum-encoding=int"


class GoogleApiFake:
    """The HTTP shell of a fake Google API; a context manager (``url`` is its endpoint, ``requests`` the
    ``(method, target)`` of every request). Subclasses set ``api`` (its name in the 404) and implement
    ``_route``, which answers a JSON-able dict or bytes (served as ``application/octet-stream``), or ``None``
    for a path it does not implement."""

    api = "Google"

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (method, path with query, as sent)
        self._lock = threading.Lock()
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile(".*")).respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    def _handle(self, request: Request) -> Response:
        target = request.environ["RAW_URI"]  # the request target as sent (path still percent-encoded)
        with self._lock:
            self.requests.append((request.method, target))
            try:
                path, query, numeric = split_target(target)
                body = self._route(request.method, path, query, numeric, request.get_data(),
                                   request.headers.get("Content-Type", ""))
                if body is None:
                    raise ApiError(404, "NOT_FOUND", f"The fake {self.api} API has no {request.method} {path}")
                code = 200
            except ApiError as err:
                code, body = err.code, err.body()
        if isinstance(body, bytes):
            return Response(body, code, content_type="application/octet-stream")
        return Response(json.dumps(body), code, content_type="application/json; charset=UTF-8")

    def _route(self, method: str, path: str, query: dict[str, str], numeric: bool, raw: bytes,
               content_type: str) -> dict | bytes | None:
        raise NotImplementedError
