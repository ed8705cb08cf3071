"""Schemathesis against every operation of the dashboard and of the public unsubscribe service.

The document fuzzed is :func:`lib.dashboard.app.openapi_document`: the app's ``/openapi.json`` (checked
to be contained in it) plus the routes kept out of it — the page, ``/docs``, ``GET``/``POST /unsubscribe``,
the unsubscribe service's ``/healthz`` and stylesheet. Each operation gets schema-valid (positive) and
schema-violating (negative) requests, in-process (ASGI), over a small populated lake and over an empty
one (a fresh install), with the real unsubscribe handler (signed tokens, ``retarget/unsubscribes``).

Checks on every response: no 5xx (nor an exception), the status is documented, the body matches the
documented schema, the content type is the documented one, documented headers conform; negative
requests must be refused (4xx). Failures are collected, not shrunk: one run reports them all, with a
curl line each (an exception the app raises is not collected: it fails the test at once, with its
traceback). Hypothesis is derandomized (same cases every run, no example database), so the counts
below are stable; ``SHOP_FUZZ_EXAMPLES`` raises the examples per operation and mode for a longer run.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402 - after the importorskip
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lib.dashboard import create_app  # noqa: E402
from lib.dashboard.app import create_unsubscribe_app, openapi_document  # noqa: E402
from lib.dashboard.tables import CUSTOMER_SEGMENTS, DEMAND_FORECAST  # noqa: E402
from lib.retarget.message import offer_code, unsubscribe_token  # noqa: E402
from lib.retarget.store import DECISIONS, OFFERS, RetargetStore  # noqa: E402
from lib.retarget.unsubscribe import make_handler  # noqa: E402
from lib.schema import arrow_schema  # noqa: E402
from tests.dashboard_data import (  # noqa: E402
    QUALITY_BATCHES,
    QUARANTINE_EVENTS,
    GoldSales,
    quality_batch,
    quarantined,
    write_table,
)
from tests.unit.test_dashboard_api import HOSTILE, NOW, at, fill_sales  # noqa: E402
from tests.unit.test_dashboard_outlook_api import forecast_rows, segment_rows, write  # noqa: E402
from tests.unit.test_dashboard_recovery import UPLIFT_CONTROL, UPLIFT_MAILED, _decision  # noqa: E402

KEY = b"fuzz-test-signing-key-0123456789"
EXAMPLES = int(os.environ.get("SHOP_FUZZ_EXAMPLES", "40"))
SERVER_ERRORS = {"Server error"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
CODE = offer_code(KEY, "sess-fuzz")
# schemathesis's default for "a schema-violating request must be refused", plus 413: a body over the
# limit (lib/dashboard/limits.py; e.g. a token past its maxLength in 4-byte characters) is refused too
CONFIG_TOML = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"""


def populate(lake) -> None:
    """Every table the two apps read, a few rows each (hostile strings included)."""
    fill_sales(GoldSales(lake)).flush(NOW)
    write_table(lake, "ops", "quality_batches", QUALITY_BATCHES, [
        quality_batch(1, at(12, 29), 10, 8, 1, 1, {"price_not_positive": 1}),
        quality_batch(2, at(12, 30), 5, 5, 0, 0)])
    write_table(lake, "quarantine", "events", QUARANTINE_EVENTS, [
        quarantined(1, at(12, 29), HOSTILE * 300, ["price_not_positive", HOSTILE]),
        quarantined(2, at(12, 30), "{}", [])])
    store = RetargetStore(str(lake))
    store.append(DECISIONS, pa.Table.from_pylist([_decision("a", "sent", 10.0, 4), _decision("b", "control", 2.0, 1)],
                                                 schema=arrow_schema(DECISIONS)))
    store.overwrite("gold/retarget_uplift", pa.Table.from_pylist([UPLIFT_MAILED, UPLIFT_CONTROL],
                                                                 schema=arrow_schema("gold/retarget_uplift")))
    store.append(OFFERS, pa.Table.from_pylist([{
        "code": CODE, "user_id": 7, "user_session": "sess-fuzz", "issued_at": NOW - timedelta(days=1),
        "expires_at": NOW + timedelta(days=6), "status": "issued"}], schema=arrow_schema(OFFERS)))
    write(lake, DEMAND_FORECAST, forecast_rows())
    write(lake, CUSTOMER_SEGMENTS, segment_rows())


@dataclass
class Report:
    operations: list[str] = field(default_factory=list)
    cases: int = 0
    failures: Counter = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def record(self, label: str, title: str, detail: str) -> None:
        self.failures[title] += 1
        self.examples.setdefault((label, title), detail[:1500])

    @property
    def server_errors(self) -> int:
        return sum(n for t, n in self.failures.items() if t in SERVER_ERRORS)

    @property
    def schema_mismatches(self) -> int:
        return sum(n for t, n in self.failures.items() if t not in SERVER_ERRORS)

    def summary(self, name: str, seconds: float) -> str:
        return (f"[fuzz] {name}: {len(self.operations)} operations, {self.cases} cases, "
                f"{self.server_errors} server errors, {self.schema_mismatches} schema mismatches ({seconds:.1f} s)")

    def details(self) -> str:
        return "\n\n".join(f"--- {label}: {title}\n{detail}" for (label, title), detail in self.examples.items())


def _run_case(report: Report, label: str, case: Any, checks: list) -> None:
    report.cases += 1
    # no try: an exception the app raises instead of answering (a 500 for a real client) fails the test
    # here, with its traceback and (under hypothesis) the falsifying case
    response = case.call()
    try:
        case.validate_response(response, checks=checks)
    except FailureGroup as group:
        for failure in group.exceptions:
            report.record(label, getattr(failure, "title", type(failure).__name__),
                          f"{failure}\n{case.as_curl_command()}")


