"""Feature tables (ml/features.py) and metrics (ml/evaluation.py) on tiny inputs: values, labels, and
that nothing after a row's date (or after the cut-off) reaches a feature."""

from __future__ import annotations

import math
import warnings
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from ml import evaluation
from ml.demand import backtest_folds
from ml.features import (
    CUSTOMER_FEATURES,
    PANEL_FEATURES,
    customer_features,
    daily_product_activity,
    product_day_panel,
    top_products,
    with_panel_features,
)

SILVER_COLS = "event_time TIMESTAMP, event_type STRING, product_id BIGINT, price DOUBLE, user_id BIGINT, " \
              "user_session STRING, event_date DATE"
D0 = date(2020, 1, 1)


def ev(day: int, etype: str, product: int = 1, price: float = 2.0, user: int = 1, session: str = "s", hh: int = 12):
    t = datetime(2020, 1, 1, hh) + timedelta(days=day)
    return (t, etype, product, price, user, session, t.date())


def panel(spark, rows, products=(1,), days=20, horizon=7):
    silver = spark.createDataFrame(rows, SILVER_COLS)
    activity = daily_product_activity(silver)
    prods = spark.createDataFrame([(p,) for p in products], "product_id BIGINT")
    return with_panel_features(product_day_panel(activity, prods, D0, D0 + timedelta(days=days - 1)), horizon)


def test_activity_counts_events_per_product_and_day(spark):
    silver = spark.createDataFrame([ev(0, "view"), ev(0, "cart"), ev(0, "purchase", price=3.0),
                                    ev(0, "purchase", price=3.0), ev(1, "remove_from_cart", product=2)], SILVER_COLS)
    expected = spark.createDataFrame([(1, D0, 1, 1, 0, 2, 6.0, 2.5), (2, D0 + timedelta(days=1), 0, 0, 1, 0, 0.0, 2.0)],
                                     "product_id BIGINT, date DATE, views BIGINT, carts BIGINT, removals BIGINT, "
                                     "units BIGINT, revenue DOUBLE, avg_price DOUBLE")
    assert_df_equality(daily_product_activity(silver), expected, ignore_row_order=True, ignore_nullable=True)


def test_panel_is_dense_with_rolling_sums_and_forward_labels(spark):
    # one unit sold on days 0, 3, 10; views every day
    rows = [ev(d, "view") for d in range(20)] + [ev(d, "purchase") for d in (0, 3, 10)]
    p = panel(spark, rows).orderBy("date").toPandas()
    assert len(p) == 20 and list(p["date"]) == [D0 + timedelta(days=i) for i in range(20)]
    assert list(p["units_7d"][:11]) == [1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1]
    assert p["units_next_7d"].tolist()[:4] == [1, 1, 1, 1]  # day 0 sees day 3; day 3 sees day 10
    assert p["units_next_7d"].iloc[3] == 1 and p["units_next_7d"].iloc[9] == 1 and p["units_next_7d"].iloc[10] == 0
    assert p["units_next_7d"].iloc[12] == 0 and p["units_next_7d"].iloc[13:].isna().all()  # incomplete: no label
    assert p["sold_next_1d"].iloc[2] == 1 and p["sold_next_1d"].iloc[3] == 0 and pd.isna(p["sold_next_1d"].iloc[19])
    assert p["days_since_last_sale"].iloc[5] == 2 and p["sale_days_28d"].iloc[19] == 3
    assert set(PANEL_FEATURES) <= set(p.columns) and not p[list(PANEL_FEATURES)].isna().any().any()


def test_panel_features_do_not_look_ahead(spark):
    base = [ev(d, "view") for d in range(20)] + [ev(d, "purchase") for d in (2, 5)]
    later = base + [ev(d, "purchase") for d in range(12, 20)] + [ev(d, "cart") for d in range(12, 20)]
    a = panel(spark, base).where(F.col("date") <= D0 + timedelta(days=11)).select("product_id", "date", *PANEL_FEATURES)
    b = panel(spark, later).where(F.col("date") <= D0 + timedelta(days=11)).select("product_id", "date", *PANEL_FEATURES)
    assert_df_equality(a, b, ignore_row_order=True)


