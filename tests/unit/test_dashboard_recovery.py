"""The dashboard's cart-recovery API and the unsubscribe links of the emails."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from fastapi.testclient import TestClient

from lib.dashboard import create_app
from lib.retarget.message import Branding, render
from lib.retarget.rules import Subscriber
from lib.retarget.store import DECISIONS, UNSUBSCRIBES, RetargetStore
from lib.retarget.unsubscribe import make_handler
from lib.schema import arrow_schema

KEY = b"dashboard-test-key-0123456789"
T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def _decision(session: str, decision: str, value: float, lag_s: float) -> dict:
    return {"user_session": session, "user_id": 1, "decision": decision, "detail": "", "decided_at":
            T0 + timedelta(seconds=lag_s), "expired_at": T0, "last_cart_at": T0 - timedelta(minutes=31),
            "cart_value": value, "email_domain": "example.com", "attempts": 1}


UPLIFT_ARM = {"carts": 0, "users": 0, "units": 0, "converted_units": 0, "conversion_rate": None, "revenue": 0.0,
              "revenue_per_unit": None, "window_complete_units": 0, "window_days": 7, "uplift_pp": None,
              "uplift_ci_low_pp": None, "uplift_ci_high_pp": None, "p_value": None, "mde_pp": None,
              "revenue_per_unit_diff": None, "revenue_per_unit_diff_ci_low": None,
              "revenue_per_unit_diff_ci_high": None, "incremental_revenue": None, "verdict": None,
              "as_of": T0, "computed_at": T0}
UPLIFT_MAILED = {**UPLIFT_ARM, "arm": "mailed", "carts": 3, "users": 3, "units": 3, "converted_units": 2,
                 "conversion_rate": 2 / 3, "revenue": 30.0, "revenue_per_unit": 10.0, "window_complete_units": 3,
                 "uplift_pp": 4.8, "uplift_ci_low_pp": 2.1, "uplift_ci_high_pp": 7.5, "p_value": 0.0012,
                 "mde_pp": 3.1, "revenue_per_unit_diff": 2.5, "revenue_per_unit_diff_ci_low": 0.4,
                 "revenue_per_unit_diff_ci_high": 4.9, "incremental_revenue": 7.5, "verdict": "significant"}
UPLIFT_CONTROL = {**UPLIFT_ARM, "arm": "control", "carts": 1, "users": 1, "units": 1, "conversion_rate": 0.0,
                  "revenue_per_unit": 0.0, "window_complete_units": 1}


def test_recovery_counts_decisions_and_reports_uplift(tmp_path):
    store = RetargetStore(str(tmp_path))
    client = TestClient(create_app(str(tmp_path)))
    empty = client.get("/api/recovery").json()
    assert empty["abandoned_carts"] == 0 and empty["decisions"] == [] and empty["uplift"] == []
    store.append(DECISIONS, pa.Table.from_pylist(
        [_decision("a", "sent", 10.0, 4), _decision("b", "sent", 5.5, 8), _decision("c", "control", 2.0, 1),
         _decision("d", "not_subscriber", 1.0, 1), _decision("e", "sent", 1.0, 30)], schema=arrow_schema(DECISIONS)))
    store.overwrite("gold/retarget_uplift", pa.Table.from_pylist([UPLIFT_MAILED, UPLIFT_CONTROL],
                                                                 schema=arrow_schema("gold/retarget_uplift")))
    r = client.get("/api/recovery").json()
    assert r["abandoned_carts"] == 5 and r["emails_sent"] == 3
    assert r["decisions"][0] == {"decision": "sent", "carts": 3, "cart_value": 16.5}
    assert r["median_seconds_expiry_to_send"] == 8.0
    assert r["recent"][0]["decision"] == "sent" and r["recent"][0]["seconds_after_expiry"] == 30.0
    uplift = {u["arm"]: u for u in r["uplift"]}
    assert {a: u["converted_units"] for a, u in uplift.items()} == {"mailed": 2, "control": 0}
    m = uplift["mailed"]
    assert (m["uplift_pp"], m["uplift_ci_low_pp"], m["uplift_ci_high_pp"]) == (4.8, 2.1, 7.5)
    assert (m["p_value"], m["mde_pp"], m["verdict"]) == (0.0012, 3.1, "significant")
    assert uplift["control"]["verdict"] is None and uplift["control"]["p_value"] is None
    openapi = client.get("/openapi.json").json()
    assert "/api/recovery" in openapi["paths"]
    fields = openapi["components"]["schemas"]["UpliftArm"]["properties"]
    assert {"units", "uplift_ci_low_pp", "uplift_ci_high_pp", "p_value", "mde_pp", "verdict"} <= set(fields)


def test_recovery_reads_an_uplift_table_of_the_old_schema(tmp_path):
    """gold/retarget_uplift written before the ITT report (columns per cart): shown without failing until
    the next run of the batch job replaces it."""
    from deltalake import write_deltalake

    write_deltalake(str(tmp_path / "gold" / "retarget_uplift"), pa.Table.from_pylist(
        [{"arm": "mailed", "carts": 3, "converted_carts": 2, "uplift_pp": 66.7}]))
    r = TestClient(create_app(str(tmp_path))).get("/api/recovery").json()
    assert r["uplift"][0]["carts"] == 3 and r["uplift"][0]["verdict"] is None


def test_unsubscribe_link_from_an_email_works_once_and_rejects_forgeries(tmp_path):
    store = RetargetStore(str(tmp_path))
    client = TestClient(create_app(str(tmp_path), unsubscribe_handler=make_handler(store, KEY)))
    brand = Branding("https://shop.example", "http://testserver/unsubscribe", "offers@shop.example", "Shop", 7)
    msg = render({"user_session": "s", "user_id": 42, "cart_value": 1.0, "items": []},
                 Subscriber(42, "kim@example.com", True, "Kim", None), key=KEY, brand=brand, now=T0).message
    link = re.search(r"<(http://testserver/unsubscribe\?token=[^>]+)>", msg["List-Unsubscribe"]).group(1)
    page = client.get(link)
    assert page.status_code == 200 and 'data-testid="unsubscribe-confirm"' in page.text
    assert store.read(UNSUBSCRIBES).num_rows == 0  # a GET (link preview, scanner) changes nothing
    token = link.split("token=", 1)[1]
    done = client.post("/unsubscribe", data={"token": token})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    # RFC 8058 one-click: the mail client POSTs to the link itself
    again = client.post(link, content="List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert again.status_code == 200
    rows = store.read(UNSUBSCRIBES).to_pylist()
    assert [(r["user_id"], r["email"]) for r in rows] == [(42, "kim@example.com")]
    forged = client.post("/unsubscribe", data={"token": token[:-3] + "abc"})
    assert forged.status_code == 400 and "<script" not in client.get("/unsubscribe?token=<script>").text


def test_without_a_handler_there_is_no_unsubscribe_route(tmp_path):
    assert TestClient(create_app(str(tmp_path))).get("/unsubscribe?token=x").status_code == 404
