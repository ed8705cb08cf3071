"""A local stand-in for SendGrid's v3 ``POST /v3/mail/send`` that checks what the real API checks.

SendGrid is SaaS and cannot run here, so the SendGrid sender is tested against this HTTP endpoint: a
pytest-httpserver server (werkzeug, one thread per request) whose handler checks the request body against
``SCHEMA``, a JSON Schema of the v3 mail/send request (jsonschema), and answers like the real API.
It refuses what the real one refuses (messages modelled on SendGrid's error responses): a missing or
malformed ``Authorization: Bearer SG.…`` (401), bodies over 30 MB (413), non-JSON, no ``from`` or
an invalid address, no personalizations / more than 1000, a personalization without ``to``, duplicate
recipients, no subject (top level or per personalization), empty content, ``text/plain`` not first,
non-string ``custom_args`` values, reserved headers, more than 10 categories (400, with ``errors``).
Accepted messages get 202, an empty body and an ``X-Message-Id`` header, and are kept in ``accepted``.

Faults, for the dispatcher's tests: ``fail_next`` makes the next sends fail with the given status codes
before anything is accepted (429 carries ``Retry-After: retry_after``); ``accept_then_fail`` makes the
next sends *accept* the message and then answer with the given status (500: "error after acceptance") or,
with ``0``, drop the connection without an answer; ``api_key`` can be changed (a revoked / rotated key).

The Email Activity API (``GET /v3/messages?limit=N&query=...``), as the dispatcher's ``reconcile`` uses
it: the same Bearer key (401 otherwise); 403 when ``activity`` is False (the paid add-on not bought);
``limit`` 1..1000 and a ``query`` of the documented form ``(unique_args['name']="value")`` (400
otherwise); messages appear ``activity_lag`` seconds after acceptance, as the real feed lags.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid

from jsonschema import Draft202012Validator, ValidationError, validators
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

MAX_BYTES = 30 * 1024 * 1024
EMAIL = r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
RESERVED_HEADERS = ("x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc")
ACTIVITY_QUERY = re.compile(r"""^\(unique_args\['([A-Za-z0-9_-]+)'\]="([^"]*)"\)$""")

# What a failing keyword answers: ``x-message`` (``{type}`` / ``{instance}`` filled in from the failing value; a
# dict: by keyword), ``x-missing`` on a property when it is required and absent, and, where SendGrid names another
# field than the failing value's path, ``x-field``.
ADDRESS = "Does not contain a valid address."
SUBJECT = "The subject is required and must be a string at least one character in length."
CATEGORIES = "The categories must be unique strings of at most 255 characters, and there may be at most 10."
CONTENT = ("Unless a valid template_id is provided, the content parameter is required. There must be at least one "
           "defined content block. We typically suggest both text/plain and text/html blocks are included, but only "
           "one block is required.")

_address = {
    "type": "object", "required": ["email"], "x-message": ADDRESS,
    "properties": {
        "email": {"type": "string", "pattern": EMAIL, "x-message": ADDRESS},
        "name": {"type": "string", "pattern": r"^[^;,\r\n]*$",
                 "x-message": "The name of the address may not contain ';', ',' or line breaks."},
    },
}
_addresses = {"type": "array", "items": _address, "x-message": ADDRESS}
_to_required = ("The to array is required for all personalization objects, and must have at least one email "
                "object with a valid email address.")
