"""The lakehouse batch processor on generated data with known defects: every record accounted for,
the right reason on each quarantined row, and gold equal to a batch recomputation from silver."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lib import lakehouse
from lib.data.files import iter_rows
from lib.data.generator.writers import write_csv
from lib.schema import csv_row_to_wire, encode_wire
from lib.transforms.silver import parse_events
from tests import gold_oracle as gold

pytestmark = pytest.mark.slow

BRONZE_DDL = ("key string, value string, topic string, partition int, offset long, "
              "kafka_timestamp timestamp, ingest_time timestamp")
EVENT_TYPES = {"view", "cart", "remove_from_cart", "purchase"}

# Defects injected on top of the generator's own (zero/negative prices, missing sessions, duplicates).
DEFECTS = [
    ("not json", ["unparsable_json"]),
    ({"event_time": "soon"}, ["bad_event_time"]),
    ({"event_type": "checkout"}, ["unknown_event_type"]),
    ({"product_id": "abc"}, ["bad_product_id"]),
    ({"price": "n/a"}, ["non_numeric_price"]),
    ({"price": None, "user_id": None}, ["missing_user_id", "missing_price"]),
    ({"_future": True}, ["future_event_time"]),
]


def oracle_reasons(event: dict | None, kafka_ts: dt.datetime) -> list[str]:
    """Independent re-statement of conf/quality_rules.yaml in plain Python (for the test only)."""
    if event is None:
        return ["unparsable_json"]
    r = []
    t = event.get("event_time")
    parsed = None
    if t is None:
        r.append("missing_event_time")
    else:
        try:
            parsed = dt.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError):
            r.append("bad_event_time")
    if parsed is not None and parsed > kafka_ts + dt.timedelta(hours=1):
        r.append("future_event_time")
    if event.get("event_type") not in EVENT_TYPES:
        r.append("unknown_event_type")
    pid = event.get("product_id")
    if pid is None:
        r.append("missing_product_id")
    elif not isinstance(pid, int) or pid <= 0:
        r.append("bad_product_id")
    if event.get("user_id") is None:
        r.append("missing_user_id")
    if event.get("user_session") is None:
        r.append("missing_user_session")
    price = event.get("price")
    if price is None:
        r.append("missing_price")
    elif not isinstance(price, (int, float)):
        r.append("non_numeric_price")
    elif price <= 0:
        r.append("non_positive_price")
    return r


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """~6000 generated events (30 min of a busy shop) + injected defects, as bronze-shaped rows."""
    base = tmp_path_factory.mktemp("lakehouse")
    csv = base / "events.csv"
    write_csv(csv, rows=6000, seed=7, start="2026-11-27", days=30 / 1440)
    rows, expected = [], []
    for i, row in enumerate(iter_rows(csv)):
        event = csv_row_to_wire(row)
        ts = dt.datetime.strptime(event["event_time"], "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(seconds=2)
        value = encode_wire(event).decode()
        if i % 500 == 250:  # inject a defect every 500 rows
            defect, reasons = DEFECTS[(i // 500) % len(DEFECTS)]
            if defect == "not json":
                value, event = "not json", None
            elif "_future" in defect:
                event = dict(event, event_time=(ts + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))
                value = json.dumps(event)
            else:
                event = dict(event, **defect)
                value = json.dumps(event)
        elif i % 450 == 100 and i > 2100:  # a redelivery of an event of an earlier batch
            value, event = rows[i - 2000][1], json.loads(rows[i - 2000][1])
        rows.append((str(event.get("user_id")) if event else None, value, "events", i % 3, i, ts, ts))
        expected.append(oracle_reasons(event, ts))
    return base, rows, expected


@pytest.fixture(scope="module", params=["driver", "spark", "spark_by_day"])
def processed(request, spark, cfg, dataset, empty_lake):
    """The same batches through each entry point: ``process_collected`` (the live stream's bounded
    micro-batches, finished on the driver), ``process`` (an uncapped stream: all in Spark) and
    ``process_parsed(by_day=True)`` (the backfill's form: the new rows shuffled by day once). The
    batches hold duplicates of their own and redeliveries of earlier batches' events."""
    base, rows, expected = dataset
    lake_cfg = cfg.model_copy(update={"lake": cfg.lake.model_copy(update={"root": str(base / request.param)})})

    class Lakehouse(lakehouse.Lakehouse):
        def process(self, df, batch_id, app_id):
            if request.param == "driver":
                return super().process_collected(self.judge(df), batch_id, app_id)
            if request.param == "spark_by_day":
                return super().process_parsed(parse_events(df), batch_id, app_id, by_day=True)
            return super().process(df, batch_id, app_id)

    empty_lake(base / request.param)  # the tables, empty (what lake.ensure_tables() creates)
    lake = Lakehouse(lake_cfg)
    n = len(rows)
    results = []
    for batch_id, (lo, hi) in enumerate([(0, n // 3), (n // 3, 2 * n // 3)]):
        results.append(lake.process(spark.createDataFrame(rows[lo:hi], BRONZE_DDL), batch_id, "test-app"))
    last = rows[2 * n // 3:]
    # batch 2 crashes at gold: the backfill's form has committed silver and quarantine (it writes them first),
    # the others nothing yet
    crashing = Lakehouse(lake_cfg)
    real_apply = crashing.serving.apply

    def crash_on_gold(*args, **kw):
        raise RuntimeError("simulated crash at gold")

    crashing.serving.apply = crash_on_gold
    with pytest.raises(RuntimeError, match="simulated crash at gold"):
        crashing.process(spark.createDataFrame(last, BRONZE_DDL), 2, "test-app")
    crashing.serving.apply = real_apply
    committed = spark.read.format("delta").load(lake.path["silver/events"]).where(F.col("load_id") == "test-app:2")
    assert (committed.count() > 0) == (request.param == "spark_by_day")
    # then half-way again: gold, silver and quarantine are committed, the ops append (last) fails
    real_append_once = lakehouse.append_once

    def crash_on_ops(path, data, app_id, batch_id, **kw):
        if path == lake.path["ops/quality_batches"]:
            raise RuntimeError("simulated crash")
        return real_append_once(path, data, app_id, batch_id, **kw)

    lakehouse.append_once = crash_on_ops
    try:
        with pytest.raises(RuntimeError, match="simulated crash"):
            lake.process(spark.createDataFrame(last, BRONZE_DDL), 2, "test-app")
    finally:
        lakehouse.append_once = real_append_once
    # the restarted app (a new process) re-runs batch 2
    results.append(Lakehouse(lake_cfg).process(spark.createDataFrame(last, BRONZE_DDL), 2, "test-app"))
    # and a crash after batch 2 completed but before Spark recorded it: re-run once more
    retry = Lakehouse(lake_cfg).process(spark.createDataFrame(last, BRONZE_DDL), 2, "test-app")
    return lake, results, retry, expected


def _read(spark, lake, name):
    return spark.read.format("delta").load(lake.path[name])


def test_every_record_is_accounted_for(spark, processed, dataset):
    lake, results, retry, expected = processed
    _, rows, _ = dataset
    silver = _read(spark, lake, "silver/events").count()
    quarantine = _read(spark, lake, "quarantine/events").count()
    ops = _read(spark, lake, "ops/quality_batches").agg(
        F.sum("read"), F.sum("valid"), F.sum("quarantined"), F.sum("duplicates")).first()
    expected_bad = sum(1 for r in expected if r)
    valid_events = [json.loads(rows[i][1]) for i, r in enumerate(expected) if not r]
    expected_dupes = len(valid_events) - len({json.dumps(e, sort_keys=True) for e in valid_events})
    assert expected_dupes > 0 and expected_bad > len(DEFECTS)  # the input really has both defects
    assert sum(r.duplicates for r in results[1:]) >= 7  # incl. the redeliveries of earlier batches' events
    assert quarantine == expected_bad
    assert silver == len(valid_events) - expected_dupes
    assert tuple(ops) == (len(rows), silver, quarantine, expected_dupes)
    assert len(rows) == silver + quarantine + expected_dupes
    assert sum(r.read for r in results) == len(rows)
    assert _read(spark, lake, "ops/quality_batches").count() == 3  # the retry wrote no second row


def test_each_quarantined_row_has_the_right_reasons(spark, processed):
    lake, _, _, expected = processed
    got = {r["offset"]: r["reasons"] for r in _read(spark, lake, "quarantine/events").collect()}
    want = {i: r for i, r in enumerate(expected) if r}
    assert got == want
    per_rule = Counter(reason for r in want.values() for reason in r)
    ops_rules = Counter()
    for row in _read(spark, lake, "ops/quality_batches").collect():
        ops_rules.update(row["quarantined_by_rule"])
    assert ops_rules == per_rule


def test_gold_equals_a_batch_recomputation_from_silver(spark, processed):
    lake, *_ = processed
    silver = _read(spark, lake, "silver/events")
    per_minute = gold.sales_per_minute(silver).drop("updated_at")
    got_minute = _read(spark, lake, "gold/sales_per_minute").drop("updated_at")
    assert per_minute.count() > 10
    assert_df_equality(got_minute, per_minute, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)

    got_daily = _read(spark, lake, "gold/sales_daily").drop("updated_at")
    assert_df_equality(got_daily, gold.sales_daily(per_minute).drop("updated_at"),
                       ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)

    got_rev = _read(spark, lake, "gold/revenue_per_minute").drop("updated_at")
    assert_df_equality(got_rev, gold.revenue_per_minute(per_minute).drop("updated_at"),
                       ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)

    totals = silver.where("event_type = 'purchase'").agg(F.count(F.lit(1)), F.round(F.sum("price"), 2)).first()
    daily_totals = _read(spark, lake, "gold/sales_daily").agg(F.sum("units"), F.round(F.sum("revenue"), 2)).first()
    assert tuple(daily_totals) == tuple(totals)

    top = _read(spark, lake, "gold/top_products").orderBy("rank").collect()
    assert [r["rank"] for r in top] == list(range(1, len(top) + 1)) and 0 < len(top) <= lake.top_k
    assert all(a["revenue"] >= b["revenue"] for a, b in zip(top, top[1:]))
