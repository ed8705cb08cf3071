"""The Spark form of the rules of :mod:`lib.domain` (batch tables, the Spark path of the lakehouse, the
backfill), built from the same constants as their driver-side forms. The only module of the package
that imports Spark (the dashboard imports the others)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lib.domain import dedupe, sales


# -- purchases and sales --------------------------------------------------------------------------------------
def purchases(silver_df: DataFrame) -> DataFrame:
    """The purchase rows of silver events (:data:`lib.domain.sales.PURCHASE`)."""
    return silver_df.where(F.col("event_type") == sales.PURCHASE)


def minute_of(event_time: str | Column = "event_time") -> Column:
    """The sale minute (``window_start``) of an event time."""
    return F.date_trunc("minute", event_time)


def sale_measures() -> list[Column]:
    """``units``, ``revenue``, ``orders`` of the purchase rows of a group (see :mod:`lib.domain.sales`)."""
    return [
        F.count(F.lit(1)).alias(sales.UNITS),
        F.round(F.sum(sales.PRICE), sales.REVENUE_DIGITS).alias(sales.REVENUE),
        F.count_distinct(sales.ORDER_KEY).alias(sales.ORDERS),
    ]


# -- exact duplicates -----------------------------------------------------------------------------------------
def event_key(*cols: str) -> Column:
    """Identity of an event for exact-duplicate detection (:data:`lib.domain.dedupe.KEY`): a hash over all
    event fields (:data:`lib.domain.dedupe.KEY_FIELDS`)."""
    parts = [F.coalesce(F.col(c).cast("string"), F.lit("\u0000")) for c in (cols or dedupe.KEY_FIELDS)]
    return F.md5(F.concat_ws("\u0001", *parts))


def drop_duplicates_within(silver_df: DataFrame, *, by_day: bool = False) -> DataFrame:
    """Exact duplicates inside one batch -> one row each (:data:`lib.domain.dedupe.FIRST_WINS`).

    ``by_day``: group by ``event_date`` too. The same groups (the key covers the event time, so copies
    share their day), but rows already partitioned by day need no shuffle by key, and they come out
    sorted by day, as a partitioned write wants them."""
    w = Window.partitionBy(*(["event_date"] if by_day else []), dedupe.KEY).orderBy(*dedupe.FIRST_WINS)
    return silver_df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def drop_seen(silver_df: DataFrame, earlier_silver_df: DataFrame) -> DataFrame:
    """Rows whose exact duplicate is already in silver (``earlier_silver_df``: candidate rows)."""
    seen = earlier_silver_df.select(dedupe.KEY).distinct()
    return silver_df.join(seen, dedupe.KEY, "left_anti")