_subject_present = {"required": ["subject"], "properties": {"subject": {"type": "string", "minLength": 1}}}
_template_given = {"required": ["template_id"], "properties": {"template_id": {"type": "string", "minLength": 1}}}
_plain_block = {"type": "object", "required": ["type"], "properties": {"type": {"const": "text/plain"}}}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "SendGrid v3 POST /v3/mail/send request (the parts the dispatcher's sender uses or could get wrong)",
    "type": "object", "x-message": "Bad Request",
    "required": ["from", "personalizations"],
    "properties": {
        "from": {**_address, "x-missing": "The from object must be provided for every email send. It is an object "
                                          "that requires the email parameter, but may also contain a name parameter."},
        "personalizations": {
            "type": "array", "minItems": 1, "maxItems": 1000,
            "x-missing": "The personalizations field is required and must have at least one personalization.",
            "x-message": {  # by failing keyword
                "type": "The personalizations field is required and must have at least one personalization.",
                "minItems": "The personalizations field is required and must have at least one personalization.",
                "maxItems": "The personalizations field must have no more than 1000 personalizations.",
            },
            "items": {
                "type": "object", "required": ["to"], "x-message": _to_required, "uniqueRecipients": True,
                "properties": {
                    "to": {**_addresses, "minItems": 1, "x-message": _to_required},
                    "cc": _addresses,
                    "bcc": _addresses,
                    "subject": {"type": "string"},
                    "custom_args": {"type": ["object", "null"], "additionalProperties": {
                        "type": "string", "x-message": "Invalid type. Expected: string, given: {type}."}},
                },
            },
        },
        "subject": {"type": "string", "minLength": 1, "x-message": SUBJECT},
        "headers": {
            "type": ["object", "null"],
            "propertyNames": {"not": {"pattern": f"(?i)^({'|'.join(map(re.escape, RESERVED_HEADERS))})$"},
                              "x-message": "The following header(s) are reserved and cannot be set: {instance}."},
            "additionalProperties": {"type": "string", "pattern": r"^[^\r\n]*$",
                                     "x-message": "Header values must be strings without line breaks."},
        },
        "categories": {
            "type": ["array", "null"], "maxItems": 10, "uniqueItems": True, "x-message": CATEGORIES,
            "items": {"type": "string", "maxLength": 255, "x-message": CATEGORIES, "x-field": "categories"},
        },
    },
    "allOf": [
        {  # no top-level subject: every personalization needs its own
            "if": {"not": _subject_present},
            "then": {"properties": {"personalizations": {"items": {
                "required": ["subject"], "x-field": "subject",
                "x-message": "The subject is required. You can get around this requirement if you use a template "
                             "with a subject defined or if every personalization has a subject defined."}}}},
        },
        {  # no template: content blocks, non-empty, text/plain first
            "if": {"not": _template_given},
            "then": {
                "required": ["content"],
                "x-message": CONTENT, "x-field": "content",
                "properties": {"content": {
                    "type": "array", "minItems": 1, "x-missing": CONTENT,
                    "x-message": CONTENT,
                    "items": {
                        "type": "object", "required": ["type", "value"],
                        "x-message": "The content value and type must be strings at least one character in length.",
                        "properties": {
                            "value": {"type": "string", "minLength": 1, "x-message": "The content value must be "
                                      "a string at least one character in length."},
                            "type": {"type": "string", "pattern": "/", "x-message": "The content type must be a "
                                     "string at least one character in length."},
                        },
                    },
                    "if": {"contains": _plain_block},
                    "then": {"prefixItems": [{"properties": {"type": {
                        "const": "text/plain", "x-field": "content", "x-message": "If present, text/plain content "
                        "must be first, followed by text/html, followed by any other content."}}}]},
                }},
            },
        },
    ],
}


def _unique_recipients(validator, enabled, personalization, schema):
    """The one rule JSON Schema cannot say: an address once per personalization across to, cc and bcc
    (case-insensitive)."""
    if not enabled or not isinstance(personalization, dict):
        return
    seen = set()
    for kind in ("to", "cc", "bcc"):
        for a in personalization.get(kind) or []:
            e = a.get("email", "").lower() if isinstance(a, dict) and isinstance(a.get("email"), str) else ""
            if e in seen:
                yield ValidationError("Each email address in the personalization block should be unique between "
                                      "to, cc, and bcc.", path=["to"])
                return
            seen.add(e)


Validator = validators.extend(Draft202012Validator, {"uniqueRecipients": _unique_recipients})
Validator.check_schema(SCHEMA)
VALIDATOR = Validator(SCHEMA)


def _error(e: ValidationError) -> dict:
    """A SendGrid-style error: the message the schema gives the failing keyword, the field it names (else
    the failing value's path, with a missing property appended)."""
    missing = next(k for k in e.validator_value if k not in e.instance) if e.validator == "required" else None
    prop = e.schema.get("properties", {}).get(missing, {})
    if e.validator == "uniqueRecipients":
        message = e.message
    else:
        message = prop.get("x-missing") or prop.get("x-message") or e.schema.get("x-message", e.message)
        if isinstance(message, dict):
            message = message.get(e.validator, e.message)
        message = message.format(type=type(e.instance).__name__, instance=e.instance)
    path = [str(p) for p in e.absolute_path]
    if missing is not None:
        path.append(missing)
    return {"message": message, "field": e.schema.get("x-field") or ".".join(path) or None, "help": None}


