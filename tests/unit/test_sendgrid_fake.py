"""The SendGrid fake refuses what the real v3 API refuses: each rule of its request schema on its own, and the
HTTP-level answers (401, 404, 413, non-JSON, the faults the dispatcher's tests inject)."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request

import pytest

from tests.fakes.sendgrid_api import FakeSendGrid, validate

GOOD = {
    "from": {"email": "offers@shop.example", "name": "Shop"},
    "personalizations": [{"to": [{"email": "ann@example.com", "name": "Ann"}], "custom_args": {"session_id": "s1"}}],
    "subject": "Your cart",
    "content": [{"type": "text/plain", "value": "hi"}, {"type": "text/html", "value": "<p>hi</p>"}],
    "headers": {"X-Session-Id": "s1"},
    "categories": ["retarget"],
}


def _set(path: str, value):
    def change(body: dict) -> None:
        *parents, last = path.split(".")
        node = body
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is _DROP:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return change


_DROP = object()
P0 = "personalizations.0"

REFUSED = {  # what the real API refuses -> the field its error names
    "no from": (_set("from", _DROP), "from"),
    "from not an address": (_set("from.email", "shop"), "from.email"),
    "from name with a comma": (_set("from.name", "Shop, Inc"), "from.name"),
    "no personalizations": (_set("personalizations", _DROP), "personalizations"),
    "empty personalizations": (_set("personalizations", []), "personalizations"),
    "over 1000 personalizations": (_set("personalizations", [{"to": [{"email": "a@b.example"}]}] * 1001),
                                   "personalizations"),
    "a personalization without to": (_set(f"{P0}.to", _DROP), f"{P0}.to"),
    "an empty to": (_set(f"{P0}.to", []), f"{P0}.to"),
    "an invalid recipient": (_set(f"{P0}.to.0.email", "ann@example"), f"{P0}.to.0.email"),
    "a recipient with a line break": (_set(f"{P0}.to.0.email", "ann@example.com\r\nBcc: x@y.example"),
                                      f"{P0}.to.0.email"),
    "a recipient name with a line break": (_set(f"{P0}.to.0.name", "Ann\r\nBcc: x@y.example"), f"{P0}.to.0.name"),
    "a duplicate recipient in cc": (_set(f"{P0}.cc", [{"email": "ANN@example.com"}]), f"{P0}.to"),
    "no subject anywhere": (_set("subject", _DROP), "subject"),
    "an empty subject": (_set("subject", ""), "subject"),
    "no content": (_set("content", _DROP), "content"),
    "empty content": (_set("content", []), "content"),
    "an empty content value": (_set("content.0.value", ""), "content.0.value"),
    "a content type without a slash": (_set("content.0.type", "plain"), "content.0.type"),
    "text/plain not first": (lambda b: b["content"].reverse(), "content"),
    "a non-string custom arg": (_set(f"{P0}.custom_args.n", 3), f"{P0}.custom_args.n"),
    "a reserved header": (_set("headers.Subject", "x"), "headers"),
    "a reserved header in any case": (_set("headers.dkim-SIGNATURE", "x"), "headers"),
    "a header value with a line break": (_set("headers.X-A", "a\r\nb"), "headers.X-A"),
    "11 categories": (_set("categories", [f"c{i}" for i in range(11)]), "categories"),
    "duplicate categories": (_set("categories", ["a", "a"]), "categories"),
    "a category over 255 characters": (_set("categories", ["c" * 256]), "categories"),
    "not an object": (lambda b: None, None),
}


def test_the_senders_payload_shape_is_valid():
    assert validate(copy.deepcopy(GOOD)) == []
    body = copy.deepcopy(GOOD)
    del body["subject"]
    body["personalizations"][0]["subject"] = "per personalization"  # a subject in every personalization will do
    assert validate(body) == []
    body = copy.deepcopy(GOOD)
    del body["content"]
    body["template_id"] = "d-0123"  # a template brings its own content
    assert validate(body) == []


@pytest.mark.parametrize("case", REFUSED)
def test_each_rule_refuses_on_its_own_and_names_the_field(case):
    change, field = REFUSED[case]
    body = copy.deepcopy(GOOD)
    change(body)
    errs = validate([] if case == "not an object" else body)
    assert errs and {e["field"] for e in errs} == {field}, errs
    assert all(e["message"] and set(e) == {"message", "field", "help"} for e in errs)


def _post(api: FakeSendGrid, body: bytes, key: str | None = None, path: str = "/v3/mail/send") -> tuple[int, dict]:
    req = urllib.request.Request(api.url + path, data=body, method="POST",
                                 headers={"Authorization": f"Bearer {key or api.api_key}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_http_answers():
    with FakeSendGrid() as api:
        status, headers = _post(api, json.dumps(GOOD).encode())
        assert status == 202 and headers["X-Message-Id"] == api.accepted_ids[0] and api.accepted == [GOOD]
        assert _post(api, json.dumps(GOOD).encode(), key="SG.revoked")[0] == 401
        assert _post(api, b"{not json")[0] == 400
        status, body = _post(api, json.dumps({**GOOD, "from": {"email": "x"}}).encode())
        assert status == 400 and body["errors"][0]["field"] == "from.email"
        assert _post(api, b"{}", path="/v3/other")[0] == 404
        api.fail_next, api.retry_after = [429], 9
        status, _ = _post(api, json.dumps(GOOD).encode())
        assert status == 429
        api.accept_then_fail = [500]
        assert _post(api, json.dumps(GOOD).encode())[0] == 500 and len(api.accepted) == 2  # accepted all the same
        api.accept_then_fail = [0]
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):  # accepted, then no answer at all
            _post(api, json.dumps(GOOD).encode())
        assert len(api.accepted) == 3 and api.requests == 8
        assert _post(api, b" " * (30 * 1024 * 1024 + 1))[0] == 413  # over 30 MB
        assert len(api.accepted) == 3


def test_activity_api():
    with FakeSendGrid() as api:
        assert _post(api, json.dumps(GOOD).encode())[0] == 202

        def get(query: str, key: str | None = None) -> tuple[int, dict]:
            req = urllib.request.Request(f"{api.url}/v3/messages?{query}",
                                         headers={"Authorization": f"Bearer {key or api.api_key}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, {}
        q = "limit=10&query=" + urllib.request.quote("(unique_args['session_id']=\"s1\")")
        status, body = get(q)
        assert status == 200 and [m["msg_id"] for m in body["messages"]] == api.accepted_ids
        assert get(q.replace("s1", "s2"))[1] == {"messages": []}
        assert get(q, key="SG.other")[0] == 401
        assert get("limit=0&" + q.split("&", 1)[1])[0] == 400 and get("limit=10&query=session_id")[0] == 400
        api.activity = False
        assert get(q)[0] == 403 and api.activity_requests == 6
