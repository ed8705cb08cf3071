"""Test oracle: the real-time gold sales tables recomputed from silver with Spark, in full.

The streaming lakehouse builds these tables incrementally on the driver (``lib.domain.sales`` increments,
merged by ``lib.serving``); the tests assert that the result equals this recomputation over the same
silver rows. Written out plainly (not from ``lib.domain``) so that it checks the definitions instead of
repeating them: a sale is a silver ``purchase`` row; per product and minute ``units`` = purchase rows,
``revenue`` = their prices summed and rounded to cents, ``orders`` = distinct purchase sessions; daily and
per-minute totals sum the per-minute rows.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def sales_per_minute(silver_df: DataFrame, now: Column | None = None) -> DataFrame:
    """Per product and minute: units, revenue, orders (+ brand/category for display)."""
    return (
        silver_df.where(F.col("event_type") == "purchase")
        .groupBy("product_id", F.date_trunc("minute", "event_time").alias("window_start"))
        .agg(
            F.count(F.lit(1)).alias("units"),
            F.round(F.sum("price"), 2).alias("revenue"),
            F.count_distinct("user_session").alias("orders"),
            F.max("brand").alias("brand"),
            F.max("category_code").alias("category_code"),
        )
        .withColumn("updated_at", now if now is not None else F.current_timestamp())
    )


def sales_daily(per_minute_df: DataFrame, now: Column | None = None) -> DataFrame:
    """Per product and day, from the per-minute table: running totals for the day."""
    return (
        per_minute_df.groupBy("product_id", F.to_date("window_start").alias("sale_date"))
        .agg(
            F.sum("units").alias("units"),
            F.round(F.sum("revenue"), 2).alias("revenue"),
            F.sum("orders").alias("orders"),
            F.max("brand").alias("brand"),
            F.max("category_code").alias("category_code"),
            F.min("window_start").alias("first_sale_minute"),
            F.max("window_start").alias("last_sale_minute"),
        )
        .withColumn("updated_at", now if now is not None else F.current_timestamp())
    )


def revenue_per_minute(per_minute_df: DataFrame, now: Column | None = None) -> DataFrame:
    """All products together, per minute."""
    return (
        per_minute_df.groupBy("window_start")
        .agg(
            F.sum("units").alias("units"),
            F.round(F.sum("revenue"), 2).alias("revenue"),
            F.sum("orders").alias("orders"),
            F.count(F.lit(1)).alias("products"),
        )
        .withColumn("updated_at", now if now is not None else F.current_timestamp())
    )
