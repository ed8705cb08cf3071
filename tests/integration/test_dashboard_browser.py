"""The dashboard in a real headless Chromium: the real server (``python -m jobs.serving.dashboard``) over a
tmp lake, gold tables written with deltalake; the page must show them, update by itself when new
sales land, and render hostile text as text."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser import chromium_missing, dashboard_server, open_page
from tests.dashboard_data import (
    QUALITY_BATCHES,
    QUARANTINE_EVENTS,
    GoldSales,
    quality_batch,
    quarantined,
    write_table,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or ""),
]

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_MESSAGE = '{"brand": "<script>alert(2)</script>", "price": -1}'


def total(page, testid: str) -> float:
    return float(page.get_by_test_id(testid).get_attribute("data-total-revenue") or 0)


def wait_total(page, testid: str, expected: float, timeout_ms: int = 10_000) -> None:
    page.wait_for_function(
        "([id, want]) => Math.abs(Number(document.querySelector(`[data-testid=\"${id}\"]`).dataset.totalRevenue) - want) < 0.001",
        arg=[testid, expected], timeout=timeout_ms)


def row_ids(page) -> list[str]:
    return page.get_by_test_id("top-products").locator("tbody tr").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-product-id'))")


def test_dashboard_page_shows_sales_and_updates_by_itself(tmp_path):
    lake = tmp_path / "lake"
    now = datetime.now(UTC)
    gold = GoldSales(lake)
    gold.add(1001, now - timedelta(minutes=3), 2, 40.0, "runail", "appliances.environment.vacuum")
    gold.add(1002, now - timedelta(minutes=2), 1, 15.5, HOSTILE, "<b>bold</b>")
    gold.add(1003, now - timedelta(minutes=1), 3, 9.0, "irisk", None)
    gold.flush(now)
    write_table(lake, "ops", "quality_batches", QUALITY_BATCHES, [
        quality_batch(b, now - timedelta(seconds=10 - b), read=100, valid=95, quarantined=3, duplicates=2,
                      by_rule={"negative_price": 3}) for b in range(1, 6)])
    write_table(lake, "quarantine", "events", QUARANTINE_EVENTS, [
        quarantined(7, now - timedelta(seconds=5), HOSTILE_MESSAGE, ["negative_price"])])

    with dashboard_server(lake, log=tmp_path / "dashboard.log") as url, open_page(url + "/") as page:
        # -- what is in the lake is on the page
        page.get_by_test_id("top-products").locator('tr[data-product-id="1001"]').wait_for()
        assert row_ids(page) == ["1001", "1002", "1003"]
        wait_total(page, "revenue-chart", 64.5)
        chart_sum = page.evaluate(
            "() => Chart.getChart(document.getElementById('revenue-canvas')).data.datasets[0].data.reduce((a, b) => a + b, 0)")
        assert chart_sum == pytest.approx(64.5)
        assert int(page.get_by_test_id("revenue-chart").get_attribute("data-nonzero-points")) == 3
        today = sum(s.revenue for s in gold.sales if s.at.date() == now.date())
        page.wait_for_function(
            "want => Math.abs(Number(document.querySelector('[data-testid=\"revenue-today\"]').dataset.value) - want) < 0.001",
            arg=today)
        assert page.get_by_test_id("freshness").text_content().startswith("Updated ")
        page.get_by_test_id("quality-rules").locator('tr[data-rule="negative_price"]').wait_for()
        assert page.get_by_test_id("quality-read").get_attribute("data-value") == "500"

        # -- hostile text stays text: no element injected, no dialog
        brand_cell = page.get_by_test_id("top-products").locator('tr[data-product-id="1002"] [data-testid="brand"]')
        assert brand_cell.text_content() == HOSTILE
        page.get_by_test_id("quarantine-recent").locator('tr[data-offset="7"]').wait_for()
        assert HOSTILE_MESSAGE in page.get_by_test_id("quarantine-recent").text_content()
        assert page.locator("img").count() == 0
        assert page.locator("main b").count() == 0
        assert page.locator("script:not([src])").count() == 0

        # -- a new sale lands: the page follows without being reloaded
        page.evaluate("() => { window.__sameDocument = 'yes'; }")
        started = time.monotonic()
        gold.add(1004, datetime.now(UTC), 5, 500.0, "kapous", "beauty.nail")
        gold.flush(datetime.now(UTC))
        page.get_by_test_id("top-products").locator('tr[data-product-id="1004"]').wait_for(timeout=10_000)
        wait_total(page, "revenue-chart", 564.5)
        elapsed = time.monotonic() - started
        assert row_ids(page)[0] == "1004"
        assert page.evaluate("() => window.__sameDocument") == "yes"  # no reload happened
        assert elapsed < 10, f"page took {elapsed:.1f} s to show the new sale"

        # -- product search: brand -> product view with today's numbers and its chart
        page.get_by_test_id("product-search").fill("irisk")
        page.locator('[data-testid="search-result"][data-product-id="1003"]').click()
        page.get_by_test_id("product-title").filter(has_text="Product 1003").wait_for()
        page.wait_for_function("() => document.querySelector('[data-testid=\"product-units-today\"]').dataset.value === '3'")
        wait_total(page, "product-chart", 9.0)
        # an id typed in full opens that product straight away
        page.get_by_test_id("product-search").fill("1002")
        page.get_by_test_id("product-title").filter(has_text="Product 1002").wait_for()
        assert HOSTILE in page.get_by_test_id("product-subtitle").text_content()
        assert page.locator("img").count() == 0

        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert page.dialogs == []
        assert page.errors == []
        assert page.console_errors == []  # CSP violations and failed requests would show up here


def test_dashboard_page_on_a_fresh_lake_says_no_data_yet(tmp_path):
    with dashboard_server(tmp_path / "empty-lake") as url, open_page(url + "/?refresh=1") as page:
        page.wait_for_function("() => Number(document.body.dataset.refreshCount || 0) >= 2")
        assert page.get_by_test_id("top-products-empty").is_visible()
        assert page.get_by_test_id("revenue-empty").is_visible()
        assert page.get_by_test_id("quality-empty").is_visible()
        assert page.get_by_test_id("recovery-empty").is_visible()
        assert page.get_by_test_id("freshness").text_content() == "No data yet"
        assert page.get_by_test_id("connection-status").is_hidden()
        assert page.get_by_test_id("refresh-seconds").text_content() == "1"
        # the API's endpoint list is served locally, built from /openapi.json
        page.goto(url + "/docs")
        page.locator('[data-testid="endpoint"][data-path="/api/sales/top_products"]').wait_for()
        paths = json.loads(urllib.request.urlopen(url + "/openapi.json", timeout=10).read())["paths"]
        assert page.get_by_test_id("endpoint").count() == len(paths) >= 12
        assert page.locator('[data-testid="endpoint"][data-path="/api/offers/{code}"]').count() == 1
        assert page.errors == [] and page.console_errors == []


def test_replayed_history_is_one_click_away(tmp_path):
    lake = tmp_path / "lake"
    old = datetime(2019, 10, 1, 9, 30, tzinfo=UTC)  # e.g. the real dataset replayed without shifting times
    gold = GoldSales(lake)
    gold.add(5802432, old - timedelta(minutes=5), 2, 12.5, "runail").add(5802433, old, 1, 7.0, "irisk")
    gold.flush(old)
    with dashboard_server(lake) as url, open_page(url + "/") as page:
        jump = page.get_by_test_id("revenue-jump")
        jump.wait_for(state="visible")
        assert page.get_by_test_id("history-bar").is_hidden()
        jump.click()
        wait_total(page, "revenue-chart", 19.5)
        assert page.get_by_test_id("history-bar").is_visible()
        assert "until=" in page.url
        # the gold ranking is anchored at the newest minute with sales: it shows without any click
        assert row_ids(page) == ["5802432", "5802433"]
        page.get_by_test_id("history-live").click()
        wait_total(page, "revenue-chart", 0.0)
        assert page.get_by_test_id("history-bar").is_hidden() and "until=" not in page.url
        assert page.errors == [] and page.console_errors == []


def test_recovery_panel_shows_the_uplift_interval_p_value_and_verdict(tmp_path):
    from lib.schema import arrow_schema

    lake, at = tmp_path / "lake", datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    arm = {"carts": 0, "users": 0, "units": 0, "converted_units": 0, "conversion_rate": None, "revenue": 0.0,
           "revenue_per_unit": None, "window_complete_units": 0, "window_days": 7, "as_of": at, "computed_at": at}
    write_table(lake, "gold", "retarget_uplift", arrow_schema("gold/retarget_uplift"), [
        {**arm, "arm": "mailed", "carts": 950, "users": 800, "units": 900, "converted_units": 117,
         "conversion_rate": 0.13, "revenue": 5400.0, "revenue_per_unit": 6.0, "uplift_pp": 2.0,
         "uplift_ci_low_pp": -4.1, "uplift_ci_high_pp": 7.3, "p_value": 0.4321, "mde_pp": 9.6,
         "revenue_per_unit_diff": 1.2, "revenue_per_unit_diff_ci_low": -2.0, "revenue_per_unit_diff_ci_high": 4.5,
         "incremental_revenue": 1080.0, "verdict": "not yet significant"},
        {**arm, "arm": "control", "carts": 110, "users": 100, "units": 100, "converted_units": 11,
         "conversion_rate": 0.11, "revenue": 480.0, "revenue_per_unit": 4.8}])
    with dashboard_server(lake) as url, open_page(url + "/") as page:
        page.locator('[data-testid="recovery-uplift-verdict"][data-verdict="not yet significant"]').wait_for()
        assert page.get_by_test_id("recovery-uplift-verdict").text_content() == "Verdict: not yet significant"
        note = page.get_by_test_id("recovery-uplift-note").text_content()
        assert "Mailed − control: +2.0 pp (95 % CI −4.1 to +7.3 pp), p = 0.432" in note
        assert "detectable from 9.6 pp" in note
        units = page.locator('[data-testid="recovery-uplift-row"]').evaluate_all(
            "rows => rows.map(r => [r.dataset.arm, r.dataset.units])")
        assert units == [["mailed", "900"], ["control", "100"]]
        assert page.errors == [] and page.console_errors == []