def _fuzz_operation(report: Report, op: Any, mode: GenerationMode, checks: list) -> None:
    @SETTINGS
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        _run_case(report, op.label, case, checks)

    run()


def fuzz(app, extra_cases=()) -> Report:
    """Every operation of ``openapi_document(app)``, positive and negative, then the ``extra_cases``
    (label, method, path, kwargs of ``Case``): requests random data cannot reach (a genuine token...)."""
    from schemathesis.config import SchemathesisConfig

    schema = schemathesis.openapi.from_dict(openapi_document(app), config=SchemathesisConfig.from_str(CONFIG_TOML))
    schema.app = app
    report = Report()
    for result in schema.get_all_operations():
        op = result.ok()
        report.operations.append(op.label)
        for mode, checks in ((GenerationMode.POSITIVE, CHECKS), (GenerationMode.NEGATIVE, [*CHECKS, negative_data_rejection])):
            try:
                _fuzz_operation(report, op, mode, checks)
            except Unsatisfiable:  # no parameter and no body: nothing can violate the schema
                pass
    for label, method, path, kwargs in extra_cases:
        op = schema[path][method]
        _run_case(report, label, op.Case(**kwargs), CHECKS)
    return report


def _unsubscribe_cases(lake) -> list[tuple]:
    token = unsubscribe_token(KEY, 7, "someone@example.com")
    return [
        ("GET /unsubscribe (genuine token)", "GET", "/unsubscribe", {"query": {"token": token}}),
        ("POST /unsubscribe (form)", "POST", "/unsubscribe",
         {"body": {"token": token}, "media_type": "application/x-www-form-urlencoded"}),
        ("POST /unsubscribe (RFC 8058 one-click)", "POST", "/unsubscribe",
         {"query": {"token": token}, "body": {"List-Unsubscribe": "One-Click"},
          "media_type": "application/x-www-form-urlencoded"}),
    ]


APPS = {
    "dashboard": lambda lake: create_app(str(lake), clock=lambda: NOW,
                                         unsubscribe_handler=make_handler(RetargetStore(str(lake)), KEY)),
    "unsubscribe": lambda lake: create_unsubscribe_app(make_handler(RetargetStore(str(lake)), KEY),
                                                       lake_root=str(lake), clock=lambda: NOW),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("lake_state", ["populated", "empty"])
@pytest.mark.parametrize("app_name", ["dashboard", "unsubscribe"])
def test_every_operation_survives_fuzzing_and_matches_its_schema(tmp_path, app_name, lake_state, capsys):
    lake = tmp_path / "lake"
    if lake_state == "populated":
        populate(lake)
    app = APPS[app_name](lake)
    extra = [*_unsubscribe_cases(lake),
             ("GET /api/offers/{code} (issued code)", "GET", "/api/offers/{code}", {"path_parameters": {"code": CODE}})]
    if app_name == "dashboard":  # `until` at the ends of the calendar (were 500s: datetime overflow)
        extra += [(f"GET {path} (until={until})", "GET", path, {"query": {"until": until}, **kwargs})
                  for until in ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "8999-12-31T23:59:00Z")
                  for path, kwargs in (("/api/sales/revenue_per_minute", {}),
                                       ("/api/sales/products/{product_id}", {"path_parameters": {"product_id": 101}}))]
    started = time.monotonic()
    report = fuzz(app, extra)
    seconds = time.monotonic() - started
    with capsys.disabled():
        print("\n" + report.summary(f"{app_name}, {lake_state} lake", seconds))
    documented = set(openapi_document(app)["paths"])
    if app_name == "dashboard":  # everything /openapi.json describes is fuzzed, and /unsubscribe too
        from fastapi.testclient import TestClient

        public = TestClient(app).get("/openapi.json").json()
        assert set(public["paths"]) <= documented and "/unsubscribe" in documented
        assert {"GET /unsubscribe", "POST /unsubscribe", "GET /api/offers/{code}", "GET /"} <= set(report.operations)
        assert len(report.operations) == sum(len(m) for m in public["paths"].values()) + 4  # + page, docs, unsubscribe x2
    else:
        assert set(report.operations) == {"GET /unsubscribe", "POST /unsubscribe", "GET /api/offers/{code}",
                                          "GET /healthz", "GET /static/dashboard.css"}
    assert report.cases >= len(report.operations) * min(EXAMPLES, 10)
    assert report.server_errors == 0 and report.schema_mismatches == 0, report.details()


def test_genuine_links_unsubscribe_and_edge_inputs_are_refused(tmp_path):
    """What random data cannot reach: a genuine token unsubscribes (form and one-click), ``until`` as a
    number (pydantic would read Unix seconds) or at the ends of the calendar is a 422, not a 200 or a 500."""
    from fastapi.testclient import TestClient

    from lib.retarget.store import UNSUBSCRIBES

    lake = tmp_path / "lake"
    populate(lake)
    client = TestClient(APPS["dashboard"](lake))
    token = unsubscribe_token(KEY, 7, "someone@example.com")
    assert client.post(f"/unsubscribe?token={token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert RetargetStore(str(lake)).read(UNSUBSCRIBES, ["user_id"]).column(0).to_pylist() == [7]
    for until in ("0", "1700000000", "5.2e16", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"):
        for path in ("/api/sales/revenue_per_minute", "/api/sales/products/101"):
            r = client.get(path, params={"until": until})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "until"], (path, until)
    assert client.get("/api/sales/revenue_per_minute", params={"until": "8999-12-31T23:59:00Z"}).status_code == 200
    assert client.get("/api/offers/FREESHIP-AAAAAAAAAAAAAAAı").status_code == 422  # dotless i: upper() gives I
