"""Does the email work? Mailed vs control: purchase within N days of the cart's expiry, and revenue.

Both arms are anchored at the abandoned cart's expiry (the control group gets no email, so "after the
email" would not be comparable). A purchase by the user in (expired_at, expired_at + N days] converts
the cart; its revenue is the sum of those purchases. ``as_of`` is the latest event time in silver:
carts whose window has not fully elapsed yet are counted but flagged (``window_complete_carts``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ARMS = {"sent": "mailed", "control": "control"}


def uplift_report(decisions: DataFrame, silver: DataFrame, *, window_days: int = 7) -> DataFrame:
    """``retarget/decisions`` + ``silver/events`` -> one row per arm (``gold/retarget_uplift``)."""
    arm = F.create_map(*[F.lit(x) for kv in ARMS.items() for x in kv])[F.col("decision")]
    carts = (decisions.where(F.col("decision").isin(*ARMS))
             .select("user_session", "user_id", "expired_at", arm.alias("arm")))
    buys = silver.where(F.col("event_type") == "purchase").select(
        F.col("user_id").alias("buyer"), F.col("event_time").alias("bought_at"), "price")
    as_of = silver.agg(F.max("event_time").alias("as_of"))
    window = F.make_dt_interval(days=F.lit(window_days))
    joined = carts.join(buys, (carts.user_id == buys.buyer) & (buys.bought_at > carts.expired_at)
                        & (buys.bought_at <= carts.expired_at + window), "left")
    per_cart = (joined.groupBy("user_session", "user_id", "expired_at", "arm")
                .agg(F.count("bought_at").alias("purchases"), F.coalesce(F.sum("price"), F.lit(0.0)).alias("revenue"))
                .crossJoin(as_of))
    per_arm = per_cart.groupBy("arm").agg(
        F.count("*").alias("carts"),
        F.countDistinct("user_id").alias("users"),
        F.sum(F.when(F.col("purchases") > 0, 1).otherwise(0)).cast("long").alias("converted_carts"),
        F.round(F.sum("revenue"), 2).alias("revenue_7d"),
        F.sum(F.when(F.col("expired_at") + window <= F.col("as_of"), 1).otherwise(0)).cast("long")
        .alias("window_complete_carts"),
        F.max("as_of").alias("as_of"),
    ).withColumn("conversion_rate", F.col("converted_carts") / F.col("carts")) \
     .withColumn("revenue_per_cart", F.col("revenue_7d") / F.col("carts"))
    control = per_arm.where(F.col("arm") == "control").select(
        F.col("conversion_rate").alias("c_rate"), F.col("revenue_per_cart").alias("c_rpc"))
    mailed_only = F.col("arm") == "mailed"
    return (
        per_arm.join(control, how="left")  # one control row at most: a cross join with 0/1 rows
        .select(
            "arm", "carts", "users", "converted_carts", "conversion_rate", "revenue_7d", "revenue_per_cart",
            F.when(mailed_only, F.round((F.col("conversion_rate") - F.col("c_rate")) * 100, 2)).alias("uplift_pp"),
            F.when(mailed_only, F.round((F.col("revenue_per_cart") - F.col("c_rpc")) * F.col("carts"), 2))
            .alias("incremental_revenue"),
            "window_complete_carts", "as_of", F.current_timestamp().alias("computed_at"),
        )
    )


TABLE = "gold/retarget_uplift"


def run(spark, cfg, window_days: int = 7) -> dict:
    """The ``retarget_uplift`` batch stage: ``gold/retarget_uplift`` recomputed (overwrite) from
    ``retarget/decisions`` and ``silver/events``. A lake without them yet (nothing decided: a
    batch-only lake, or before the streaming app ran) is reported, not an error, and no source table
    is created."""
    from delta.tables import DeltaTable

    from lib import delta_io
    from lib.schema import table_schema

    root = cfg.lake.root.rstrip("/")
    decisions_path, silver_path, out = f"{root}/retarget/decisions", f"{root}/silver/events", f"{root}/{TABLE}"
    missing = [name for path, name in ((decisions_path, "retarget/decisions"), (silver_path, "silver/events"))
               if not DeltaTable.isDeltaTable(spark, path)]
    if missing:
        print(f"[uplift] nothing to compare yet: no {' and no '.join(missing)} in the lake {root} "
              f"(the streaming app writes them: make demo)")
        return {"arms": {}, "skipped": f"no {' and no '.join(missing)}"}
    delta_io.ensure_table(spark, out, table_schema(TABLE))
    report = uplift_report(spark.read.format("delta").load(decisions_path),
                           spark.read.format("delta").load(silver_path), window_days=window_days)
    report.select(*table_schema(TABLE).fieldNames()).write.format("delta").mode("overwrite") \
        .option("overwriteSchema", "true").save(out)
    rows = spark.read.format("delta").load(out).collect()
    for r in rows:
        print(f"[uplift] {r.arm}: {r.carts} carts, {r.converted_carts} converted, revenue {r.revenue_7d}")
    if not rows:
        print("[uplift] no decided carts yet: the table is empty")
    return {"arms": {r.arm: {"carts": r.carts, "converted_carts": r.converted_carts, "revenue_7d": r.revenue_7d}
                     for r in rows}}
