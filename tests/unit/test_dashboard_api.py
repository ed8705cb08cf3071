"""The dashboard's JSON API over small Delta tables written with deltalake (no Spark, no server)."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from jobs.serving.dashboard import main as dashboard_main
from lib.dashboard import create_app
from tests.dashboard_data import (
    QUALITY_BATCHES,
    QUARANTINE_EVENTS,
    REVENUE_PER_MINUTE,
    GoldSales,
    naive,
    quality_batch,
    quarantined,
    write_table,
)

NOW = datetime(2024, 5, 1, 12, 30, 20, tzinfo=UTC)
HOSTILE = "<img src=x onerror=alert(1)>"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

API_PATHS = {
    "/api/health", "/api/sales/summary", "/api/sales/revenue_per_minute", "/api/sales/top_products",
    "/api/sales/products", "/api/sales/products/{product_id}", "/api/quality", "/api/quarantine/recent",
    "/api/recovery", "/api/offers/{code}",
    "/api/demand/outlook", "/api/customers/segments",
}


def at(hh: int, mm: int, ss: int = 0, day: int = 1) -> datetime:
    """A time on 2024-05-(day) UTC; day=0 is the day before."""
    return datetime(2024, 5, 1, hh, mm, ss, tzinfo=UTC) + timedelta(days=day - 1)


def client_for(lake, now: datetime = NOW, **kwargs) -> TestClient:
    return TestClient(create_app(str(lake), clock=lambda: now, **kwargs))


def fill_sales(g: GoldSales) -> GoldSales:
    g.add(101, at(12, 29, 10), 2, 20.0, "runail", "appliances.environment.vacuum")
    g.add(101, at(12, 29, 40), 1, 10.0, "runail", "appliances.environment.vacuum")
    g.add(101, at(12, 10), 1, 5.0, "runail", "appliances.environment.vacuum")
    g.add(101, at(10, 0), 1, 7.0, "runail", "appliances.environment.vacuum")  # today, outside the last hour
    g.add(202, at(12, 30, 5), 3, 45.0, "Irisk", None)
    g.add(303, at(12, 25), 1, 99.99, HOSTILE, "<b>bold</b>")
    g.add(404, at(23, 59, day=0), 5, 50.0, None, None)  # yesterday only
    return g


@pytest.fixture
def lake(tmp_path):
    return tmp_path / "lake"


@pytest.fixture
def sales(lake):
    g = fill_sales(GoldSales(lake))
    g.flush(NOW)
    return g


@pytest.fixture
def client(lake, sales):
    return client_for(lake)


def by_minute(points):
    return {p["window_start"]: p for p in points}


# -- fresh lake ---------------------------------------------------------------------------------------------------
def test_empty_lake_gives_empty_data_not_errors(lake):
    c = client_for(lake)
    health = c.get("/api/health").json()
    assert health["ok"] is True
    assert {t["table"] for t in health["tables"]} >= {"gold/sales_per_minute", "gold/top_products", "ops/quality_batches"}
    assert all(t["exists"] is False and t["version"] is None for t in health["tables"])

    s = c.get("/api/sales/summary").json()
    assert (s["revenue"], s["units"], s["orders"], s["products"]) == (0, 0, 0, 0)
    assert s["last_sale_minute"] is None and s["updated_at"] is None and s["pipeline_at"] is None
    r = c.get("/api/sales/revenue_per_minute?minutes=5").json()
    assert len(r["points"]) == 5 and all(p["revenue"] == 0 for p in r["points"])
    assert r["last_sale_minute"] is None
    assert c.get("/api/sales/top_products").json()["products"] == []
    assert c.get("/api/sales/top_products?minutes=30").json()["products"] == []
    assert c.get("/api/sales/products?query=1").json()["products"] == []
    assert c.get("/api/quality").json() == {"batches": [], "totals": {"batches": 0, "read": 0, "valid": 0,
                                                                      "quarantined": 0, "duplicates": 0},
                                            "by_rule": [], "last_processed_at": None}
    assert c.get("/api/quarantine/recent").json() == {"messages": []}
    assert c.get("/api/sales/products/101").status_code == 404
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_tables_created_after_start_are_picked_up(lake):
    c = client_for(lake)
    assert c.get("/api/sales/top_products").json()["products"] == []
    fill_sales(GoldSales(lake)).flush(NOW)
    assert [p["product_id"] for p in c.get("/api/sales/top_products").json()["products"]] == [303, 202, 101]
    sales_tables = {"gold/sales_per_minute", "gold/sales_daily", "gold/revenue_per_minute", "gold/top_products"}
    health = {t["table"]: t["exists"] for t in c.get("/api/health").json()["tables"]}
    assert sales_tables <= health.keys() and all(health[t] for t in sales_tables)


# -- sales --------------------------------------------------------------------------------------------------------
def test_revenue_per_minute_is_a_zero_filled_series_oldest_first(client):
    r = client.get("/api/sales/revenue_per_minute?minutes=60")
    assert r.status_code == 200
    body = r.json()
    assert body["minutes"] == 60
    assert body["start"] == "2024-05-01T11:31:00Z" and body["end"] == "2024-05-01T12:31:00Z"
    points = body["points"]
    assert len(points) == 60
    assert [p["window_start"] for p in points] == sorted(p["window_start"] for p in points)
    m = by_minute(points)
    assert m["2024-05-01T12:29:00Z"] == {"window_start": "2024-05-01T12:29:00Z", "units": 3, "revenue": 30.0, "orders": 2}
    assert m["2024-05-01T12:30:00Z"]["revenue"] == 45.0
    assert m["2024-05-01T12:25:00Z"]["revenue"] == 99.99
    assert m["2024-05-01T12:10:00Z"]["revenue"] == 5.0
    assert m["2024-05-01T12:00:00Z"] == {"window_start": "2024-05-01T12:00:00Z", "units": 0, "revenue": 0.0, "orders": 0}
    assert body["totals"] == {"units": 8, "revenue": 179.99, "orders": 5}
    assert body["last_sale_minute"] == "2024-05-01T12:30:00Z"
    assert ISO_Z.match(body["updated_at"])


def test_revenue_per_minute_window_and_until(client):
    short = client.get("/api/sales/revenue_per_minute?minutes=2").json()
    assert [p["revenue"] for p in short["points"]] == [30.0, 45.0]
    hist = client.get("/api/sales/revenue_per_minute", params={"minutes": 3, "until": "2024-05-01T10:01:30Z"}).json()
    assert hist["end"] == "2024-05-01T10:02:00Z"
    assert [p["revenue"] for p in hist["points"]] == [0.0, 7.0, 0.0]


@pytest.mark.parametrize("query", ["minutes=0", "minutes=1441", "minutes=abc", "until=yesterday"])
def test_revenue_per_minute_rejects_bad_params(client, query):
    r = client.get(f"/api/sales/revenue_per_minute?{query}")
    assert r.status_code == 422
    assert r.headers["cache-control"] == "no-store"


def test_summary_gives_today_and_freshness(client):
    s = client.get("/api/sales/summary").json()
    assert s["date"] == "2024-05-01"
    assert (s["units"], s["revenue"], s["orders"], s["products"]) == (9, 186.99, 6, 3)
    assert s["last_sale_minute"] == "2024-05-01T12:30:00Z"
    assert s["updated_at"].startswith("2024-05-01T12:30:20")
    assert s["server_time"] == "2024-05-01T12:30:20Z"


def test_top_products_from_the_gold_ranking(client):
    body = client.get("/api/sales/top_products").json()
    assert body["source"] == "gold/top_products"
    assert body["window_minutes"] == 60
    assert body["as_of"] == "2024-05-01T12:30:20Z"
    assert [(p["rank"], p["product_id"], p["revenue"]) for p in body["products"]] == [
        (1, 303, 99.99), (2, 202, 45.0), (3, 101, 35.0)]
    assert body["products"][2] == {"rank": 3, "product_id": 101, "brand": "runail",
                                   "category_code": "appliances.environment.vacuum", "units": 4, "revenue": 35.0}
    assert [p["product_id"] for p in client.get("/api/sales/top_products?limit=2").json()["products"]] == [303, 202]


def test_top_products_over_any_window_from_sales_per_minute(client):
    body = client.get("/api/sales/top_products?minutes=5").json()
    assert body["source"] == "gold/sales_per_minute" and body["window_minutes"] == 5
    assert [(p["rank"], p["product_id"], p["units"], p["revenue"]) for p in body["products"]] == [
        (1, 202, 3, 45.0), (2, 101, 3, 30.0)]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "minutes=0", "minutes=10081"])
def test_top_products_bounds(client, query):
    assert client.get(f"/api/sales/top_products?{query}").status_code == 422


def test_hostile_brand_is_returned_as_plain_data(client):
    top = client.get("/api/sales/top_products").json()["products"][0]
    assert top["brand"] == HOSTILE and top["category_code"] == "<b>bold</b>"
    assert client.get("/api/sales/products", params={"query": "<img"}).json()["products"][0]["brand"] == HOSTILE
    assert client.get("/api/sales/top_products").headers["content-type"].startswith("application/json")


def test_product_search_by_brand_and_id_prefix(client):
    def ids(query, **extra):
        r = client.get("/api/sales/products", params={"query": query, **extra})
        assert r.status_code == 200
        return [p["product_id"] for p in r.json()["products"]]

    assert ids("irisk") == [202]  # case-insensitive
    assert ids("IRI") == [202]
    assert ids("10") == [101]
    assert ids("runail") == [101]
    assert ids("vacuum") == [101]  # category
    assert ids("zzz") == []
    assert ids("0") == []  # no id starts with 0
    assert ids("4") == [404]
    assert len(ids("r", limit=1)) == 1
    match = client.get("/api/sales/products", params={"query": "101"}).json()["products"][0]
    assert match == {"product_id": 101, "brand": "runail", "category_code": "appliances.environment.vacuum",
                     "units": 5, "revenue": 42.0, "orders": 4, "last_sale_date": "2024-05-01",
                     "last_sale_minute": "2024-05-01T12:29:00Z"}


def test_exact_id_ranks_before_prefix_matches(lake):
    g = GoldSales(lake)
    g.add(12, at(12, 0), 1, 1.0, "a").add(123, at(12, 0), 1, 500.0, "b").add(1234, at(12, 0), 1, 900.0, "c")
    g.flush(NOW)
    c = client_for(lake)
    assert [p["product_id"] for p in c.get("/api/sales/products?query=123").json()["products"]] == [123, 1234]
    assert [p["product_id"] for p in c.get("/api/sales/products?query=12").json()["products"]] == [12, 1234, 123]


@pytest.mark.parametrize("query", ["query=", "", "query=x&limit=0", "query=x&limit=101", f"query={'x' * 101}"])
def test_product_search_bounds(client, query):
    assert client.get(f"/api/sales/products?{query}").status_code == 422


def test_product_view_series_and_today(client):
    body = client.get("/api/sales/products/101?minutes=60").json()
    assert body["product_id"] == 101 and body["brand"] == "runail"
    assert body["category_code"] == "appliances.environment.vacuum"
    assert len(body["points"]) == 60
    m = by_minute(body["points"])
    assert m["2024-05-01T12:29:00Z"] == {"window_start": "2024-05-01T12:29:00Z", "units": 3, "revenue": 30.0, "orders": 2}
    assert m["2024-05-01T12:10:00Z"]["units"] == 1
    assert body["totals"] == {"units": 4, "revenue": 35.0, "orders": 3}
    assert body["today"] == {"units": 5, "revenue": 42.0, "orders": 4, "date": "2024-05-01"}
    assert body["last_sale_date"] == "2024-05-01"
    assert body["last_sale_minute"] == "2024-05-01T12:29:00Z"


def test_product_sold_only_yesterday_has_a_view_with_zeros(client):
    body = client.get("/api/sales/products/404").json()
    assert body["totals"]["units"] == 0 and body["today"]["units"] == 0
    assert body["last_sale_date"] == "2024-04-30"


def test_unknown_product_is_a_json_404(client):
    r = client.get("/api/sales/products/999")
    assert r.status_code == 404
    assert r.json() == {"detail": "product 999 has no sales"}
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/api/sales/products/-1", "/api/sales/products/abc",
                                  "/api/sales/products/101?minutes=0", "/api/sales/products/101?minutes=1441"])
def test_product_view_bounds(client, path):
    assert client.get(path).status_code == 422


def test_upserts_appended_as_new_rows_count_once_latest_wins(lake):
    rows = [
        {"window_start": at(12, 29), "units": 1, "revenue": 10.0, "orders": 1, "updated_at": at(12, 29, 30)},
        {"window_start": at(12, 29), "units": 3, "revenue": 30.0, "orders": 2, "updated_at": at(12, 30, 1)},
    ]
    for r in rows:  # two commits, as an append-mode writer would leave them
        write_table(lake, "gold", "revenue_per_minute", REVENUE_PER_MINUTE, [r])
    points = by_minute(client_for(lake).get("/api/sales/revenue_per_minute?minutes=5").json()["points"])
    assert points["2024-05-01T12:29:00Z"]["revenue"] == 30.0


def test_naive_timestamps_read_as_utc(lake):
    rows = [{"window_start": at(12, 29), "units": 2, "revenue": 12.5, "orders": 1, "updated_at": at(12, 30)}]
    write_table(lake, "gold", "revenue_per_minute", naive(REVENUE_PER_MINUTE), rows)
    body = client_for(lake).get("/api/sales/revenue_per_minute?minutes=5").json()
    assert by_minute(body["points"])["2024-05-01T12:29:00Z"]["revenue"] == 12.5
    assert body["updated_at"] == "2024-05-01T12:30:00Z"
    assert body["last_sale_minute"] == "2024-05-01T12:29:00Z"


def test_results_are_cached_per_delta_version(lake, sales):
    app = create_app(str(lake), clock=lambda: NOW)
    c = TestClient(app)
    reader = app.state.reader
    first = c.get("/api/sales/revenue_per_minute").json()
    scans = reader.scans
    assert c.get("/api/sales/revenue_per_minute").json() == first
    assert reader.scans == scans  # same version: answered from memory
    sales.add(202, at(12, 30, 15), 1, 15.0, "Irisk").flush(NOW)
    again = c.get("/api/sales/revenue_per_minute").json()
    assert reader.scans > scans
    assert by_minute(again["points"])["2024-05-01T12:30:00Z"]["revenue"] == 60.0


# -- quality ------------------------------------------------------------------------------------------------------
@pytest.fixture
def quality_client(lake):
    t0 = at(12, 0)
    batches = [quality_batch(b, t0 + timedelta(seconds=2 * b), read=100, valid=90, quarantined=6, duplicates=4,
                             by_rule={"negative_price": 4, "missing_product_id": 2}) for b in range(1, 5)]
    batches.append(quality_batch(5, t0 + timedelta(seconds=10), read=10, valid=10, quarantined=0, duplicates=0))
    write_table(lake, "ops", "quality_batches", QUALITY_BATCHES, batches[:3])
    write_table(lake, "ops", "quality_batches", QUALITY_BATCHES, batches[3:])
    # batch 3 logged again after a retry: counted once, the later record wins
    retry = quality_batch(3, t0 + timedelta(seconds=7), read=100, valid=89, quarantined=7, duplicates=4,
                          by_rule={"negative_price": 5, "missing_product_id": 1, "bad_event_type": 1})
    write_table(lake, "ops", "quality_batches", QUALITY_BATCHES, [retry])
    return client_for(lake)


def test_quality_totals_per_rule_and_recent_batches(quality_client):
    q = quality_client.get("/api/quality").json()
    assert [b["batch_id"] for b in q["batches"]] == [5, 4, 3, 2, 1]
    assert q["totals"] == {"batches": 5, "read": 410, "valid": 369, "quarantined": 25, "duplicates": 16}
    assert q["by_rule"] == [{"rule": "negative_price", "count": 17}, {"rule": "missing_product_id", "count": 7},
                            {"rule": "bad_event_type", "count": 1}]
    b3 = next(b for b in q["batches"] if b["batch_id"] == 3)
    assert b3["valid"] == 89 and b3["quarantined_by_rule"] == {"negative_price": 5, "missing_product_id": 1,
                                                               "bad_event_type": 1}
    assert q["batches"][0]["quarantined_by_rule"] == {}
    assert q["last_processed_at"] == "2024-05-01T12:00:10Z"
    assert ISO_Z.match(q["batches"][0]["min_event_time"])
    assert [b["batch_id"] for b in quality_client.get("/api/quality?batches=2").json()["batches"]] == [5, 4]


@pytest.mark.parametrize("query", ["batches=0", "batches=1001"])
def test_quality_bounds(quality_client, query):
    assert quality_client.get(f"/api/quality?{query}").status_code == 422


def test_summary_freshness_includes_the_pipeline_heartbeat(quality_client):
    assert quality_client.get("/api/sales/summary").json()["pipeline_at"] == "2024-05-01T12:00:10Z"


def test_quarantine_recent_newest_first_across_files(lake):
    t0 = at(12, 0)
    for part in range(3):  # three commits, three files
        write_table(lake, "quarantine", "events", QUARANTINE_EVENTS, [
            quarantined(part * 10 + i, t0 + timedelta(seconds=part * 10 + i), json.dumps({"price": -i}),
                        ["negative_price"] if i % 2 else ["negative_price", "missing_brand"], batch_id=part)
            for i in range(10)])
    write_table(lake, "quarantine", "events", QUARANTINE_EVENTS, [
        quarantined(99, t0 - timedelta(hours=1), "x" * 5000, ["not_json"])])
    c = client_for(lake)
    msgs = c.get("/api/quarantine/recent?limit=5").json()["messages"]
    assert [m["offset"] for m in msgs] == [29, 28, 27, 26, 25]
    assert msgs[0]["reasons"] == ["negative_price"] and msgs[1]["reasons"] == ["negative_price", "missing_brand"]
    assert msgs[0]["value"] == json.dumps({"price": -9}) and msgs[0]["topic"] == "events"
    assert msgs[0]["quarantined_at"] == "2024-05-01T12:00:29Z"
    assert [m["offset"] for m in c.get("/api/quarantine/recent?limit=12").json()["messages"]] == list(range(29, 17, -1))
    everything = c.get("/api/quarantine/recent?limit=200").json()["messages"]
    assert len(everything) == 31
    oldest = everything[-1]
    assert oldest["offset"] == 99 and oldest["value_truncated"] is True and len(oldest["value"]) == 2000


@pytest.mark.parametrize("query", ["limit=0", "limit=201"])
def test_quarantine_bounds(lake, query):
    assert client_for(lake).get(f"/api/quarantine/recent?{query}").status_code == 422


# -- the app around the API ---------------------------------------------------------------------------------------
def test_openapi_describes_every_endpoint(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert set(spec["paths"]) == API_PATHS
    for path, methods in spec["paths"].items():
        ok = methods["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in ok, path
    assert "404" in spec["paths"]["/api/sales/products/{product_id}"]["get"]["responses"]
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/sales/revenue_per_minute"]["get"]["parameters"]}
    assert params["minutes"]["minimum"] == 1 and params["minutes"]["maximum"] == 1440
    assert {"RevenuePerMinute", "TopProducts", "ProductDetail", "QualityReport", "QuarantineRecent", "Health"} <= set(
        spec["components"]["schemas"])


def test_api_answers_are_never_cached_and_page_has_a_strict_csp(client):
    for path in ["/api/health", "/api/sales/summary", "/api/sales/top_products", "/api/quality",
                 "/api/sales/products/999", "/api/quality?batches=0"]:
        assert client.get(path).headers["cache-control"] == "no-store", path
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"


def test_page_and_assets_are_all_local(client):
    html = client.get("/").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith(("/", "data:")) and not r.startswith("//") for r in refs), refs
    for ref in refs:
        if ref.startswith("/static/"):
            assert client.get(ref).status_code == 200, ref
    chart = client.get("/static/vendor/chart.umd.js")
    assert chart.status_code == 200 and "Chart.js v4" in chart.text[:200]
    for testid in ["top-products", "revenue-chart", "product-search", "freshness", "revenue-today", "quality-totals"]:
        assert f'data-testid="{testid}"' in html
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert not re.search(r'src="(https?:)?//', docs.text)


def test_page_scripts_never_use_innerhtml():
    from lib.dashboard.app import STATIC_DIR

    for js in [STATIC_DIR / "dashboard.js", STATIC_DIR / "docs.js", *sorted((STATIC_DIR / "panels").glob("*.js"))]:
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", js.read_text(), flags=re.S)
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", code), js.name


def test_unreadable_table_is_a_json_503(client, monkeypatch):
    from lib.dashboard import tables

    def broken(*_args, **_kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(tables.LakeReader, "_scan", broken)
    r = client.get("/api/sales/top_products")
    assert r.status_code == 503
    assert "gold/top_products" in r.json()["detail"] and "disk on fire" in r.json()["detail"]


def test_unsubscribe_hook_mounts_the_unsubscribe_routes(lake):
    seen = []

    def handler(token: str) -> bool:
        seen.append(token)
        return token == "good"

    app = create_app(str(lake), unsubscribe_handler=handler)
    assert app.state.unsubscribe_handler is handler
    c = TestClient(app)
    assert c.get("/unsubscribe?token=x").status_code == 200 and seen == []  # the page only asks
    assert c.post("/unsubscribe?token=good").status_code == 200
    assert c.post("/unsubscribe", data={"token": "bad"}).status_code == 400 and seen == ["good", "bad"]
    assert "/unsubscribe" not in c.get("/openapi.json").json()["paths"]  # a page, not part of the JSON API


# -- the command line ---------------------------------------------------------------------------------------------
def test_cli_port_in_use_is_one_line(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert dashboard_main(["--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"127.0.0.1:{port}" in err and "already in use" in err


def test_cli_config_mistake_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("SHOP__LAKE__ROOT", "")
    assert dashboard_main(["--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("config error: lake.root") and "\n" not in err
    monkeypatch.delenv("SHOP__LAKE__ROOT")
    assert dashboard_main(["--env", "nosuchenv"]) == 2
    assert "nosuchenv" in capsys.readouterr().err


def test_cli_rejects_bad_port():
    with pytest.raises(SystemExit) as exc:
        dashboard_main(["--port", "70000"])
    assert exc.value.code == 2


def test_latest_per_key_keeps_the_newest_row_of_every_key():
    import pyarrow as pa

    from lib.dashboard.tables import latest_per_key

    rows = [{"k": (i * 5) % 7, "updated_at": i, "v": i} for i in range(50)]
    rows.append({"k": 3, "updated_at": None, "v": -1})
    out = latest_per_key(pa.Table.from_pylist(rows), ["k"]).to_pylist()
    expected = {}
    for r in rows:
        if r["updated_at"] is not None and r["updated_at"] >= expected.get(r["k"], {"updated_at": -1})["updated_at"]:
            expected[r["k"]] = r
    assert sorted(out, key=lambda r: r["k"]) == sorted(expected.values(), key=lambda r: r["k"])


# -- the reader ---------------------------------------------------------------------------------------------------
def _spoil_files(table_path, which) -> None:
    """Overwrite the data files of the table for which ``which(add action)`` holds with bytes that are
    not parquet: a read that opens one of them fails."""
    from deltalake import DeltaTable

    from lib.delta_io import add_actions

    for f in add_actions(DeltaTable(str(table_path))).to_pylist():
        if which(f):
            (table_path / unquote(f["path"])).write_bytes(b"not parquet")


def test_reader_skips_files_by_statistics(lake):
    from lib.dashboard.tables import REVENUE_PER_MINUTE as REF
    from lib.dashboard.tables import LakeReader, TableReadError

    for hour in (9, 10, 11):  # three commits, one file each
        write_table(lake, "gold", "revenue_per_minute", REVENUE_PER_MINUTE, [
            {"window_start": at(hour, m), "units": 1, "revenue": 1.0, "orders": 1, "updated_at": at(hour, m)}
            for m in range(0, 60, 10)])
    reader = LakeReader(str(lake))
    where = [("window_start", ">=", at(11, 0)), ("window_start", "<", at(11, 30))]
    _spoil_files(lake / "gold" / "revenue_per_minute", lambda f: f["min.window_start"].hour == 9)
    # the 9:00 file is ruled out by its statistics: the reads below do not open it
    assert reader.read(REF, where=where).column("window_start").to_pylist() == [at(11, 0), at(11, 10), at(11, 20)]
    assert reader.read(REF, where=[("window_start", "==", at(10, 20))]).column("window_start").to_pylist() == [
        at(10, 20)]
    with pytest.raises(TableReadError):  # a read without a filter does
        reader.read(REF)


def test_reader_handles_partitioned_tables_and_odd_partition_values(tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    from lib.dashboard.tables import LakeReader, TableRef

    ref = TableRef("gold", "odd")
    odd = "a b%c/d=é"
    table = pa.table({"part": [odd, "x", None], "day": pa.array([at(1, 0).date()] * 3, pa.date32()), "v": [1, 2, 3]})
    write_deltalake(str(tmp_path / "gold" / "odd"), table, partition_by=["part", "day"])
    reader = LakeReader(str(tmp_path))
    got = reader.read(ref, columns=["part", "day", "v"])
    assert sorted(got.to_pylist(), key=lambda r: r["v"]) == [
        {"part": odd, "day": at(1, 0).date(), "v": 1}, {"part": "x", "day": at(1, 0).date(), "v": 2},
        {"part": None, "day": at(1, 0).date(), "v": 3}]
    assert reader.read(ref, columns=["v"], where=[("part", "==", odd)]).column("v").to_pylist() == [1]
    _spoil_files(tmp_path / "gold" / "odd", lambda f: f["partition.part"] != "x")  # partitions ruled out: not opened
    assert reader.read(ref, columns=["v"], where=[("part", "==", "x")]).column("v").to_pylist() == [2]


def test_partitioned_gold_tables_work_end_to_end(lake):
    import shutil

    from deltalake import DeltaTable, write_deltalake

    fill_sales(GoldSales(lake)).flush(NOW)
    daily = DeltaTable(str(lake / "gold" / "sales_daily")).to_pyarrow_table()
    shutil.rmtree(lake / "gold" / "sales_daily")
    write_deltalake(str(lake / "gold" / "sales_daily"), daily, partition_by=["sale_date"])
    c = client_for(lake)
    s = c.get("/api/sales/summary").json()
    assert (s["units"], s["revenue"], s["orders"], s["products"]) == (9, 186.99, 6, 3)
    assert c.get("/api/sales/products/101").json()["today"]["units"] == 5


def test_columns_the_writer_has_not_produced_read_as_empty(lake):
    import pyarrow as pa

    partial = pa.schema([f for f in REVENUE_PER_MINUTE if f.name not in ("orders", "updated_at")])
    write_table(lake, "gold", "revenue_per_minute", partial, [{"window_start": at(12, 29), "units": 2, "revenue": 3.0}])
    body = client_for(lake).get("/api/sales/revenue_per_minute?minutes=2").json()
    assert by_minute(body["points"])["2024-05-01T12:29:00Z"] == {"window_start": "2024-05-01T12:29:00Z", "units": 2,
                                                                 "revenue": 3.0, "orders": 0}
    assert body["updated_at"] is None


def test_a_table_deleted_and_recreated_is_read_afresh(lake):
    import shutil

    g = fill_sales(GoldSales(lake))
    g.flush(NOW)
    g.flush(NOW)  # version 1
    c = client_for(lake)
    assert len(c.get("/api/sales/top_products").json()["products"]) == 3
    shutil.rmtree(lake / "gold" / "top_products")
    assert c.get("/api/sales/top_products").json()["products"] == []
    GoldSales(lake).add(7, at(12, 30), 1, 1.0).flush(NOW, tables=("top_products",))  # version 0 again
    assert [p["product_id"] for p in c.get("/api/sales/top_products").json()["products"]] == [7]


def test_tables_written_by_spark_read_back(spark, tmp_path):
    """Spark writes TIMESTAMP as INT96 and its own statistics: the reader must not care."""
    lake = tmp_path / "spark-lake"
    spark.sql("""
        SELECT CAST(101 AS BIGINT) product_id, TIMESTAMP'2024-05-01 12:29:00' window_start, CAST(3 AS BIGINT) units,
               CAST(30.0 AS DOUBLE) revenue, CAST(2 AS BIGINT) orders, 'runail' brand, CAST(NULL AS STRING) category_code,
               TIMESTAMP'2024-05-01 12:30:01.123456' updated_at
    """).write.format("delta").save(str(lake / "gold" / "sales_per_minute"))
    spark.sql("""
        SELECT TIMESTAMP'2024-05-01 12:29:00' window_start, CAST(3 AS BIGINT) units, CAST(30.0 AS DOUBLE) revenue,
               CAST(2 AS BIGINT) orders, TIMESTAMP'2024-05-01 12:30:01.123456' updated_at
    """).write.format("delta").save(str(lake / "gold" / "revenue_per_minute"))
    spark.sql("""
        SELECT CAST(7 AS BIGINT) batch_id, TIMESTAMP'2024-05-01 12:30:00' processed_at, CAST(10 AS BIGINT) read,
               CAST(8 AS BIGINT) valid, CAST(1 AS BIGINT) quarantined, CAST(1 AS BIGINT) duplicates,
               map('negative_price', CAST(1 AS BIGINT)) quarantined_by_rule,
               TIMESTAMP'2024-05-01 12:29:00' min_event_time, TIMESTAMP'2024-05-01 12:29:59' max_event_time
    """).write.format("delta").save(str(lake / "ops" / "quality_batches"))
    c = client_for(lake)
    body = c.get("/api/sales/revenue_per_minute?minutes=5").json()
    assert by_minute(body["points"])["2024-05-01T12:29:00Z"]["revenue"] == 30.0
    assert body["updated_at"].startswith("2024-05-01T12:30:01.123")
    top = c.get("/api/sales/top_products?minutes=5").json()["products"]
    assert [(p["product_id"], p["units"], p["brand"]) for p in top] == [(101, 3, "runail")]
    q = c.get("/api/quality").json()
    assert q["by_rule"] == [{"rule": "negative_price", "count": 1}]
    assert q["batches"][0]["processed_at"] == "2024-05-01T12:30:00Z"


def test_batches_of_different_writers_with_the_same_number_all_count(lake):
    t0 = at(12, 0)
    write_table(lake, "ops", "quality_batches", QUALITY_BATCHES, [
        quality_batch(1, t0, 10, 10, 0, 0, app_id="stream"),
        quality_batch(1, t0 + timedelta(seconds=1), 5, 4, 1, 0, {"negative_price": 1}, app_id="backfill"),
        quality_batch(1, t0 + timedelta(seconds=2), 10, 9, 1, 0, {"negative_price": 1}, app_id="stream"),  # retry
    ])
    q = client_for(lake).get("/api/quality").json()
    assert q["totals"] == {"batches": 2, "read": 15, "valid": 13, "quarantined": 2, "duplicates": 0}
    assert [b["load_id"] for b in q["batches"]] == ["stream:1", "backfill:1"]


def _spark_ddl_to_arrow(ddl: str):
    """Enough of Spark's DDL for the lake tables (lib/schema.py TABLE_DDL), without a Spark session."""
    import pyarrow as pa

    simple = {"BIGINT": pa.int64(), "INT": pa.int32(), "STRING": pa.string(), "DOUBLE": pa.float64(),
              "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us", tz="UTC")}

    def split(text: str) -> list[str]:
        parts, depth, cur = [], 0, ""
        for ch in text:
            depth += ch == "<"
            depth -= ch == ">"
            if ch == "," and depth == 0:
                parts.append(cur.strip())
                cur = ""
            else:
                cur += ch
        return [*parts, cur.strip()] if cur.strip() else parts

    def typ(t: str):
        t = t.strip().upper()
        if t.startswith("ARRAY<"):
            return pa.list_(typ(t[6:-1]))
        if t.startswith("MAP<"):
            k, v = split(t[4:-1])
            return pa.map_(typ(k), typ(v))
        return simple[t]

    return pa.schema([(name, typ(t)) for name, t in (c.split(" ", 1) for c in split(ddl))])


