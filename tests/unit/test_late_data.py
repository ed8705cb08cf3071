"""Late data in bounded memory (issue #13.5): a micro-batch holding valid events dated weeks or a year
back must not make the driver load silver since then. Through the lakehouse's live-stream path
(``process_collected``) on a silver table far larger than the in-memory index: old duplicates are
still removed, old purchases still counted once, and what the driver holds or reads stays bounded."""

from __future__ import annotations

import datetime as dt
import json

from pyspark.sql import functions as F

from lib import lakehouse
from tests import gold_oracle as gold

BRONZE_DDL = ("key string, value string, topic string, partition int, offset long, "
              "kafka_timestamp timestamp, ingest_time timestamp")
NOW = dt.datetime(2026, 11, 27, 12, 0, 0)


def event(t: dt.datetime, kind: str, product: int, user: int, session: str, price: float = 9.99) -> str:
    return json.dumps({"event_time": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "event_type": kind, "product_id": product,
                       "category_id": 1, "category_code": None, "brand": "b", "price": price,
                       "user_id": user, "user_session": session})


def bronze(spark, values: list[tuple[str, dt.datetime]], first_offset: int):
    rows = [(None, v, "events", 0, first_offset + i, ts, ts) for i, (v, ts) in enumerate(values)]
    return spark.createDataFrame(rows, BRONZE_DDL)


def test_a_year_old_event_costs_its_own_minutes_not_all_of_silver(spark, cfg, tmp_path, empty_lake):
    lake_cfg = cfg.model_copy(update={"lake": cfg.lake.model_copy(update={"root": str(empty_lake(tmp_path / "lake"))})})
    lake = lakehouse.Lakehouse(lake_cfg)
    # silver: 6,000 events, one every 4 minutes over the 16 days before NOW (broker time = event time)
    history = []
    for i in range(6_000):
        t = NOW - dt.timedelta(minutes=4 * (6_000 - i))
        kind = "purchase" if i % 10 == 0 else "view"
        history.append((event(t, kind, 100 + i % 50, 1 + i % 700, f"s{i % 900}"), t))
    old_dup = history[1_500]  # ~12 days back
    old_buy = next(h for h in history[2_000:] if '"purchase"' in h[0])
    lake.process_collected(lake.judge(bronze(spark, history, 0)), 0, "test-app")
    assert lake.recent.loads == 1
    window = len(lake.recent)
    assert window <= 5  # 15 minutes of a 4-minute trickle: the index holds the window, not 16 days

    # the live batch: current events, a redelivery from 12 days back, a new purchase in the minute of an
    # old one (same session: not a new order), and a valid event dated a year back
    year_ago = NOW - dt.timedelta(days=365)
    buy = json.loads(old_buy[0])
    same_minute_t = dt.datetime.strptime(buy["event_time"], "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(seconds=1)
    live = [(event(NOW + dt.timedelta(seconds=s), "view", 7, 9, "live"), NOW + dt.timedelta(seconds=s + 1))
            for s in range(10)]
    live += [(old_dup[0], NOW + dt.timedelta(seconds=20)),
             (event(same_minute_t, "purchase", buy["product_id"], buy["user_id"], buy["user_session"], 1.5),
              NOW + dt.timedelta(seconds=21)),
             (event(year_ago, "purchase", 999, 42, "ancient"), NOW + dt.timedelta(seconds=22))]
    res = lake.process_collected(lake.judge(bronze(spark, live, 6_000)), 1, "test-app")

    assert (res.read, res.valid, res.quarantined, res.duplicates) == (13, 12, 0, 1)
    assert lake.recent.loads == 1  # the index was not reloaded back to the old dates
    assert len(lake.recent) <= window + 10  # + the live rows; nothing from the old minutes
    assert lake.recent.looked_back_rows <= 3  # only the rows of the 3 old minutes the batch touched
    silver = spark.read.format("delta").load(lake.path["silver/events"])
    assert silver.count() == 6_000 + 12
    assert silver.where(F.col("user_session") == "ancient").count() == 1
    # gold is still exactly a recomputation from silver (the old minute's order is not counted twice)
    want = {(r.product_id, r.window_start): (r.units, r.orders)
            for r in gold.sales_per_minute(silver).collect()}
    got = {(r.product_id, r.window_start): (r.units, r.orders)
           for r in spark.read.format("delta").load(lake.path["gold/sales_per_minute"]).collect()}
    assert got == want