def test_top_products_only_counts_days_before_the_cutoff(spark):
    rows = [ev(0, "view", product=1), ev(0, "view", product=2), ev(1, "view", product=2)] + \
           [ev(9, "view", product=3)] * 5
    activity = daily_product_activity(spark.createDataFrame(rows, SILVER_COLS))
    assert [r.product_id for r in top_products(activity, D0 + timedelta(days=5), 2).collect()] == [2, 1]


def test_backtest_folds_are_consecutive_and_end_on_the_last_complete_label():
    folds = backtest_folds(date(2020, 2, 29), 7, 3, 7)
    assert [(f.test_start, f.test_end) for f in folds] == [
        (date(2020, 2, 2), date(2020, 2, 8)), (date(2020, 2, 9), date(2020, 2, 15)), (date(2020, 2, 16), date(2020, 2, 22))]


def test_customer_features_at_a_cutoff(spark):
    cutoff = datetime(2020, 1, 11)
    rows = [
        # u1: orders on day 0 (2 items, 5.0) and day 4 (one item 4.0), an order after the cut-off (7.0)
        ev(0, "purchase", price=2.5, user=1, session="a"), ev(0, "purchase", price=2.5, user=1, session="a"),
        ev(4, "view", user=1, session="b"), ev(4, "purchase", price=4.0, user=1, session="b"),
        ev(12, "purchase", price=7.0, user=1, session="c"),
        # u2: one order on day 8; u3 never bought before the cut-off (not a customer yet)
        ev(8, "purchase", price=10.0, user=2, session="d"), ev(20, "purchase", price=1.0, user=3, session="e"),
    ]
    f = customer_features(spark.createDataFrame(rows, SILVER_COLS), cutoff, horizon=30).toPandas().set_index("user_id")
    assert sorted(f.index) == [1, 2]
    u1 = f.loc[1]
    assert (u1["orders"], u1["frequency"], u1["recency"], u1["T"]) == (2, 1, 4.0, 9.5)
    assert (u1["monetary_value"], u1["total_spend"], u1["future_spend"], u1["naive_spend"]) == (4.0, 9.0, 7.0, 9.0)
    assert (u1["sessions"], u1["items_per_order"]) == (2, 1.5)
    u2 = f.loc[2]
    assert (u2["frequency"], u2["monetary_value"], u2["future_spend"]) == (0, 0.0, 0.0)
    assert set(CUSTOMER_FEATURES) <= set(f.columns)