def _same_type(a, b) -> bool:
    import pyarrow as pa

    if pa.types.is_list(a) and pa.types.is_list(b):
        return _same_type(a.value_type, b.value_type)
    if pa.types.is_map(a) and pa.types.is_map(b):
        return _same_type(a.key_type, b.key_type) and _same_type(a.item_type, b.item_type)
    return a == b


def test_dashboard_contract_matches_the_writer():
    """lib/schema.py (what the streaming app writes), the dashboard's contract and the test tables agree."""
    from lib.dashboard.tables import SCHEMAS
    from lib.schema import TABLE_DDL
    from tests import dashboard_data

    optional = {"quarantine/events": {"batch_id"}}  # older layout, read if present
    for ref, contract in SCHEMAS.items():
        writer = _spark_ddl_to_arrow(TABLE_DDL[str(ref)])
        missing = set(contract.names) - set(writer.names) - optional.get(str(ref), set())
        assert not missing, f"{ref}: the dashboard reads {missing}, the writer does not write them"
        for f in contract:
            if f.name in writer.names:
                assert _same_type(f.type, writer.field(f.name).type), f"{ref}.{f.name}: {f.type} vs {writer.field(f.name).type}"
        test_schema = getattr(dashboard_data, ref.name.upper() if ref.layer != "quarantine" else "QUARANTINE_EVENTS",
                              None)
        if test_schema is None:  # the cart-recovery tables: their tests write them with the writers' own code
            continue
        assert [(f.name, str(f.type)) for f in test_schema if f.name in writer.names] == [
            (f.name, str(f.type)) for f in writer if f.name in test_schema.names], ref
        assert set(writer.names) <= set(test_schema.names), f"{ref}: test tables lack {set(writer.names) - set(test_schema.names)}"
