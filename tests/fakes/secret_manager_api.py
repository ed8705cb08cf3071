"""A local stand-in for the Secret Manager v1 REST API: the calls ``lib/retarget/secrets.py`` makes,
checked like the real service.

:mod:`lib.retarget.secrets` is tested against this HTTP server through the real client library
(``google-cloud-secret-manager`` with ``transport="rest"``, anonymous credentials for an ``http://``
endpoint): what is under test is everything down to the JSON on the wire.

Implemented (nothing else; other paths answer 404 in Google's error format):

* ``GET  /v1/projects/{project}/secrets/{secret}/versions/{version}:access`` (versions.access;
  ``version`` is ``latest`` or a version number);
* ``POST /v1/projects/{project}/secrets/{secret}:addVersion`` (secrets.addVersion).

Served by :class:`tests.fakes.google_api.GoogleApiFake` (pytest-httpserver), with Google's error format
and the checks every Google API makes. It refuses what the real service refuses: another project (403)
or an unknown secret (404), a version id that is neither ``latest`` nor a positive number (400), a
version that does not exist or ``latest`` of a secret without versions (404), unknown query parameters
or body fields (400 "Unknown name"), a payload that is missing, not base64 or over 64 KiB (400), a
``dataCrc32c`` that does not match the data (400, checked with ``google-crc32c``). Every request is kept
in :attr:`FakeSecretManager.requests`.
"""

from __future__ import annotations

import base64
import binascii
import re

import google_crc32c

from tests.fakes.google_api import ApiError, GoogleApiFake, check_fields, check_query, invalid, json_body

MAX_PAYLOAD = 64 * 1024  # bytes: Secret Manager's limit for one version
ADD_FIELDS = {"payload"}
PAYLOAD_FIELDS = {"data", "dataCrc32c"}
STATE_ENABLED = 1  # google.cloud.secretmanager.v1.SecretVersion.State.ENABLED


class FakeSecretManager(GoogleApiFake):
    """The fake service for one project and its secrets; a context manager (``url`` is its endpoint).

    ``secrets`` maps a secret id to its version payloads, oldest first (version 1 first)."""

    api = "Secret Manager"

    def __init__(self, project: str = "p", **secrets: list[str]):
        super().__init__()
        self.project = project
        self.secrets: dict[str, list[bytes]] = {s: [v.encode() for v in vs] for s, vs in secrets.items()}

    def versions(self, secret: str) -> list[str]:
        """The payloads of ``secret``'s versions, oldest first."""
        return [v.decode() for v in self.secrets[secret]]

    # --- the API --------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str], numeric: bool, raw: bytes,
               content_type: str) -> dict | None:
        check_query(query, set())  # neither method has query parameters
        m = re.fullmatch(r"/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/]+):access", path)
        if m and method == "GET":
            return self._access(*m.groups())
        m = re.fullmatch(r"/v1/projects/([^/]+)/secrets/([^/]+):addVersion", path)
        if m and method == "POST":
            return self._add(m.group(1), m.group(2), json_body(raw, content_type))
        return None

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
                "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(google_crc32c.value(data))}}

    def _add(self, project: str, secret: str, body: object) -> dict:
        versions = self._secret(project, secret, "secretmanager.versions.add")
        payload = check_fields(body, ADD_FIELDS).get("payload")
        if not isinstance(payload, dict) or "data" not in payload:
            raise invalid("Payload must be specified.")
        check_fields(payload, PAYLOAD_FIELDS, "payload")
        try:
            data = base64.b64decode(payload["data"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise invalid("Invalid value at 'payload.data' (TYPE_BYTES): not base64.") from None
        if len(data) > MAX_PAYLOAD:
            raise invalid(f"Secret payload data length must be less than or equal to {MAX_PAYLOAD} bytes.")
        if "dataCrc32c" in payload and int(payload["dataCrc32c"]) != google_crc32c.value(data):
            raise invalid("Checksum mismatch: the data does not match data_crc32c.")
        versions.append(data)
        return {"name": f"projects/{project}/secrets/{secret}/versions/{len(versions)}",
                "createTime": "2026-01-01T00:00:00Z", "state": STATE_ENABLED}
