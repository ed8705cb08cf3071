"""Gold analyst tables from silver: daily sales, funnel, carts without a purchase, cohort retention.

Every function is a pure ``DataFrame -> DataFrame`` transformation of silver events (``lib.schema``
``silver/events``); :func:`build_analyst_tables` names them and :mod:`lib.batch.tables` writes them.
Rates are ``NULL`` when their denominator is zero (never a division by zero, never a made-up 0).
Purchases, orders and the sale measures are those of :mod:`lib.domain.sales` (Spark form:
:mod:`lib.domain.spark`).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lib.domain.carts import ADD
from lib.domain.sales import ORDER_KEY, PURCHASE
from lib.domain.spark import purchases, sale_measures

SALES_KEYS: dict[str, tuple[str, ...]] = {
    "product": ("product_id",),
    "brand": ("brand",),
    "category": ("category_id",),
}


def _rate(num: Column | str, den: Column | str) -> Column:
    num, den = F.col(num) if isinstance(num, str) else num, F.col(den) if isinstance(den, str) else den
    return F.when(den > 0, F.round(num / den, 6))


def daily_sales(silver_df: DataFrame, by: str) -> DataFrame:
    """Units (purchase rows), revenue, orders (purchase sessions) and buyers per day and ``by``
    (``product``: with its brand/category; ``brand``: NULL = no brand; ``category``: category id + code)."""
    keys = SALES_KEYS[by]
    extra: list[Column] = []
    if by == "product":
        extra = [F.max("brand").alias("brand"), F.max("category_id").alias("category_id"),
                 F.max("category_code").alias("category_code")]
    elif by == "category":
        extra = [F.max("category_code").alias("category_code")]
    return (
        purchases(silver_df)
        .groupBy(F.col("event_date").alias("sale_date"), *keys)
        .agg(*sale_measures(), F.countDistinct("user_id").alias("buyers"), *extra)
    )


def funnel_daily(silver_df: DataFrame) -> DataFrame:
    """Per day: sessions and users at each funnel step and the conversion rates between them.

    ``view_to_cart_rate`` and ``cart_to_purchase_rate`` are user level (as in the dataset's published
    analyses); ``session_conversion_rate`` is purchase sessions / sessions.

    Counted in two steps: each session and each user once per day with the steps they reached, then per
    day. (Eight distinct counts in one aggregate make Spark expand every event into nine rows before
    its shuffle; the two steps shuffle each event once per grouping, and give the same counts.)
    """
    steps = {"view": "view", "cart": ADD, "purchase": PURCHASE}
    reached = [F.max((F.col("event_type") == kind).cast("int")).alias(f"_{name}") for name, kind in steps.items()]
    day = F.col("event_date").alias("date")

    def per_day(unit: str, counts: dict[str, str]) -> DataFrame:
        """``(day, unit)`` groups with the steps reached -> per day: the units (NULL ids not counted,
        as ``count(DISTINCT)`` does not count them) and those at each step."""
        groups = silver_df.groupBy(day, unit).agg(F.count(F.lit(1)).alias("_events"), *reached)
        return groups.groupBy("date").agg(
            F.sum("_events").alias("events"), F.count(unit).alias(counts["all"]),
            *[F.count(F.when(F.col(f"_{name}") == 1, F.col(unit))).alias(counts[name]) for name in steps])

    sessions = per_day("user_session", {"all": "sessions", "view": "view_sessions", "cart": "cart_sessions",
                                        "purchase": "purchase_sessions"})
    users = per_day("user_id", {"all": "users", "view": "viewers", "cart": "carters", "purchase": "buyers"})
    daily = sessions.join(users.drop("events"), "date")  # the same days: every event is in both groupings
    return daily.select(
        "date", "events", "sessions", "users", "view_sessions", "cart_sessions", "purchase_sessions",
        "viewers", "carters", "buyers",
        _rate("carters", "viewers").alias("view_to_cart_rate"),
        _rate("buyers", "carters").alias("cart_to_purchase_rate"),
        _rate("purchase_sessions", "sessions").alias("session_conversion_rate"),
    )


def carts_without_purchase_daily(silver_df: DataFrame) -> DataFrame:
    """Per day a session started: sessions with an add-to-cart and how many of them have no purchase
    at all (and their share); the same at user level (users who added to a cart that day and bought
    nothing that day).

    Not the cart abandonment of the emails (:mod:`lib.domain.carts`: sessions end after an inactivity
    gap, the cart nets removes and purchases, a purchase before the last add does not count): a
    day-level "carted but did not buy" figure, named for what it counts. Before issue #17 it was
    ``cart_abandonment_daily`` (``abandoned_sessions``, ``session_abandonment_rate``, ``abandoned_users``,
    ``user_abandonment_rate``); the counts are the same."""
    def has(event_type: str) -> Column:
        return F.max((F.col("event_type") == event_type).cast("int"))

    def carted_per_day(groups: DataFrame, unit: str) -> DataFrame:
        """``groups`` (date, has_cart, has_purchase) -> per date: those with an add-to-cart, and how
        many of them have no purchase."""
        return groups.where("has_cart = 1").groupBy("date").agg(
            F.count(F.lit(1)).alias(f"cart_{unit}"),
            F.sum(1 - F.col("has_purchase")).cast("long").alias(f"cart_{unit}_without_purchase"),
        )

    flags = [has(ADD).alias("has_cart"), has(PURCHASE).alias("has_purchase")]
    # a session counts on the day it started; a user on each day she carted
    by_session = carted_per_day(
        silver_df.groupBy(ORDER_KEY).agg(F.to_date(F.min("event_time")).alias("date"), *flags), "sessions")
    by_user = carted_per_day(silver_df.groupBy(F.col("event_date").alias("date"), "user_id").agg(*flags), "users")
    return by_session.join(by_user, "date", "full").select(
        "date",
        F.coalesce("cart_sessions", F.lit(0)).alias("cart_sessions"),
        F.coalesce("cart_sessions_without_purchase", F.lit(0)).alias("cart_sessions_without_purchase"),
        _rate("cart_sessions_without_purchase", "cart_sessions").alias("session_no_purchase_rate"),
        F.coalesce("cart_users", F.lit(0)).alias("cart_users"),
        F.coalesce("cart_users_without_purchase", F.lit(0)).alias("cart_users_without_purchase"),
        _rate("cart_users_without_purchase", "cart_users").alias("user_no_purchase_rate"),
    )


def cohort_retention(silver_df: DataFrame, weeks: int) -> DataFrame:
    """Users by the week (Monday) of their first visit; for each following week ``week_number``
    (0 = the first week, up to ``weeks``) how many of them visited again, and the share."""
    week = F.date_trunc("week", F.col("event_time")).cast("date")
    active = silver_df.select("user_id", week.alias("week")).distinct()
    first = active.groupBy("user_id").agg(F.min("week").alias("cohort_week"))
    sizes = first.groupBy("cohort_week").agg(F.count(F.lit(1)).alias("cohort_users"))
    joined = active.join(first, "user_id").withColumn(
        "week_number", (F.datediff("week", "cohort_week") / 7).cast("int"))
    return (
        joined.where(F.col("week_number") <= weeks)
        .groupBy("cohort_week", "week_number").agg(F.count(F.lit(1)).alias("active_users"))
        .join(sizes, "cohort_week")
        .select("cohort_week", "week_number", "cohort_users", "active_users",
                _rate("active_users", "cohort_users").alias("retention"))
    )


def build_analyst_tables(silver_df: DataFrame, cohort_weeks: int) -> dict[str, DataFrame]:
    """Every gold analyst table by its lake name (``gold/<name>``)."""
    return {
        "gold/daily_product_sales": daily_sales(silver_df, "product"),
        "gold/daily_brand_sales": daily_sales(silver_df, "brand"),
        "gold/daily_category_sales": daily_sales(silver_df, "category"),
        "gold/funnel_daily": funnel_daily(silver_df),
        "gold/carts_without_purchase_daily": carts_without_purchase_daily(silver_df),
        "gold/cohort_retention": cohort_retention(silver_df, cohort_weeks),
    }
