"""The business rules of lib/domain: each rule's Spark form and its driver-side (pandas / Arrow) form give the
same results on the same rows, and the constants the forms derive from agree with each other."""

from __future__ import annotations

import dataclasses
import random
from datetime import date, datetime, timedelta

import pandas as pd
import pyarrow as pa
from pyspark.sql import functions as F

from lib.batch.analyst import carts_without_purchase_daily
from lib.domain import carts, dedupe, sales
from lib.domain import spark as rules

T0 = datetime(2026, 11, 28, 12, 0, 0)
PURCHASE_DDL = ("product_id BIGINT, event_time TIMESTAMP, user_session STRING, price DOUBLE, brand STRING, "
                "category_code STRING")


def _purchases(n: int, seed: int) -> list[tuple]:
    """Purchase rows over a few products, minutes and sessions: repeated sessions per (product, minute),
    prices with float noise, brands missing on some rows."""
    rnd = random.Random(seed)  # noqa: S311 — test rows, not secrets
    rows = []
    for _ in range(n):
        product = rnd.randint(1, 6)
        rows.append((product, T0 + timedelta(seconds=rnd.randint(0, 5 * 60 - 1), microseconds=rnd.randint(0, 999)),
                     f"s{rnd.randint(1, 12)}", round(rnd.uniform(0.1, 30.0), 2),
                     rnd.choice([None, f"brand{product}"]), rnd.choice([None, "beauty.nail"])))
    return rows


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=sales.PURCHASE_COLUMNS).astype({"event_time": "datetime64[us]"})


def _spark_per_minute(spark, rows: list[tuple]) -> pd.DataFrame:
    df = spark.createDataFrame(rows, PURCHASE_DDL)
    out = (df.groupBy("product_id", rules.minute_of("event_time").alias("window_start"))
           .agg(*rules.sale_measures(), F.max("brand").alias("brand"), F.max("category_code").alias("category_code"))
           .toPandas())
    return out.sort_values(list(sales.MINUTE_KEY)).reset_index(drop=True)


def _driver_per_minute(batches: list[pd.DataFrame]) -> pd.DataFrame:
    """Sum the increments of consecutive batches, as lib.serving merges them."""
    earlier = _frame([])[["product_id", "event_time", "user_session"]]
    parts = []
    for batch in batches:
        parts.append(sales.sales_increments(batch, earlier))
        earlier = pd.concat([earlier, batch[earlier.columns]], ignore_index=True)
    inc = pd.concat(parts, ignore_index=True)
    out = inc.groupby(list(sales.MINUTE_KEY), as_index=False).agg(
        units=("units", "sum"), revenue=("revenue", "sum"), orders=("orders", "sum"), new_key=("new_key", "sum"),
        brand=("brand", "max"), category_code=("category_code", "max"))
    assert (out["new_key"] == 1).all()  # each (product, minute) is new exactly once
    out["revenue"] = out["revenue"].round(sales.REVENUE_DIGITS)
    return out.drop(columns="new_key").sort_values(list(sales.MINUTE_KEY)).reset_index(drop=True)


def test_sale_measures_spark_and_driver_forms_agree(spark):
    rows = _purchases(400, seed=7)
    want = _spark_per_minute(spark, rows)
    assert len(want) > 20 and (want["orders"] < want["units"]).any()  # sessions repeat: orders != units
    for cuts in ([400], [150, 400], [1, 90, 91, 300, 400]):  # one batch, and increments of several
        batches = [_frame(rows[a:b]) for a, b in zip([0, *cuts[:-1]], cuts)]
        got = _driver_per_minute(batches)
        pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)


def test_purchases_keep_only_purchase_rows(spark):
    df = spark.createDataFrame([(t,) for t in ["view", "cart", "remove_from_cart", "purchase", "purchase"]],
                               "event_type STRING")
    assert rules.purchases(df).count() == 2
    assert sales.is_purchase(pd.Series(["view", "purchase", "cart"])).tolist() == [False, True, False]


def test_top_k_orders_by_revenue_then_units_then_product():
    totals = pa.table({"product_id": [5, 3, 9, 1, 7], "units": [1, 2, 2, 9, 4],
                       "revenue": [10.0, 10.0, 10.0, 3.0, 12.5]})
    best = sales.top_k(totals, 4).to_pylist()
    assert [(r["rank"], r["product_id"]) for r in best] == [(1, 7), (2, 3), (3, 9), (4, 5)]
    assert sales.top_k(totals, 10).num_rows == 5 and sales.top_k(totals.slice(0, 0), 3).num_rows == 0
    # the serving table's pandas totals give the same ranking as the dashboard's Arrow totals
    from_pandas = sales.top_k(pa.Table.from_pandas(totals.to_pandas(), preserve_index=False), 4)
    assert from_pandas.select(["rank", "product_id"]).to_pylist() == sales.top_k(totals, 4).select(
        ["rank", "product_id"]).to_pylist()


