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


def test_recovery_counts_decisions_and_reports_uplift(tmp_path):
    store = RetargetStore(str(tmp_path))
    client = TestClient(create_app(str(tmp_path)))
    empty = client.get("/api/recovery").json()
    assert empty["abandoned_carts"] == 0 and empty["decisions"] == [] and empty["uplift"] == []
    store.append(DECISIONS, pa.Table.from_pylist(
        [_decision("a", "sent", 10.0, 4), _decision("b", "sent", 5.5, 8), _decision("c", "control", 2.0, 1),
         _decision("d", "not_subscriber", 1.0, 1), _decision("e", "sent", 1.0, 30)], schema=arrow_schema(DECISIONS)))
    store.overwrite("gold/retarget_uplift", pa.Table.from_pylist([
        {"arm": "mailed", "carts": 3, "users": 3, "converted_carts": 2, "conversion_rate": 2 / 3, "revenue_7d": 30.0,
         "revenue_per_cart": 10.0, "uplift_pp": 66.7, "incremental_revenue": 30.0, "window_complete_carts": 3,
         "as_of": T0, "computed_at": T0},
        {"arm": "control", "carts": 1, "users": 1, "converted_carts": 0, "conversion_rate": 0.0, "revenue_7d": 0.0,
         "revenue_per_cart": 0.0, "uplift_pp": None, "incremental_revenue": None, "window_complete_carts": 1,
         "as_of": T0, "computed_at": T0}], schema=arrow_schema("gold/retarget_uplift")))
    r = client.get("/api/recovery").json()
    assert r["abandoned_carts"] == 5 and r["emails_sent"] == 3
    assert r["decisions"][0] == {"decision": "sent", "carts": 3, "cart_value": 16.5}
    assert r["median_seconds_expiry_to_send"] == 8.0
    assert r["recent"][0]["decision"] == "sent" and r["recent"][0]["seconds_after_expiry"] == 30.0
    assert {u["arm"]: u["converted_carts"] for u in r["uplift"]} == {"mailed": 2, "control": 0}
    assert "/api/recovery" in client.get("/openapi.json").json()["paths"]


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
