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
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib import delta_io
from lib.config import Config
from lib.quality import RuleSet, load_rules, with_reasons
from lib.recent_silver import RecentSilver, naive_utc
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
        self.recent = RecentSilver(cfg.streaming.dedupe_index_minutes)
        self.serving = ServingTables(self.path, cfg.gold.top_window_minutes, cfg.gold.top_k)

    # small batches (the live stream) are finished on the driver: quarantine, ops and silver appended
    # with delta-rs (~0.1 s instead of ~1-5 s for a Spark commit), duplicates found in an in-memory
    # index of silver's recent minutes; larger ones (backfill, catch-up after downtime) stay in Spark.
    # Both paths record the same Delta app transaction per table and give the same rows.
    DRIVER_APPEND_MAX_ROWS = 50_000
    SILVER_INDEX_COLUMNS = ["event_key", "event_type", "product_id", "event_time", "user_session"]

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
        except BaseException:
            self.recent.invalidate()  # a retry must not trust what this attempt indexed
            raise
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
            F.max("kafka_timestamp").alias("broker_max"),
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
        new_n, sales_rows, cleanup, committed = 0, 0, [], None
        if valid_n:
            candidates = to_silver(judged.where(valid_flag), load_id)
            lo = stats["tmin"].replace(second=0, microsecond=0)  # whole minutes: gold needs them
            if valid_n <= self.DRIVER_APPEND_MAX_ROWS:
                new_n, increments, append, committed = self._dedupe_on_driver(
                    spark, candidates, lo, load_id, app_id, batch_id)
            else:
                self.recent.invalidate()  # silver grows behind the index's back: reload it next time
                new_n, increments, append, cleanup = self._dedupe_in_spark(
                    spark, candidates, lo, stats["tmax"], load_id, app_id, batch_id)
            clock.lap("dedupe")
            sales_rows = len(increments)
            # Sales first: the dashboard sees them before the (slower) archive appends finish.
            # Safe on retry: each serving table records the batch, silver dedup ignores this load_id.
            self.serving.apply(increments, app_id, batch_id)
            clock.lap("gold")
            writes.append(append)

        duplicates = valid_n - new_n
        ops = ops_row(batch_id, load_id, read, new_n, quarantined_n, duplicates, rule_counts,
                      stats["tmin"], stats["tmax"])
        try:
            # independent tables: commit them in parallel (Spark runs concurrent jobs fine)
            with ThreadPoolExecutor(max_workers=max(len(writes), 1)) as pool:
                for fut in [pool.submit(w) for w in writes]:
                    fut.result()
            if committed is not None:
                self.recent.add(committed)  # only what silver now holds
                self.recent.evict(stats["broker_max"])
            # ops last: a batch's ops row means every table of that batch is committed
            append_once(self.path["ops/quality_batches"], ops, app_id, batch_id)
            clock.lap("appends")
        finally:
            for df in cleanup:
                df.unpersist()
        return BatchResult(batch_id, read, new_n, quarantined_n, duplicates, sales_rows, clock.laps)

    SALES_COLUMNS = ["product_id", "event_time", "user_session", "price", "brand", "category_code"]

    def _dedupe_on_driver(self, spark, candidates: DataFrame, lo, load_id: str, app_id: str, batch_id: int):
        """Small batch: collect its silver rows once, drop duplicates (inside the batch: lowest Kafka
        position wins; against silver: the recent-rows index), compute the sales increments."""
        rows = candidates.toArrow()
        self.recent.cover(lo, lambda a, b: self._load_silver(spark, load_id, a, b))
        keys = rows.select(["event_key", "event_time", "topic", "partition", "offset"]).to_pandas()
        keys["event_time"] = naive_utc(keys["event_time"])
        first = ~keys.sort_values(["topic", "partition", "offset"]).duplicated("event_key").sort_index()
        keep = first & ~self.recent.seen(keys["event_key"], keys["event_time"])
        new = rows.filter(pa.array(keep.to_numpy()))
        buys = new.filter(pc.equal(new["event_type"], "purchase")).select(self.SALES_COLUMNS).to_pandas()
        buys["event_time"] = naive_utc(buys["event_time"])
        earlier = self.recent.earlier_purchases(sorted(set(buys["event_time"].dt.floor("min"))))
        increments = sales_increments(buys, earlier)
        append = lambda: append_once(self.path["silver/events"], new, app_id, batch_id)  # noqa: E731
        return new.num_rows, increments, append, new.select(self.SILVER_INDEX_COLUMNS)

    def _load_silver(self, spark, load_id: str, lo, hi) -> pa.Table:
        """Silver rows with lo <= event_time < hi (hi None: all later), other loads only."""
        df = (spark.read.format("delta").load(self.path["silver/events"])
              .where(F.col("event_date") >= lo.date()).where(F.col("event_time") >= lo)
              .where(F.col("load_id") != load_id))
        if hi is not None:
            df = df.where(F.col("event_date") <= hi.date()).where(F.col("event_time") < hi)
        return df.select(*self.SILVER_INDEX_COLUMNS).toArrow()

    def _dedupe_in_spark(self, spark, candidates: DataFrame, lo, tmax, load_id: str, app_id: str, batch_id: int):
        """Large batch (backfill): the same duplicate removal as Spark joins against silver."""
        hi = tmax.replace(second=0, microsecond=0) + timedelta(minutes=1)  # whole minutes, as gold
        earlier = (
            spark.read.format("delta").load(self.path["silver/events"])
            .where(F.col("event_date").between(lo.date(), hi.date()))
            .where((F.col("event_time") >= lo) & (F.col("event_time") < hi))
            .where(F.col("load_id") != load_id)
            .select(*self.SILVER_INDEX_COLUMNS)
        ).persist()
        new = drop_seen(drop_duplicates_within(candidates), earlier).persist()
        new_n = new.count()
        cols = self.SALES_COLUMNS
        increments = sales_increments(gold.purchases(new).select(*cols).toPandas(),
                                      gold.purchases(earlier).select(*cols[:3]).toPandas())
        append = lambda: delta_io.append(new, self.path["silver/events"], app_id=app_id, version=batch_id,  # noqa: E731
                                         partition_by=TABLE_PARTITIONS["silver/events"])
        return new_n, increments, append, [new, earlier]