def test_dedupe_spark_and_driver_forms_keep_the_same_rows(spark):
    rnd = random.Random(3)  # noqa: S311 — test rows, not secrets
    rows = [(f"k{rnd.randint(1, 40)}", "events", rnd.randint(0, 2), off) for off in range(300)]
    rnd.shuffle(rows)
    pdf = pd.DataFrame(rows, columns=[dedupe.KEY, *dedupe.FIRST_WINS])
    driver = {tuple(r) for r in pdf[dedupe.first_per_key(pdf)][list(dedupe.FIRST_WINS)].itertuples(index=False)}
    df = spark.createDataFrame(rows, f"{dedupe.KEY} STRING, topic STRING, partition INT, offset BIGINT")
    within = rules.drop_duplicates_within(df)
    assert {(r["topic"], r["partition"], r["offset"]) for r in within.collect()} == driver
    assert len(driver) == pdf[dedupe.KEY].nunique() < len(pdf)
    # the backfill's form (rows partitioned by day; the key covers the event time, so copies share their day)
    by_day = df.withColumn("event_date", F.date_add(F.lit(T0.date()), F.abs(F.hash(dedupe.KEY)) % 5)) \
        .repartition("event_date")
    assert {(r["topic"], r["partition"], r["offset"])
            for r in rules.drop_duplicates_within(by_day, by_day=True).collect()} == driver
    earlier = spark.createDataFrame([("k1",), ("k2",)], f"{dedupe.KEY} STRING")
    assert {r[dedupe.KEY] for r in rules.drop_seen(within, earlier).collect()} == set(pdf[dedupe.KEY]) - {"k1", "k2"}


def test_event_key_hashes_every_key_field(spark):
    row = {"event_time": T0, "event_type": "cart", "product_id": 1, "category_id": 2, "category_code": "a.b",
           "brand": "x", "price": 1.5, "user_id": 3, "user_session": "s"}
    assert tuple(row) == dedupe.KEY_FIELDS
    ddl = ("event_time TIMESTAMP, event_type STRING, product_id BIGINT, category_id BIGINT, category_code STRING, "
           "brand STRING, price DOUBLE, user_id BIGINT, user_session STRING")
    variants = [row] + [row | {f: None} for f in dedupe.KEY_FIELDS]
    keys = [r[0] for r in spark.createDataFrame([tuple(v.values()) for v in variants], ddl)
            .select(rules.event_key()).collect()]
    assert len(set(keys)) == len(variants)  # every field is part of the key


def test_cart_event_identity_is_the_dedupe_key_within_a_session():
    fields = tuple(f.name for f in dataclasses.fields(carts.CartEvent))
    assert fields == carts.CART_EVENT_KEY
    as_event_fields = {"event_time" if f == "t" else f for f in carts.CART_EVENT_KEY}
    assert as_event_fields | set(carts.SESSION_FIELDS) == set(dedupe.KEY_FIELDS)
    assert not as_event_fields & set(carts.SESSION_FIELDS)


def test_carts_without_purchase_is_not_the_emails_abandonment(spark):
    """The batch table counts a session whose cart was emptied again; the emails' rule does not abandon it."""
    t = datetime(2020, 1, 6, 9, 0, 0)
    ddl = ("event_time TIMESTAMP, event_type STRING, product_id BIGINT, price DOUBLE, user_id BIGINT, "
           "user_session STRING, event_date DATE")
    silver = spark.createDataFrame([(t, carts.ADD, 1, 2.0, 1, "s1", t.date()),
                                    (t + timedelta(minutes=1), carts.REMOVE, 1, 2.0, 1, "s1", t.date())], ddl)
    row = carts_without_purchase_daily(silver).first()
    assert (row["date"], row["cart_sessions"], row["cart_sessions_without_purchase"]) == (date(2020, 1, 6), 1, 1)
    cart = carts.fold_cart([carts.CartEvent(0, carts.ADD, 1, 2.0), carts.CartEvent(60_000, carts.REMOVE, 1, 2.0)])
    assert cart.outcome == carts.EMPTIED


def test_display_columns_keep_each_groups_greatest_non_null_value():
    """Spark's ``max`` on the display columns: nulls skipped, the greatest text wins, null when a group
    has none — also where a group holds several different values."""
    rows = pd.DataFrame({"k": [1, 1, 1, 2, 2, 3, 3],
                         "brand": ["b", None, "c", None, None, "a", "Z"],
                         "category_code": [None, "x.y", "x", None, "z", None, None]})
    got = sales._with_display_max(rows[["k"]].drop_duplicates(), rows, ["k"]).set_index("k")
    as_list = lambda c: [None if pd.isna(v) else v for v in got[c].sort_index()]  # noqa: E731
    assert as_list("brand") == ["c", None, "a"]  # "a" > "Z": code-point order, as Spark's
    assert as_list("category_code") == ["x.y", "z", None]
    assert str(got["brand"].dtype) == "string"
