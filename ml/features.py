"""Feature tables, built in Spark from silver events (pure ``DataFrame -> DataFrame`` functions).

* **Product x day panel** (:func:`product_day_panel`, :func:`with_panel_features`): one row per
  product and day with that day's views, carts, removals, purchases (units), revenue and price, then
  lags, rolling windows and calendar features that use only days up to and including the row's
  date, and the labels that look forward (``units_next_7d``, ``sold_next_1d``; NULL where the
  future is not in the data). A row dated ``d`` is what we know at the end of day ``d``.
* **Customer features at a cut-off** (:func:`orders`, :func:`customer_features`): RFM and behaviour
  from events strictly before the cut-off; the label (spend in the ``horizon`` days after it) comes
  from events at or after it. Nothing after the cut-off reaches a feature.
"""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lib.domain import sales
from lib.domain.spark import purchases

PANEL_FEATURES: tuple[str, ...] = (
    "units_1d", "units_7d", "units_14d", "units_28d", "units_56d", "units_same_weekday", "sale_days_28d",
    "sale_days_56d", "units_per_day", "sale_day_share", "views_1d", "views_7d", "views_28d", "views_56d", "carts_1d", "carts_7d", "carts_28d", "removals_7d",
    "revenue_7d", "price", "price_vs_28d", "views_trend", "days_since_last_sale", "age_days",
    "next_dow", "next_is_weekend", "shop_units_7d_vs_28d", "shop_views_7d_vs_28d",
    # smoothed level (what exponential smoothing / Croston forecast from) and intermittency (Syntetos-
    # Boylan: the mean size of a sale day and the squared coefficient of variation of the sizes)
    "units_ewm_05", "units_ewm_10", "units_ewm_20", "size_mean_56d", "size_cv2_56d",
)
# exponentially weighted means of the daily units, smoothing factor -> column; truncated after
# EWM_DAYS days (0.95^120 < 0.3 %), oldest first, starting from 0 (no look at the future)
EWM_ALPHAS: dict[str, float] = {"units_ewm_05": 0.05, "units_ewm_10": 0.10, "units_ewm_20": 0.20}
EWM_DAYS = 120
CUSTOMER_FEATURES: tuple[str, ...] = (
    "frequency", "recency", "T", "monetary_value", "orders", "total_spend", "avg_order_value",
    "spend_30d", "orders_30d", "items_per_order", "sessions", "sessions_30d", "views_30d", "carts_30d",
    "days_since_last_visit", "products_bought",
)
_SECONDS_PER_DAY = 86400.0


def daily_product_activity(silver_df: DataFrame) -> DataFrame:
    """``product_id, date, views, carts, removals, units, revenue, avg_price`` (days with events only)."""
    t = F.col("event_type")

    def n(kind: str) -> Column:
        return F.sum((t == kind).cast("long"))

    return silver_df.groupBy("product_id", F.col("event_date").alias("date")).agg(
        n("view").alias("views"), n("cart").alias("carts"), n("remove_from_cart").alias("removals"),
        n(sales.PURCHASE).alias("units"),
        F.round(F.sum(F.when(t == sales.PURCHASE, F.col(sales.PRICE)).otherwise(0.0)), sales.REVENUE_DIGITS).alias("revenue"),
        F.avg("price").alias("avg_price"),
    )


def top_products(activity_df: DataFrame, before: date, n: int) -> DataFrame:
    """The ``n`` products with the most events before ``before`` (ties: smaller id): the panel's
    products, chosen without looking at the days that will be evaluated."""
    busy = (activity_df.where(F.col("date") < F.lit(before))
            .groupBy("product_id").agg(F.sum(F.col("views") + F.col("carts") + F.col("removals") + F.col("units"))
                                       .alias("events")))
    w = Window.orderBy(F.col("events").desc(), "product_id")
    return busy.withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= n).select("product_id")


def product_day_panel(activity_df: DataFrame, products_df: DataFrame, start: date, end: date) -> DataFrame:
    """Dense panel: every product of ``products_df`` x every day in ``[start, end]``; days without
    events have zero counts and a NULL ``avg_price``."""
    days = activity_df.sparkSession.range(1).select(
        F.explode(F.sequence(F.lit(start), F.lit(end), F.expr("INTERVAL 1 DAY"))).alias("date"))
    grid = products_df.select("product_id").distinct().crossJoin(days)
    counts = ["views", "carts", "removals", "units", "revenue"]
    return grid.join(activity_df, ["product_id", "date"], "left").select(
        "product_id", "date", *[F.coalesce(F.col(c), F.lit(0)).alias(c) for c in counts], "avg_price")


def _rolling(col: str, days: int) -> Column:
    return F.sum(col).over(Window.orderBy("date").rowsBetween(-(days - 1), 0))


def _ratio(num: Column, den: Column) -> Column:
    return F.when(den > 0, num / den).otherwise(1.0)


