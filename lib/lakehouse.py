"""One micro-batch (or backfill chunk) of bronze-shaped rows -> silver, quarantine, gold, ops.

Streaming calls :meth:`Lakehouse.process` from ``foreachBatch``; the batch backfill calls the same
method with CSV rows shaped like bronze. Every input row ends up in exactly one of: silver, quarantine
(with its reasons), or the duplicate count of ops — ``read = valid + quarantined + duplicates``.

Retry safety: appends carry Delta transaction ids (app id + batch id), gold is *recomputed* for the
keys a batch touched (not incremented), and duplicate detection ignores rows of the batch itself, so
re-running a batch after a crash at any point gives the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib import delta_io
from lib.config import Config
from lib.quality import RuleSet, load_rules, with_reasons
from lib.schema import TABLE_DDL, TABLE_PARTITIONS, table_schema
from lib.transforms import gold
from lib.transforms.silver import drop_duplicates_within, drop_seen, parse_events, to_quarantine, to_silver


@dataclass(frozen=True)
class BatchResult:
    batch_id: int
    read: int
    valid: int
    quarantined: int
    duplicates: int
    sales_rows: int

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class Lakehouse:
    """Paths and the per-batch processing of the lakehouse tables for one config."""

    def __init__(self, cfg: Config, rules: RuleSet | None = None):
        self.cfg = cfg
        self.rules = rules or load_rules()
        self.path = {name: cfg.lake.table(*name.split("/")) for name in TABLE_DDL}
        self.top_window_minutes = cfg.gold.top_window_minutes
        self.top_k = cfg.gold.top_k

    def ensure_tables(self, spark: SparkSession) -> None:
        for name, path in self.path.items():
            delta_io.ensure_table(spark, path, table_schema(name), TABLE_PARTITIONS.get(name, ()))

    # -- the batch ------------------------------------------------------------------------------
    def process(self, bronze_df: DataFrame, batch_id: int, app_id: str) -> BatchResult:
        """Process bronze-shaped rows (bronze schema: key, value, topic, partition, offset,
        kafka_timestamp, ingest_time) as batch ``batch_id`` of the writer ``app_id``."""
        spark = bronze_df.sparkSession
        load_id = f"{app_id}:{batch_id}"
        judged = with_reasons(parse_events(bronze_df), self.rules).persist()
        try:
            return self._process(spark, judged, batch_id, app_id, load_id)
        finally:
            judged.unpersist()

    def _process(self, spark, judged: DataFrame, batch_id: int, app_id: str, load_id: str) -> BatchResult:
        valid_flag = F.size("reasons") == 0
        stats = judged.agg(
            F.count(F.lit(1)).alias("read"),
            F.sum(valid_flag.cast("long")).alias("valid"),
            F.min(F.when(valid_flag, F.col("event_time"))).alias("tmin"),
            F.max(F.when(valid_flag, F.col("event_time"))).alias("tmax"),
        ).first()
        read, valid_n = int(stats["read"]), int(stats["valid"] or 0)
        if read == 0:
            return BatchResult(batch_id, 0, 0, 0, 0, 0)
        rule_counts = {r["reason"]: int(r["n"]) for r in
                       judged.select(F.explode("reasons").alias("reason")).groupBy("reason")
                       .agg(F.count(F.lit(1)).alias("n")).collect()}

        quarantined_n = read - valid_n
        if quarantined_n:
            bad = judged.where(~valid_flag)
            delta_io.append(to_quarantine(bad, load_id), self.path["quarantine/events"],
                            app_id=app_id, version=batch_id)

        new_n, sales_rows = 0, 0
        if valid_n:
            candidates = drop_duplicates_within(to_silver(judged.where(valid_flag), load_id))
            earlier = (
                spark.read.format("delta").load(self.path["silver/events"])
                .where(F.col("event_time").between(stats["tmin"], stats["tmax"]))
                .where(F.col("event_date").between(stats["tmin"].date(), stats["tmax"].date()))
                .where(F.col("load_id") != load_id)
            )
            new = drop_seen(candidates, earlier).persist()
            try:
                new_n = new.count()
                delta_io.append(new, self.path["silver/events"], app_id=app_id, version=batch_id,
                                partition_by=TABLE_PARTITIONS["silver/events"])
                sales_rows = self._refresh_gold(spark, new)
            finally:
                new.unpersist()

        duplicates = valid_n - new_n
        ops = spark.createDataFrame(
            [(batch_id, load_id, read, new_n, quarantined_n, duplicates, rule_counts, stats["tmin"], stats["tmax"])],
            "batch_id BIGINT, load_id STRING, read BIGINT, valid BIGINT, quarantined BIGINT, duplicates BIGINT, "
            "quarantined_by_rule MAP<STRING, BIGINT>, min_event_time TIMESTAMP, max_event_time TIMESTAMP",
        ).withColumn("processed_at", F.current_timestamp())
        delta_io.append(ops.select(*[f.name for f in table_schema("ops/quality_batches").fields]),
                        self.path["ops/quality_batches"], app_id=app_id, version=batch_id)
        return BatchResult(batch_id, read, new_n, quarantined_n, duplicates, sales_rows)

    # -- gold -----------------------------------------------------------------------------------
    def _refresh_gold(self, spark: SparkSession, new_silver: DataFrame) -> int:
        """Recompute the gold rows of every (product, minute) this batch sold in."""
        touched = (gold.purchases(new_silver)
                   .select("product_id", F.date_trunc("minute", "event_time").alias("window_start"))
                   .distinct().persist())
        try:
            span = touched.agg(F.min("window_start").alias("lo"), F.max("window_start").alias("hi")).first()
            if span["lo"] is None:
                return 0
            lo, hi = span["lo"], span["hi"]
            silver = spark.read.format("delta").load(self.path["silver/events"])
            window_silver = silver.where(
                (F.col("event_type") == "purchase")
                & (F.col("event_date").between(lo.date(), hi.date()))
                & (F.col("event_time") >= F.lit(lo))
                & (F.col("event_time") < F.lit(hi) + F.expr("INTERVAL 1 MINUTE"))
            )
            per_minute = gold.sales_per_minute(window_silver).join(touched, gold.MINUTE_KEY, "left_semi")
            lo_s = lo.strftime("%Y-%m-%d %H:%M:%S")
            delta_io.upsert(spark, per_minute, self.path["gold/sales_per_minute"], gold.MINUTE_KEY,
                            prune=f"t.window_start >= TIMESTAMP '{lo_s}'")
            n = touched.count()

            minutes_table = spark.read.format("delta").load(self.path["gold/sales_per_minute"])
            minutes = touched.select("window_start").distinct()
            recent = minutes_table.where(F.col("window_start") >= F.lit(lo))
            delta_io.upsert(spark, gold.revenue_per_minute(recent.join(minutes, "window_start", "left_semi")),
                            self.path["gold/revenue_per_minute"], ["window_start"],
                            prune=f"t.window_start >= TIMESTAMP '{lo_s}'")

            days = touched.select("product_id", F.to_date("window_start").alias("sale_date")).distinct()
            day_lo = lo.strftime("%Y-%m-%d")
            same_days = minutes_table.where(F.col("window_start") >= F.lit(lo.replace(hour=0, minute=0, second=0)))
            daily = gold.sales_daily(same_days).join(days, gold.DAILY_KEY, "left_semi")
            delta_io.upsert(spark, daily, self.path["gold/sales_daily"], gold.DAILY_KEY,
                            prune=f"t.sale_date >= DATE '{day_lo}'")

            as_of = minutes_table.agg(F.max("window_start")).first()[0]
            top = gold.top_products(
                minutes_table.where(F.col("window_start") > F.lit(as_of) - F.expr(f"INTERVAL {self.top_window_minutes} MINUTES")),
                self.top_window_minutes, self.top_k, F.lit(as_of),
            )
            delta_io.overwrite(top, self.path["gold/top_products"])
            return n
        finally:
            touched.unpersist()