def validate(body: object) -> list[dict]:
    """Every reason SendGrid would give for refusing ``body`` (400), in SendGrid's error form; [] when valid."""
    errs: list[dict] = []
    for e in sorted(VALIDATOR.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))):
        err = _error(e)
        if err not in errs:
            errs.append(err)
    return errs


def _reply(code: int, body: dict | None = None, headers: dict | None = None) -> Response:
    if body is None:
        return Response(b"", code, headers)
    return Response(json.dumps(body), code, headers, content_type="application/json")


def _errors(message: str, field: str | None = None) -> dict:
    return {"errors": [{"message": message, "field": field}]}


class FakeSendGrid:
    def __init__(self, api_key: str = "SG.test-key.0123456789"):
        self.api_key = api_key
        self.accepted: list[dict] = []
        self.accepted_ids: list[str] = []
        self.accepted_at: list[float] = []
        self.requests = 0
        self.fail_next: list[int] = []
        self.retry_after = 2
        self.accept_then_fail: list[int] = []
        self.activity = True
        self.activity_lag = 0.0
        self.activity_requests = 0
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile(".*")).respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop()

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}" and self.api_key.startswith("SG.")

    def _handle(self, request: Request) -> Response:
        if request.method == "POST":
            return self._send(request)
        if request.method == "GET" and request.path == "/v3/messages":
            return self._activity(request)
        return _reply(404, _errors("Not Found"))

    def _activity(self, request: Request) -> Response:
        self.activity_requests += 1
        if not self._authorized(request):
            return _reply(401, _errors("authorization required"))
        if not self.activity:
            return _reply(403, _errors("access forbidden"))
        limit = request.args.get("limit", "")
        m = ACTIVITY_QUERY.match(request.args.get("query", ""))
        if not limit.isdigit() or not 1 <= int(limit) <= 1000 or m is None:
            return _reply(400, _errors("invalid query or limit", "query"))
        name, value = m.groups()
        now = time.time()
        found = [{"msg_id": mid, "status": "delivered", "subject": b["subject"],
                  "to_email": b["personalizations"][0]["to"][0]["email"]}
                 for b, mid, at in zip(self.accepted, self.accepted_ids, self.accepted_at, strict=True)
                 if now - at >= self.activity_lag
                 and (b["personalizations"][0].get("custom_args") or {}).get(name) == value]
        return _reply(200, {"messages": found[: int(limit)]})

    def _send(self, request: Request) -> Response:
        self.requests += 1
        if (request.content_length or 0) > MAX_BYTES:  # (pytest-httpserver has read the body already, for its log)
            return _reply(413, _errors("Payload Too Large"))
        raw = request.get_data()
        if request.path != "/v3/mail/send":
            return _reply(404, _errors("Not Found"))
        if self.fail_next:
            code = self.fail_next.pop(0)
            return _reply(code, {"errors": [{"message": "Service unavailable"}]},
                          {"Retry-After": str(self.retry_after)} if code == 429 else None)
        if not self._authorized(request):
            return _reply(401, _errors("The provided authorization grant is invalid, expired, or revoked"))
        try:
            body = json.loads(raw)
        except ValueError:
            return _reply(400, _errors("Bad Request"))
        errs = validate(body)
        if errs:
            return _reply(400, {"errors": errs})
        mid = uuid.uuid4().hex[:22]
        self.accepted.append(body)
        self.accepted_ids.append(mid)
        self.accepted_at.append(time.time())
        if self.accept_then_fail:
            code = self.accept_then_fail.pop(0)
            if code == 0:  # accepted, then the connection drops before any answer
                request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
                return _reply(500)  # never arrives
            return _reply(code, {"errors": [{"message": "Internal Server Error"}]})
        return _reply(202, None, {"X-Message-Id": mid})
