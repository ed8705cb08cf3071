"""A local stand-in for SendGrid's v3 ``POST /v3/mail/send`` that checks what the real API checks.

SendGrid is SaaS and cannot run here, so the SendGrid sender is tested against this HTTP endpoint.
It refuses what the real one refuses (messages modelled on SendGrid's error responses): a missing or
malformed ``Authorization: Bearer SG.…`` (401), bodies over 30 MB (413), non-JSON, no ``from`` or
an invalid address, no personalizations / more than 1000, a personalization without ``to``, duplicate
recipients, no subject (top level or per personalization), empty content, ``text/plain`` not first,
non-string ``custom_args`` values, reserved headers, more than 10 categories (400, with ``errors``).
Accepted messages get 202, an empty body and an ``X-Message-Id`` header, and are kept in ``accepted``.
``fail_next`` makes the next requests fail with the given status codes (429/500 for retry tests).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BYTES = 30 * 1024 * 1024
EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
RESERVED_HEADERS = {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"}


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
        self.requests = 0
        self.fail_next: list[int] = []
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

            def do_POST(self):  # noqa: N802 — http.server's hook name
                fake.requests += 1
                length = int(self.headers.get("Content-Length", "0"))
                if length > MAX_BYTES:
                    return self._reply(413, {"errors": [{"message": "Payload Too Large", "field": None}]})
                raw = self.rfile.read(length)
                if self.path != "/v3/mail/send":
                    return self._reply(404, {"errors": [{"message": "Not Found", "field": None}]})
                if fake.fail_next:
                    return self._reply(fake.fail_next.pop(0), {"errors": [{"message": "Service unavailable"}]})
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {fake.api_key}" or not fake.api_key.startswith("SG."):
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
