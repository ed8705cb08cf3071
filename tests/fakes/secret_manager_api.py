"""A local stand-in for the Secret Manager v1 REST API: the calls ``lib/retarget/secrets.py`` makes,
checked like the real service.

:mod:`lib.retarget.secrets` is tested against this HTTP server through the real client library
(``google-cloud-secret-manager`` with ``transport="rest"``, anonymous credentials for an ``http://``
endpoint): what is under test is everything down to the JSON on the wire.

Implemented (nothing else; other paths answer 404 in Google's error format):

* ``GET  /v1/projects/{project}/secrets/{secret}/versions/{version}:access`` (versions.access;
  ``version`` is ``latest`` or a version number);
* ``POST /v1/projects/{project}/secrets/{secret}:addVersion`` (secrets.addVersion).

Served by pytest-httpserver (as the SendGrid fake). It refuses what the real service refuses: another project (403) or an unknown secret (404), a
version id that is neither ``latest`` nor a positive number (400), a version that does not exist or
``latest`` of a secret without versions (404), unknown query parameters or body fields (400 "Unknown
name"), a payload that is missing, not base64 or over 64 KiB (400), a ``dataCrc32c`` that does not
match the data (400). Every request is kept in :attr:`FakeSecretManager.requests`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from urllib.parse import parse_qs, unquote, urlsplit

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

MAX_PAYLOAD = 64 * 1024  # bytes: Secret Manager's limit for one version
ADD_FIELDS = {"payload"}
PAYLOAD_FIELDS = {"data", "dataCrc32c"}
STATE_ENABLED = 1  # google.cloud.secretmanager.v1.SecretVersion.State.ENABLED


class ApiError(Exception):
    """An error answer: HTTP code, google.rpc status name, message."""

    def __init__(self, code: int, status: str, message: str):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class FakeSecretManager:
    """The fake service for one project and its secrets; a context manager (``url`` is its endpoint).

    ``secrets`` maps a secret id to its version payloads, oldest first (version 1 first)."""

    def __init__(self, project: str = "p", **secrets: list[str]):
        self.project = project
        self.secrets: dict[str, list[bytes]] = {s: [v.encode() for v in vs] for s, vs in secrets.items()}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile(".*")).respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def __enter__(self) -> FakeSecretManager:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    def _handle(self, request: Request) -> Response:
        target = request.environ["RAW_URI"]  # the request target as sent (path still percent-encoded)
        with self._lock:
            self.requests.append((request.method, target))
            try:
                code, body = 200, self._route(request.method, target, request.get_data(),
                                              request.headers.get("Content-Type", ""))
            except ApiError as err:
                code, body = err.code, err.body()
        return Response(json.dumps(body), code, content_type="application/json; charset=UTF-8")

    def versions(self, secret: str) -> list[str]:
        """The payloads of ``secret``'s versions, oldest first."""
        return [v.decode() for v in self.secrets[secret]]

    # --- the API --------------------------------------------------------------------------------------
    def _route(self, method: str, target: str, raw: bytes, content_type: str) -> dict:
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        alt = query.pop("$alt", None)
        if alt not in (None, "json", "json;enum-encoding=int"):
            raise invalid(f"Invalid $alt {alt!r}")
        for key in query:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{key}\": Cannot bind query parameter.")
        m = re.fullmatch(r"/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/]+):access", path)
        if m and method == "GET":
            return self._access(*m.groups())
        m = re.fullmatch(r"/v1/projects/([^/]+)/secrets/([^/]+):addVersion", path)
        if m and method == "POST":
            if not content_type.startswith("application/json"):
                raise invalid(f"Unsupported Content-Type {content_type!r}")
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                raise invalid("Invalid JSON payload received.") from None
            return self._add(m.group(1), m.group(2), body)
        raise ApiError(404, "NOT_FOUND", f"The fake Secret Manager API has no {method} {path}")

    def _secret(self, project: str, secret: str, permission: str) -> list[bytes]:
        if project != self.project:
            raise ApiError(403, "PERMISSION_DENIED", f"Permission '{permission}' denied for resource "
                                                     f"'projects/{project}/secrets/{secret}' (or it may not exist).")
        if secret not in self.secrets:
            raise ApiError(404, "NOT_FOUND", f"Secret [projects/{project}/secrets/{secret}] not found or has no "
                                             "versions.")
        return self.secrets[secret]

    def _access(self, project: str, secret: str, version: str) -> dict:
        versions = self._secret(project, secret, "secretmanager.versions.access")
        if version != "latest" and not re.fullmatch(r"[1-9][0-9]{0,18}", version):
            raise invalid(f"Invalid resource field value in the request: version '{version}'.")
        n = len(versions) if version == "latest" else int(version)
        if not 1 <= n <= len(versions):
            raise ApiError(404, "NOT_FOUND", f"Secret Version [projects/{project}/secrets/{secret}/versions/"
                                             f"{version}] not found.")
        data = versions[n - 1]
        return {"name": f"projects/{project}/secrets/{secret}/versions/{n}",
                "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(_crc32c(data))}}

    def _add(self, project: str, secret: str, body: object) -> dict:
        versions = self._secret(project, secret, "secretmanager.versions.add")
        if not isinstance(body, dict):
            raise invalid("Invalid JSON payload received. Expected an object.")
        for key in body:
            if key not in ADD_FIELDS:
                raise invalid(f"Invalid JSON payload received. Unknown name \"{key}\": Cannot find field.")
        payload = body.get("payload")
        if not isinstance(payload, dict) or "data" not in payload:
            raise invalid("Payload must be specified.")
        for key in payload:
            if key not in PAYLOAD_FIELDS:
                raise invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at 'payload': Cannot find field.")
        try:
            data = base64.b64decode(payload["data"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise invalid("Invalid value at 'payload.data' (TYPE_BYTES): not base64.") from None
        if len(data) > MAX_PAYLOAD:
            raise invalid(f"Secret payload data length must be less than or equal to {MAX_PAYLOAD} bytes.")
        if "dataCrc32c" in payload and int(payload["dataCrc32c"]) != _crc32c(data):
            raise invalid("Checksum mismatch: the data does not match data_crc32c.")
        versions.append(data)
        return {"name": f"projects/{project}/secrets/{secret}/versions/{len(versions)}",
                "createTime": "2026-01-01T00:00:00Z", "state": STATE_ENABLED}