def test_customer_behaviour_counts_what_count_distinct_counts(spark):
    """Sessions, recent sessions, views, carts, last visit and products bought (counted per session, then
    per user) against the one-aggregate form with ``count(DISTINCT)`` they replaced; events without a
    session count as views and visits, not as sessions."""
    cutoff = datetime(2020, 2, 10)  # the last 30 days: from 2020-01-11 (day 10)
    rows = [
        ev(0, "purchase", product=1, user=1, session="a"), ev(0, "purchase", product=2, user=1, session="a"),
        ev(3, "view", user=1, session="b"), ev(25, "view", user=1, session="b"),  # b is recent by its last event
        ev(26, "cart", user=1, session=None), ev(27, "view", user=1, session=None, hh=15),
        ev(28, "purchase", product=1, user=1, session="c"), ev(29, "view", user=1, session="c"),
        ev(2, "purchase", product=3, user=2, session="d"), ev(24, "cart", product=3, user=2, session="e"),
        ev(45, "view", user=2, session="f"),  # after the cut-off
    ]
    df = spark.createDataFrame(rows, SILVER_COLS)
    oracle = spark.sql("""
        SELECT user_id, count(DISTINCT user_session) AS sessions,
               count(DISTINCT CASE WHEN event_time >= TIMESTAMP'2020-01-11' THEN user_session END) AS sessions_30d,
               sum(CASE WHEN event_type = 'view' AND event_time >= TIMESTAMP'2020-01-11' THEN 1 ELSE 0 END) AS views_30d,
               sum(CASE WHEN event_type = 'cart' AND event_time >= TIMESTAMP'2020-01-11' THEN 1 ELSE 0 END) AS carts_30d,
               count(DISTINCT CASE WHEN event_type = 'purchase' THEN product_id END) AS products_bought,
               max(event_time) AS last_visit
        FROM {df} WHERE event_time < TIMESTAMP'2020-02-10' GROUP BY user_id""", df=df).toPandas().set_index("user_id")
    f = customer_features(df, cutoff, horizon=30).toPandas().set_index("user_id")
    assert sorted(f.index) == [1, 2]
    for col in ("sessions", "sessions_30d", "views_30d", "carts_30d", "products_bought"):
        assert f[col].to_dict() == oracle[col].to_dict(), col
    assert f.loc[1, "sessions"] == 3 and f.loc[1, "views_30d"] == 3  # a, b, c; the session-less view counts
    days = ((pd.Timestamp(cutoff) - oracle["last_visit"]).dt.total_seconds() / 86400).to_dict()
    assert f["days_since_last_visit"].to_dict() == pytest.approx(days)


def test_customer_features_ignore_everything_after_the_cutoff(spark):
    cutoff = datetime(2020, 1, 11)
    before = [ev(0, "purchase", user=1, session="a"), ev(5, "view", user=1, session="b")]
    after = before + [ev(15, "view", user=1, session="x"), ev(16, "purchase", price=50.0, user=1, session="y")]
    a = customer_features(spark.createDataFrame(before, SILVER_COLS), cutoff, 30).select("user_id", *CUSTOMER_FEATURES)
    b = customer_features(spark.createDataFrame(after, SILVER_COLS), cutoff, 30).select("user_id", *CUSTOMER_FEATURES)
    assert_df_equality(a, b)


def test_metrics():
    assert evaluation.wape([2, 0, 2], [1, 1, 2]) == pytest.approx(0.5)
    assert evaluation.rmse([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))
    assert math.isnan(evaluation.wape([0, 0], [1, 1]))
    df = pd.DataFrame({"date": [1, 1, 1, 2, 2, 2], "product_id": [1, 2, 3, 1, 2, 3],
                       "actual": [5, 3, 0, 1, 0, 9], "pred": [4, 0, 3, 9, 0, 8]})
    assert evaluation.precision_at_k(df, "actual", "pred", 2) == pytest.approx((0.5 + 1.0) / 2)
    assert evaluation.brier([1, 0], [0.75, 0.25]) == pytest.approx(0.0625)
    assert evaluation.pr_auc([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.2]) == pytest.approx(1.0)
    y = np.array([10.0] + [0.0] * 9 + [1.0] * 10)
    assert evaluation.top_decile_lift(y, np.arange(20, 0, -1)) == pytest.approx(5.0 / 1.0)  # top 2: 10 + 0
    assert evaluation.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    with warnings.catch_warnings():  # a constant prediction (the mean baseline's) has no rank correlation
        warnings.simplefilter("error")  # and scipy is not asked for one (its ConstantInputWarning)
        assert math.isnan(evaluation.spearman([1, 2, 3], [0.1] * 3))  # np.std of these is 1.4e-17, not 0
        assert math.isnan(evaluation.spearman([4, 4, 4], [1, 2, 3]))
    t = evaluation.calibration_table([0, 1, 1, 0], [0.05, 0.95, 0.91, 0.15], bins=10)
    assert t["n"].tolist() == [1, 1, 2] and t["observed"].tolist() == [0.0, 0.0, 1.0]
