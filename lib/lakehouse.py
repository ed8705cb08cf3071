"""One micro-batch (or backfill chunk) of bronze-shaped rows -> silver, quarantine, gold, ops.

Streaming calls :meth:`Lakehouse.process` from ``foreachBatch``; the batch backfill calls the same
method with CSV rows shaped like bronze. Every input row ends up in exactly one of: silver, quarantine
(with its reasons), or the duplicate count of ops — ``read = valid + quarantined + duplicates``.

Retry safety: appends carry Delta transaction ids (app id + batch id), gold is *recomputed* for the
keys a batch touched (not incremented), and duplicate detection ignores rows of the batch itself, so
re-running a batch after a crash at any point gives the same tables.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib import delta_io
from lib.config import Config
from lib.quality import RuleSet, load_rules, with_reasons
from lib.schema import TABLE_DDL, TABLE_PARTITIONS, table_schema
from lib.serving import ServingTables, append_once, sales_increments
from lib.transforms import gold
from lib.transforms.silver import drop_duplicates_within, drop_seen, parse_events, to_quarantine, to_silver


def ops_row(batch_id: int, load_id: str, read: int, valid: int, quarantined: int, duplicates: int,
            rule_counts: dict[str, int], tmin, tmax) -> pa.Table:
    """The ``ops/quality_batches`` row of one batch."""
    utc = timezone.utc
    ts = pa.timestamp("us", tz="UTC")
    return pa.table({
        "batch_id": pa.array([batch_id], pa.int64()),
        "load_id": [load_id],
        "processed_at": pa.array([datetime.now(utc)], ts),
        "read": pa.array([read], pa.int64()),
        "valid": pa.array([valid], pa.int64()),
        "quarantined": pa.array([quarantined], pa.int64()),
        "duplicates": pa.array([duplicates], pa.int64()),
        "quarantined_by_rule": pa.array([list(rule_counts.items())], pa.map_(pa.string(), pa.int64())),
        # Spark hands back naive datetimes in the session time zone (UTC)
        "min_event_time": pa.array([tmin.replace(tzinfo=utc) if tmin else None], ts),
        "max_event_time": pa.array([tmax.replace(tzinfo=utc) if tmax else None], ts),
    })


class _Stopwatch:
    def __init__(self):
        self.t = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.t, 2)
        self.t = now


@dataclass(frozen=True)
class BatchResult:
    batch_id: int
    read: int
    valid: int
    quarantined: int
    duplicates: int
    sales_rows: int
    seconds: dict = field(default_factory=dict)  # wall time per stage

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class Lakehouse:
    """Paths and the per-batch processing of the lakehouse tables for one config."""

    def __init__(self, cfg: Config, rules: RuleSet | None = None):
        self.cfg = cfg
        self.rules = rules or load_rules()
        self.path = {name: cfg.lake.table(*name.split("/")) for name in TABLE_DDL}
        self.top_k = cfg.gold.top_k
        self._started: set[str] = set()
        self.serving = ServingTables(self.path, cfg.gold.top_window_minutes, cfg.gold.top_k)

    # quarantine and ops are appended from the driver with delta-rs below this many rows (~0.1 s
    # instead of ~1 s for a Spark commit); both paths record the same Delta app transaction
    DRIVER_APPEND_MAX_ROWS = 50_000

    def forget(self, spark: SparkSession, load_id: str) -> None:
        """Delete the silver rows a (crashed) attempt of ``load_id`` appended; a no-op when there are
        none (data skipping on ``load_id`` leaves every file out). Quarantine, ops and gold commits
        carry app transactions instead and are skipped when already there."""
        delta_io.delete_where(spark, self.path["silver/events"], F.col("load_id") == load_id)

    def ensure_tables(self, spark: SparkSession) -> None:
        for name, path in self.path.items():
            delta_io.ensure_table(spark, path, table_schema(name), TABLE_PARTITIONS.get(name, ()))

    # -- the batch ------------------------------------------------------------------------------
    def process(self, bronze_df: DataFrame, batch_id: int, app_id: str) -> BatchResult:
        """Process bronze-shaped rows (bronze schema: key, value, topic, partition, offset,
        kafka_timestamp, ingest_time) as batch ``batch_id`` of the writer ``app_id``."""
        spark = bronze_df.sparkSession
        load_id = f"{app_id}:{batch_id}"
        if app_id not in self._started:
            # Only the first batch a process runs for a writer can be a retry (a failing batch stops
            # the query, a restart re-runs it): undo whatever a crashed attempt appended, then
            # proceed. Later batches skip this — cheaper than a Delta txn lookup per append.
            self.forget(spark, load_id)
            self._started.add(app_id)
        judged = with_reasons(parse_events(bronze_df), self.rules).persist()
        try:
            return self._process(spark, judged, batch_id, app_id, load_id)
        finally:
            judged.unpersist()

    def _process(self, spark, judged: DataFrame, batch_id: int, app_id: str, load_id: str) -> BatchResult:
        clock = _Stopwatch()
        valid_flag = F.size("reasons") == 0
        rule_names = [r.name for r in self.rules.active]
        stats = judged.agg(
            F.count(F.lit(1)).alias("read"),
            F.sum(valid_flag.cast("long")).alias("valid"),
            F.min(F.when(valid_flag, F.col("event_time"))).alias("tmin"),
            F.max(F.when(valid_flag, F.col("event_time"))).alias("tmax"),
            *[F.sum(F.array_contains("reasons", name).cast("long")).alias(f"rule_{i}")
              for i, name in enumerate(rule_names)],
        ).first()  # one job for every count of the batch
        clock.lap("validate")
        read, valid_n = int(stats["read"]), int(stats["valid"] or 0)
        if read == 0:
            return BatchResult(batch_id, 0, 0, 0, 0, 0, clock.laps)
        rule_counts = {name: int(stats[f"rule_{i}"]) for i, name in enumerate(rule_names) if stats[f"rule_{i}"]}

        quarantined_n = read - valid_n
        writes = []  # the appends of this batch, run concurrently once gold is out
        if quarantined_n:
            bad = to_quarantine(judged.where(~valid_flag), load_id)
            if quarantined_n <= self.DRIVER_APPEND_MAX_ROWS:  # the usual case: a handful of rows
                writes.append(lambda: append_once(self.path["quarantine/events"], bad.toArrow(), app_id, batch_id))
            else:  # a flood of bad input: let Spark write it (same exactly-once app transaction)
                writes.append(lambda: delta_io.append(bad, self.path["quarantine/events"],
                                                      app_id=app_id, version=batch_id))
        new_n, sales_rows = 0, 0
        new = earlier = None
        if valid_n:
            candidates = drop_duplicates_within(to_silver(judged.where(valid_flag), load_id))
            lo = stats["tmin"].replace(second=0, microsecond=0)  # whole minutes: gold needs them
            earlier = (
                spark.read.format("delta").load(self.path["silver/events"])
                .where(F.col("event_date").between(lo.date(), stats["tmax"].date()))
                .where(F.col("event_time").between(lo, stats["tmax"]))
                .where(F.col("load_id") != load_id)
                .select("event_key", "event_type", "product_id", "event_time", "user_session")
            ).persist()
            new = drop_seen(candidates, earlier).persist()
            new_n = new.count()
            clock.lap("dedupe")
            # Sales first: the dashboard sees them before the (slower) archive appends finish.
            # Safe on retry: each serving table records the batch, silver dedup ignores this load_id.
            cols = ["product_id", "event_time", "user_session", "price", "brand", "category_code"]
            increments = sales_increments(gold.purchases(new).select(*cols).toPandas(),
                                          gold.purchases(earlier).select(*cols[:3]).toPandas())
            sales_rows = len(increments)
            clock.lap("increments")
            self.serving.apply(increments, app_id, batch_id)
            clock.lap("gold")
            writes.append(lambda: delta_io.append(new, self.path["silver/events"],
                                                  partition_by=TABLE_PARTITIONS["silver/events"]))

        duplicates = valid_n - new_n
        ops = ops_row(batch_id, load_id, read, new_n, quarantined_n, duplicates, rule_counts,
                      stats["tmin"], stats["tmax"])
        try:
            # independent tables: commit them in parallel (Spark runs concurrent jobs fine)
            with ThreadPoolExecutor(max_workers=max(len(writes), 1)) as pool:
                for fut in [pool.submit(w) for w in writes]:
                    fut.result()
            # ops last: a batch's ops row means every table of that batch is committed
            append_once(self.path["ops/quality_batches"], ops, app_id, batch_id)
            clock.lap("appends")
        finally:
            for df in (new, earlier):
                if df is not None:
                    df.unpersist()
        return BatchResult(batch_id, read, new_n, quarantined_n, duplicates, sales_rows, clock.laps)