def with_panel_features(panel_df: DataFrame, horizon: int) -> DataFrame:
    """Add :data:`PANEL_FEATURES` and the labels ``units_next_{horizon}d``, ``sold_next_1d``.

    Needs the dense panel (one row per product and day): windows count rows as days.
    """
    by_day = Window.partitionBy("product_id").orderBy("date")

    def past(col: str | Column, days: int) -> Column:
        return F.sum(col).over(by_day.rowsBetween(-(days - 1), 0))

    ahead = by_day.rowsBetween(1, horizon)
    since_start = by_day.rowsBetween(Window.unboundedPreceding, 0)
    last_price = F.last("avg_price", ignorenulls=True).over(by_day.rowsBetween(Window.unboundedPreceding, 0))
    last_sale = F.last(F.when(F.col("units") > 0, F.col("date")), ignorenulls=True).over(
        by_day.rowsBetween(Window.unboundedPreceding, 0))
    first_seen = F.first(F.when(F.col("views") + F.col("carts") + F.col("units") > 0, F.col("date")),
                         ignorenulls=True).over(by_day.rowsBetween(Window.unboundedPreceding, 0))
    next_day = F.date_add("date", 1)
    history = F.collect_list("units").over(by_day.rowsBetween(-(EWM_DAYS - 1), 0))
    size = F.when(F.col("units") > 0, F.col("units").cast("double"))
    size_56d = by_day.rowsBetween(-55, 0)

    def ewm(alpha: float) -> Column:
        return F.aggregate(history, F.lit(0.0), lambda acc, x: acc * (1.0 - alpha) + x * alpha)

    df = panel_df.select(
        "*",
        F.col("units").alias("units_1d"),
        past("units", 7).alias("units_7d"),
        past("units", 14).alias("units_14d"),
        past("units", 28).alias("units_28d"),
        past("units", 56).alias("units_56d"),
        (F.sum("units").over(since_start) / F.count(F.lit(1)).over(since_start)).alias("units_per_day"),
        F.avg(F.when(F.col("units") > 0, 1.0).otherwise(0.0)).over(since_start).alias("sale_day_share"),
        F.coalesce(F.lag("units", 6).over(by_day), F.lit(0)).alias("units_same_weekday"),
        past(F.when(F.col("units") > 0, 1).otherwise(0), 28).alias("sale_days_28d"),
        past(F.when(F.col("units") > 0, 1).otherwise(0), 56).alias("sale_days_56d"),
        F.col("views").alias("views_1d"),
        past("views", 7).alias("views_7d"),
        past("views", 28).alias("views_28d"),
        past("views", 56).alias("views_56d"),
        F.col("carts").alias("carts_1d"),
        past("carts", 7).alias("carts_7d"),
        past("carts", 28).alias("carts_28d"),
        past("removals", 7).alias("removals_7d"),
        past("revenue", 7).alias("revenue_7d"),
        F.coalesce(last_price, F.lit(0.0)).alias("price"),
        F.avg("avg_price").over(by_day.rowsBetween(-27, 0)).alias("_price_28d"),
        F.coalesce(F.datediff("date", last_sale), F.lit(999)).alias("days_since_last_sale"),
        F.coalesce(F.datediff("date", first_seen), F.lit(-1)).alias("age_days"),
        *[ewm(alpha).alias(name) for name, alpha in EWM_ALPHAS.items()],
        F.coalesce(F.avg(size).over(size_56d), F.lit(0.0)).alias("size_mean_56d"),
        F.coalesce((F.stddev(size).over(size_56d) / F.avg(size).over(size_56d)) ** 2, F.lit(0.0)).alias("size_cv2_56d"),
        F.dayofweek(next_day).alias("next_dow"),
        F.dayofweek(next_day).isin(1, 7).cast("int").alias("next_is_weekend"),
        F.when(F.count(F.lit(1)).over(ahead) == horizon, F.sum("units").over(ahead)).alias(f"units_next_{horizon}d"),
        F.when(F.lead("units", 1).over(by_day).isNotNull(),
               (F.lead("units", 1).over(by_day) > 0).cast("int")).alias("sold_next_1d"),
    )
    # the whole shop's momentum (same-day data of every panel product): lets the models follow
    # seasons and traffic swings that no single product's history shows
    shop = (panel_df.groupBy("date").agg(F.sum("units").alias("_su"), F.sum("views").alias("_sv"))
            .select("date",
                    _ratio(_rolling("_su", 7) / 7.0, _rolling("_su", 28) / 28.0).alias("shop_units_7d_vs_28d"),
                    _ratio(_rolling("_sv", 7) / 7.0, _rolling("_sv", 28) / 28.0).alias("shop_views_7d_vs_28d")))
    df = df.join(shop, "date")
    return df.select(
        "*",
        F.when(F.col("_price_28d") > 0, F.col("price") / F.col("_price_28d")).otherwise(1.0).alias("price_vs_28d"),
        ((F.col("views_7d") + 1.0) / (F.col("views_28d") / 4.0 + 1.0)).alias("views_trend"),
    ).drop("_price_28d")


