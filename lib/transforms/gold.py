"""Silver -> gold real-time sales tables (pure functions; Delta IO in lib/lakehouse.py).

Definitions (the same for streaming and batch recomputation, so both agree exactly):
* a **sale** is a silver ``purchase`` event; ``units`` = number of purchase events (the dataset has
  one row per unit line), ``revenue`` = sum of their prices;
* ``orders`` per (product, minute) = distinct purchase sessions buying that product in that minute;
  daily ``orders`` = the sum of the product's per-minute orders.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

MINUTE_KEY = ["product_id", "window_start"]
DAILY_KEY = ["product_id", "sale_date"]


def purchases(silver_df: DataFrame) -> DataFrame:
    return silver_df.where(F.col("event_type") == "purchase")


def sales_per_minute(silver_df: DataFrame, now: Column | None = None) -> DataFrame:
    """Per product and minute: units, revenue, orders (+ brand/category for display)."""
    return (
        purchases(silver_df)
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
