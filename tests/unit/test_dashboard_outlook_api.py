"""Dashboard panels over the batch score tables: demand outlook and customer value segments
(tables written with deltalake in the score tables' contract; no Spark, no server)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from lib.dashboard import create_app
from lib.dashboard.tables import BATCH_SCHEMAS, CUSTOMER_SEGMENTS, DEMAND_FORECAST

SCORED = datetime(2020, 3, 1, 2, 30, tzinfo=UTC)


def client(lake) -> TestClient:
    return TestClient(create_app(str(lake), clock=lambda: SCORED))


def forecast_rows():
    common = {"as_of_date": date(2020, 2, 29), "horizon_days": 7, "demand_model": "shop_demand",
              "demand_model_version": 3, "sale_model": "shop_sale_probability", "sale_model_version": 2,
              "scored_at": SCORED}
    return [
        {"product_id": 7, "brand": "runail", "category_code": None, "units_last_7d": 30, "forecast_units": 31.5,
         "p_sale_tomorrow": 0.97, "forecast_rank": 1, **common},
        {"product_id": 9, "brand": None, "category_code": "accessories.bag", "units_last_7d": 4, "forecast_units": 2.25,
         "p_sale_tomorrow": 0.31, "forecast_rank": 3, **common},
        {"product_id": 8, "brand": "<b>x</b>", "category_code": None, "units_last_7d": 10, "forecast_units": 12.0,
         "p_sale_tomorrow": 0.8, "forecast_rank": 2, **common},
    ]


def segment_rows():
    common = {"horizon_days": 90, "as_of": datetime(2020, 3, 1, tzinfo=UTC), "model": "shop_clv", "model_version": 5,
              "scored_at": SCORED}
    return [
        {"value_segment": "low", "customers": 60, "predicted_value": 300.0, "share_of_predicted_value": 0.1,
         "avg_clv": 5.0, "avg_total_spend": 20.0, **common},
        {"value_segment": "high", "customers": 10, "predicted_value": 2100.0, "share_of_predicted_value": 0.7,
         "avg_clv": 210.0, "avg_total_spend": 400.0, **common},
        {"value_segment": "medium", "customers": 30, "predicted_value": 600.0, "share_of_predicted_value": 0.2,
         "avg_clv": 20.0, "avg_total_spend": 80.0, **common},
    ]


def write(lake, ref, rows):
    write_deltalake(str(lake / ref.layer / ref.name), pa.Table.from_pylist(rows, schema=BATCH_SCHEMAS[ref]))


def test_empty_lake_gives_empty_panels(tmp_path):
    c = client(tmp_path)
    assert c.get("/api/demand/outlook").json()["products"] == []
    assert c.get("/api/customers/segments").json() == {
        "as_of": None, "horizon_days": None, "model": None, "model_version": None, "scored_at": None, "segments": []}


def test_demand_outlook_ranks_products_with_model_versions(tmp_path):
    write(tmp_path, DEMAND_FORECAST, forecast_rows())
    o = client(tmp_path).get("/api/demand/outlook", params={"limit": 2}).json()
    assert [p["product_id"] for p in o["products"]] == [7, 8]
    assert o["products"][0] == {"rank": 1, "product_id": 7, "brand": "runail", "category_code": None,
                                "units_last_7d": 30, "forecast_units": 31.5, "p_sale_tomorrow": 0.97}
    assert (o["as_of_date"], o["horizon_days"], o["demand_model_version"], o["sale_model_version"]) == (
        "2020-02-29", 7, 3, 2)
    assert o["products"][1]["brand"] == "<b>x</b>"  # data, not markup: the page sets textContent
    assert client(tmp_path).get("/api/demand/outlook", params={"limit": 0}).status_code == 422


def test_customer_segments_in_value_order(tmp_path):
    write(tmp_path, CUSTOMER_SEGMENTS, segment_rows())
    s = client(tmp_path).get("/api/customers/segments").json()
    assert [g["value_segment"] for g in s["segments"]] == ["high", "medium", "low"]
    assert s["segments"][0] == {"value_segment": "high", "customers": 10, "predicted_value": 2100.0,
                                "share_of_predicted_value": 0.7, "avg_clv": 210.0, "avg_total_spend": 400.0}
    assert (s["model"], s["model_version"], s["horizon_days"]) == ("shop_clv", 5, 90)


def test_batch_contract_matches_the_score_writer(spark):
    """lib/schema.py SCORE_TABLE_DDL (what the score job writes) and the dashboard's contract agree."""
    from pyspark.sql.types import DataType

    spark_to_arrow = {"bigint": pa.int64(), "int": pa.int32(), "double": pa.float64(), "string": pa.string(),
                      "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC")}
    from lib.schema import SCORE_TABLE_DDL

    for ref, contract in BATCH_SCHEMAS.items():
        writer = DataType.fromDDL(SCORE_TABLE_DDL[str(ref)])
        types = {f.name: spark_to_arrow[f.dataType.simpleString()] for f in writer.fields}
        for f in contract:
            assert types.get(f.name) == f.type, f"{ref}.{f.name}"