# -- customers ------------------------------------------------------------------------------------------
def orders(silver_df: DataFrame) -> DataFrame:
    """Orders = purchase sessions: ``user_id, user_session, order_time`` (first purchase row),
    ``value`` (sum of the purchase rows' prices), ``items``."""
    return (purchases(silver_df)
            .groupBy("user_id", sales.ORDER_KEY)
            .agg(F.min("event_time").alias("order_time"), F.round(F.sum(sales.PRICE), sales.REVENUE_DIGITS).alias("value"),
                 F.count(F.lit(1)).alias("items")))


def _days(later: Column, earlier: Column) -> Column:
    return (F.unix_timestamp(later) - F.unix_timestamp(earlier)) / _SECONDS_PER_DAY


def customer_features(silver_df: DataFrame, cutoff: datetime, horizon: int) -> DataFrame:
    """One row per customer with at least one order before ``cutoff``: :data:`CUSTOMER_FEATURES`
    from events strictly before the cut-off, the label ``future_spend`` (orders in
    ``[cutoff, cutoff + horizon days)``) and ``naive_spend`` (spend in the ``horizon`` days before
    the cut-off: the naive forecast "the next period repeats the last one").

    RFM in the BG/NBD convention, in days: ``frequency`` = repeat orders, ``recency`` = first to last
    order, ``T`` = first order to the cut-off, ``monetary_value`` = mean value of the repeat orders
    (0 without repeat orders).
    """
    cut = F.lit(cutoff).cast("timestamp")
    end = F.lit(cutoff).cast("timestamp") + F.expr(f"INTERVAL {int(horizon)} DAYS")
    recent = cut - F.expr("INTERVAL 30 DAYS")
    before = silver_df.where(F.col("event_time") < cut)
    past_orders = orders(before)
    first_order = Window.partitionBy("user_id").orderBy("order_time", "user_session")
    rfm = (past_orders.withColumn("_n", F.row_number().over(first_order))
           .groupBy("user_id").agg(
               F.count(F.lit(1)).alias("orders"),
               F.min("order_time").alias("_first"), F.max("order_time").alias("_last"),
               F.round(F.sum("value"), 2).alias("total_spend"),
               F.sum(F.when(F.col("_n") > 1, F.col("value"))).alias("_repeat_spend"),
               F.sum("items").alias("_items"),
               F.round(F.sum(F.when(F.col("order_time") >= recent, F.col("value")).otherwise(0.0)), 2).alias("spend_30d"),
               F.sum(F.when(F.col("order_time") >= recent, 1).otherwise(0)).alias("orders_30d"),
               F.round(F.sum(F.when(F.col("order_time") >= cut - F.expr(f"INTERVAL {int(horizon)} DAYS"),
                                    F.col("value")).otherwise(0.0)), 2).alias("naive_spend"))
           .select(
               "user_id", "orders", "total_spend", "spend_30d", "orders_30d", "naive_spend",
               (F.col("orders") - 1).alias("frequency"),
               _days(F.col("_last"), F.col("_first")).alias("recency"),
               _days(cut, F.col("_first")).alias("T"),
               F.coalesce(F.col("_repeat_spend") / (F.col("orders") - 1), F.lit(0.0)).alias("monetary_value"),
               (F.col("total_spend") / F.col("orders")).alias("avg_order_value"),
               (F.col("_items") / F.col("orders")).alias("items_per_order")))
    t = F.col("event_type")
    # per session first, then per user (distinct counts over all events in one aggregate make Spark
    # expand every event into a row per distinct count before its shuffle); the same figures
    per_session = before.groupBy("user_id", "user_session").agg(
        F.max("event_time").alias("_last"),
        F.sum(((t == "view") & (F.col("event_time") >= recent)).cast("long")).alias("_views"),
        F.sum(((t == "cart") & (F.col("event_time") >= recent)).cast("long")).alias("_carts"))
    behaviour = per_session.groupBy("user_id").agg(
        F.count("user_session").alias("sessions"),  # NULL sessions not counted, as count(DISTINCT) does not
        F.count(F.when(F.col("_last") >= recent, F.col("user_session"))).alias("sessions_30d"),
        F.sum("_views").alias("views_30d"),
        F.sum("_carts").alias("carts_30d"),
        _days(cut, F.max("_last")).alias("days_since_last_visit"),
    ).join(purchases(before).groupBy("user_id").agg(F.countDistinct("product_id").alias("products_bought")),
           "user_id", "left").withColumn("products_bought", F.coalesce("products_bought", F.lit(0)))
    future = (orders(silver_df.where((F.col("event_time") >= cut) & (F.col("event_time") < end)))
              .groupBy("user_id").agg(F.round(F.sum("value"), 2).alias("future_spend")))
    return (rfm.join(behaviour, "user_id", "left").join(future, "user_id", "left")
            .select("user_id", *CUSTOMER_FEATURES, "naive_spend",
                    F.coalesce(F.col("future_spend"), F.lit(0.0)).alias("future_spend")))
