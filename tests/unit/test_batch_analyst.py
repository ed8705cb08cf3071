"""Gold analyst tables (lib/batch/analyst.py) against independent recomputations on tiny inputs."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from chispa import assert_df_equality

from lib.batch import analyst

SILVER_COLS = "event_time TIMESTAMP, event_type STRING, product_id BIGINT, category_id BIGINT, category_code STRING, " \
              "brand STRING, price DOUBLE, user_id BIGINT, user_session STRING, event_date DATE"


def ev(day: int, hh: int, etype: str, product: int, price: float, user: int, session: str,
       brand: str | None = "runail", category: int = 11, code: str | None = None):
    t = datetime(2020, 1, day, hh, 0, 0)
    return (t, etype, product, category, code, brand, price, user, session, t.date())


ROWS = [
    # 2020-01-06 (Monday): u1 views, carts and buys p1 twice in s1; u2 carts p2, abandons (s2)
    ev(6, 9, "view", 1, 2.5, 1, "s1"),
    ev(6, 9, "cart", 1, 2.5, 1, "s1"),
    ev(6, 10, "purchase", 1, 2.5, 1, "s1"),
    ev(6, 10, "purchase", 1, 2.5, 1, "s1"),
    ev(6, 11, "view", 2, 10.0, 2, "s2", brand=None, category=22, code="accessories.bag"),
    ev(6, 11, "cart", 2, 10.0, 2, "s2", brand=None, category=22, code="accessories.bag"),
    # 2020-01-07: u2 returns and buys p2 (s3); u3 only views (s4)
    ev(7, 8, "view", 2, 10.0, 2, "s3", brand=None, category=22, code="accessories.bag"),
    ev(7, 8, "purchase", 2, 10.0, 2, "s3", brand=None, category=22, code="accessories.bag"),
    ev(7, 9, "view", 1, 2.5, 3, "s4"),
    # 2020-01-14 (next week): u1 comes back and views (s5)
    ev(14, 9, "view", 1, 2.5, 1, "s5"),
]


@pytest.fixture(scope="module")
def silver(spark):
    return spark.createDataFrame(ROWS, SILVER_COLS)


def test_daily_sales_per_product(spark, silver):
    expected = spark.createDataFrame([
        (date(2020, 1, 6), 1, 2, 5.0, 1, 1, "runail", 11, None),
        (date(2020, 1, 7), 2, 1, 10.0, 1, 1, None, 22, "accessories.bag"),
    ], "sale_date DATE, product_id BIGINT, units BIGINT, revenue DOUBLE, orders BIGINT, buyers BIGINT, brand STRING, "
       "category_id BIGINT, category_code STRING")
    assert_df_equality(analyst.daily_sales(silver, "product"), expected, ignore_row_order=True, ignore_nullable=True)


def test_daily_sales_per_brand_keeps_the_missing_brand_apart(spark, silver):
    expected = spark.createDataFrame([
        (date(2020, 1, 6), "runail", 2, 5.0, 1, 1),
        (date(2020, 1, 7), None, 1, 10.0, 1, 1),
    ], "sale_date DATE, brand STRING, units BIGINT, revenue DOUBLE, orders BIGINT, buyers BIGINT")
    assert_df_equality(analyst.daily_sales(silver, "brand"), expected, ignore_row_order=True, ignore_nullable=True)


def test_daily_sales_per_category(spark, silver):
    expected = spark.createDataFrame([
        (date(2020, 1, 6), 11, 2, 5.0, 1, 1, None),
        (date(2020, 1, 7), 22, 1, 10.0, 1, 1, "accessories.bag"),
    ], "sale_date DATE, category_id BIGINT, units BIGINT, revenue DOUBLE, orders BIGINT, buyers BIGINT, category_code STRING")
    assert_df_equality(analyst.daily_sales(silver, "category"), expected, ignore_row_order=True, ignore_nullable=True)


def test_funnel_daily(spark, silver):
    expected = spark.createDataFrame([
        # events, sessions, users, view/cart/purchase sessions, viewers, carters, buyers, rates
        (date(2020, 1, 6), 6, 2, 2, 2, 2, 1, 2, 2, 1, 1.0, 0.5, 0.5),
        (date(2020, 1, 7), 3, 2, 2, 2, 0, 1, 2, 0, 1, 0.0, None, 0.5),
        (date(2020, 1, 14), 1, 1, 1, 1, 0, 0, 1, 0, 0, 0.0, None, 0.0),
    ], "date DATE, events BIGINT, sessions BIGINT, users BIGINT, view_sessions BIGINT, cart_sessions BIGINT, "
       "purchase_sessions BIGINT, viewers BIGINT, carters BIGINT, buyers BIGINT, view_to_cart_rate DOUBLE, "
       "cart_to_purchase_rate DOUBLE, session_conversion_rate DOUBLE")
    assert_df_equality(analyst.funnel_daily(silver), expected, ignore_row_order=True, ignore_nullable=True)


def test_funnel_daily_counts_what_count_distinct_counts_null_ids_included(spark, silver):
    """The two-step funnel (per session / user and day, then per day) against the one-aggregate form
    with ``count(DISTINCT)`` it replaced, on the fixture plus events without a session or a user id
    (they count as events, not as sessions or users)."""
    extra = [ev(6, 12, "view", 1, 2.5, 4, None), ev(6, 12, "cart", 1, 2.5, 4, None),
             ev(7, 9, "purchase", 1, 2.5, None, "s6"), ev(7, 10, "view", 2, 10.0, None, None)]
    df = spark.createDataFrame(ROWS + extra, SILVER_COLS)
    oracle = spark.sql("""
        SELECT event_date AS date, count(*) AS events, count(DISTINCT user_session) AS sessions,
               count(DISTINCT user_id) AS users,
               count(DISTINCT CASE WHEN event_type = 'view' THEN user_session END) AS view_sessions,
               count(DISTINCT CASE WHEN event_type = 'cart' THEN user_session END) AS cart_sessions,
               count(DISTINCT CASE WHEN event_type = 'purchase' THEN user_session END) AS purchase_sessions,
               count(DISTINCT CASE WHEN event_type = 'view' THEN user_id END) AS viewers,
               count(DISTINCT CASE WHEN event_type = 'cart' THEN user_id END) AS carters,
               count(DISTINCT CASE WHEN event_type = 'purchase' THEN user_id END) AS buyers
        FROM {df} GROUP BY event_date""", df=df)
    got = analyst.funnel_daily(df)
    assert_df_equality(got.select(*oracle.columns), oracle, ignore_row_order=True, ignore_nullable=True)
    assert got.where("date = DATE'2020-01-06'").first()["events"] == 8  # the session-less events count


def test_carts_without_purchase_daily(spark, silver):
    # 01-06: s1 (cart + purchase) and s2 (cart only) -> 1 of 2 without a purchase; users: u1 bought, u2 did not
    expected = spark.createDataFrame([(date(2020, 1, 6), 2, 1, 0.5, 2, 1, 0.5)],
                                     "date DATE, cart_sessions BIGINT, cart_sessions_without_purchase BIGINT, "
                                     "session_no_purchase_rate DOUBLE, cart_users BIGINT, "
                                     "cart_users_without_purchase BIGINT, user_no_purchase_rate DOUBLE")
    assert_df_equality(analyst.carts_without_purchase_daily(silver), expected, ignore_row_order=True,
                       ignore_nullable=True)


def test_cohort_retention(spark, silver):
    # cohort of the week of 2020-01-06: u1, u2, u3 (3 users); week 1 (2020-01-13): u1 only
    expected = spark.createDataFrame([
        (date(2020, 1, 6), 0, 3, 3, 1.0),
        (date(2020, 1, 6), 1, 3, 1, 0.333333),
    ], "cohort_week DATE, week_number INT, cohort_users BIGINT, active_users BIGINT, retention DOUBLE")
    assert_df_equality(analyst.cohort_retention(silver, 12), expected, ignore_row_order=True, ignore_nullable=True)
    assert analyst.cohort_retention(silver, 0).count() == 1  # weeks beyond the horizon are left out


def test_build_analyst_tables_names_every_table(silver):
    assert set(analyst.build_analyst_tables(silver, 4)) == {
        "gold/daily_product_sales", "gold/daily_brand_sales", "gold/daily_category_sales", "gold/funnel_daily",
        "gold/carts_without_purchase_daily", "gold/cohort_retention"}
