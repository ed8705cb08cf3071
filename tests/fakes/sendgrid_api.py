"""A local stand-in for SendGrid's v3 ``POST /v3/mail/send`` that checks what the real API checks.

SendGrid is SaaS and cannot run here, so the SendGrid sender is tested against this HTTP endpoint.
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
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BYTES = 30 * 1024 * 1024
EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
RESERVED_HEADERS = {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"}


ACTIVITY_QUERY = re.compile(r"""^\(unique_args\['([A-Za-z0-9_-]+)'\]="([^"]*)"\)$""")


def validate(body: dict) -> list[dict]:
    errs: list[dict] = []

    def err(msg: str, fld: str | None = None) -> None:
        errs.append({"message": msg, "field": fld, "help": None})

    def check_addr(obj, fld: str) -> None:
        if not isinstance(obj, dict) or not isinstance(obj.get("email"), str) or not EMAIL.match(obj["email"]):
            err("Does not contain a valid address.", fld)
        elif "name" in obj and (not isinstance(obj["name"], str) or any(c in obj["name"] for c in "\r\n;,")):
            err("The name of the address may not contain ';', ',' or line breaks.", fld)

    if "from" not in body:
        err("The from object must be provided for every email send. It is an object that requires the email "
            "parameter, but may also contain a name parameter.", "from")
    else:
        check_addr(body["from"], "from.email")
    pers = body.get("personalizations")
    if not isinstance(pers, list) or not pers:
        err("The personalizations field is required and must have at least one personalization.", "personalizations")
        pers = []
    if len(pers) > 1000:
        err("The personalizations field must have no more than 1000 personalizations.", "personalizations")
    top_subject = body.get("subject")
    if top_subject is not None and (not isinstance(top_subject, str) or not top_subject):
        err("The subject is required and must be a string at least one character in length.", "subject")
    for i, p in enumerate(pers):
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            err("The to array is required for all personalization objects, and must have at least one email "
                "object with a valid email address.", f"personalizations.{i}.to")
            continue
        seen = set()
        for j, a in enumerate(to + p.get("cc", []) + p.get("bcc", [])):
            check_addr(a, f"personalizations.{i}.to.{j}.email")
            e = a.get("email", "").lower() if isinstance(a, dict) else ""
            if e in seen:
                err("Each email address in the personalization block should be unique between to, cc, and bcc.",
                    f"personalizations.{i}.to")
            seen.add(e)
        if not top_subject and not p.get("subject"):
            err("The subject is required. You can get around this requirement if you use a template with a "
                "subject defined or if every personalization has a subject defined.", "subject")
        for k, v in (p.get("custom_args") or {}).items():
            if not isinstance(v, str):
                err(f"Invalid type. Expected: string, given: {type(v).__name__}.", f"personalizations.{i}.custom_args.{k}")
    content = body.get("content")
    if not body.get("template_id"):
        if not isinstance(content, list) or not content:
            err("Unless a valid template_id is provided, the content parameter is required. There must be at least "
                "one defined content block. We typically suggest both text/plain and text/html blocks are included, "
                "but only one block is required.", "content")
            content = []
        for k, c in enumerate(content):
            if not isinstance(c, dict) or not isinstance(c.get("value"), str) or not c.get("value"):
                err("The content value must be a string at least one character in length.", f"content.{k}.value")
            if not isinstance(c, dict) or not isinstance(c.get("type"), str) or "/" not in c.get("type", ""):
                err("The content type must be a string at least one character in length.", f"content.{k}.type")
        types = [c.get("type") for c in content if isinstance(c, dict)]
        if "text/plain" in types and types.index("text/plain") != 0:
            err("If present, text/plain content must be first, followed by text/html, followed by any other content.",
                "content")
    headers = body.get("headers") or {}
    reserved = sorted(h for h in headers if h.lower() in RESERVED_HEADERS)
    if reserved:
        err(f"The following header(s) are reserved and cannot be set: {', '.join(reserved)}.", "headers")
    for h, v in headers.items():
        if not isinstance(v, str) or "\n" in v or "\r" in v:
            err("Header values must be strings without line breaks.", f"headers.{h}")
    cats = body.get("categories") or []
    if len(cats) > 10 or len(set(cats)) != len(cats) or any(not isinstance(c, str) or len(c) > 255 for c in cats):
        err("The categories must be unique strings of at most 255 characters, and there may be at most 10.", "categories")
    return errs


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
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code: int, body: dict | None = None, headers: dict | None = None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization", "")
                return auth == f"Bearer {fake.api_key}" and fake.api_key.startswith("SG.")

            def do_GET(self):  # noqa: N802 — http.server's hook name
                url = urlsplit(self.path)
                if url.path != "/v3/messages":
                    return self._reply(404, {"errors": [{"message": "Not Found", "field": None}]})
                fake.activity_requests += 1
                if not self._authorized():
                    return self._reply(401, {"errors": [{"message": "authorization required", "field": None}]})
                if not fake.activity:
                    return self._reply(403, {"errors": [{"message": "access forbidden", "field": None}]})
                qs = parse_qs(url.query)
                limit = (qs.get("limit") or [""])[0]
                m = ACTIVITY_QUERY.match((qs.get("query") or [""])[0])
                if not limit.isdigit() or not 1 <= int(limit) <= 1000 or m is None:
                    return self._reply(400, {"errors": [{"message": "invalid query or limit", "field": "query"}]})
                name, value = m.groups()
                now = time.time()
                found = [{"msg_id": mid, "status": "delivered", "subject": b["subject"],
                          "to_email": b["personalizations"][0]["to"][0]["email"]}
                         for b, mid, at in zip(fake.accepted, fake.accepted_ids, fake.accepted_at, strict=True)
                         if now - at >= fake.activity_lag
                         and (b["personalizations"][0].get("custom_args") or {}).get(name) == value]
                return self._reply(200, {"messages": found[: int(limit)]})

            def do_POST(self):  # noqa: N802 — http.server's hook name
                fake.requests += 1
                length = int(self.headers.get("Content-Length", "0"))
                if length > MAX_BYTES:
                    return self._reply(413, {"errors": [{"message": "Payload Too Large", "field": None}]})
                raw = self.rfile.read(length)
                if self.path != "/v3/mail/send":
                    return self._reply(404, {"errors": [{"message": "Not Found", "field": None}]})
                if fake.fail_next:
                    code = fake.fail_next.pop(0)
                    return self._reply(code, {"errors": [{"message": "Service unavailable"}]},
                                       {"Retry-After": str(fake.retry_after)} if code == 429 else None)
                if not self._authorized():
                    return self._reply(401, {"errors": [{"message": "The provided authorization grant is invalid, "
                                                                    "expired, or revoked", "field": None}]})
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._reply(400, {"errors": [{"message": "Bad Request", "field": None}]})
                errs = validate(body) if isinstance(body, dict) else [{"message": "Bad Request", "field": None}]
                if errs:
                    return self._reply(400, {"errors": errs})
                mid = uuid.uuid4().hex[:22]
                fake.accepted.append(body)
                fake.accepted_ids.append(mid)
                fake.accepted_at.append(time.time())
                if fake.accept_then_fail:
                    code = fake.accept_then_fail.pop(0)
                    if code == 0:  # accepted, then the connection drops before any answer
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return None
                    return self._reply(code, {"errors": [{"message": "Internal Server Error"}]})
                return self._reply(202, None, {"X-Message-Id": mid})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
