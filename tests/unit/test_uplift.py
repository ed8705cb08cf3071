"""The uplift report (mailed vs control) equals a hand computation on a small input (chispa)."""

from __future__ import annotations

from datetime import datetime

from chispa import assert_df_equality
from pyspark.sql import functions as F

from lib.retarget.uplift import uplift_report


def test_uplift_matches_a_hand_computation(spark):
    d = spark.createDataFrame([
        ("m1", 1, "sent", datetime(2026, 1, 1)), ("m2", 2, "sent", datetime(2026, 1, 1)),
        ("m3", 3, "sent", datetime(2026, 1, 9)), ("c1", 4, "control", datetime(2026, 1, 1)),
        ("c2", 5, "control", datetime(2026, 1, 2)), ("x", 6, "capped", datetime(2026, 1, 1)),
    ], "user_session string, user_id long, decision string, expired_at timestamp")
    s = spark.createDataFrame([
        (1, "purchase", datetime(2026, 1, 3), 10.0), (1, "purchase", datetime(2026, 1, 4), 5.0),  # m1: 15
        (2, "purchase", datetime(2025, 12, 31), 99.0),  # before the expiry: not a conversion
        (2, "purchase", datetime(2026, 1, 9), 7.0),     # 8 days later: outside the window
        (4, "purchase", datetime(2026, 1, 5), 20.0),    # c1: 20
        (6, "purchase", datetime(2026, 1, 2), 50.0),    # not in an arm
        (3, "view", datetime(2026, 1, 10), 1.0),        # as_of = 2026-01-10
    ], "user_id long, event_type string, event_time timestamp, price double")
    got = uplift_report(d, s).drop("computed_at").orderBy("arm")
    as_of = datetime(2026, 1, 10)
    want = spark.createDataFrame([
        ("control", 2, 2, 1, 0.5, 20.0, 10.0, None, None, 2, as_of),
        ("mailed", 3, 3, 1, 1 / 3, 15.0, 5.0, round((1 / 3 - 0.5) * 100, 2), round((5.0 - 10.0) * 3, 2), 2, as_of),
    ], "arm string, carts long, users long, converted_carts long, conversion_rate double, revenue_7d double, "
       "revenue_per_cart double, uplift_pp double, incremental_revenue double, window_complete_carts long, "
       "as_of timestamp")
    assert_df_equality(got, want.select(*[F.col(c) for c in got.columns]), ignore_nullable=True,
                       ignore_column_order=False)
