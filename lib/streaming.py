"""Starting the streaming queries of the one streaming app (each with its own checkpoint).

Jobs call :func:`start_queries`; each ``start_*`` function wires a source, a pure transformation
and a Delta sink, so the logic stays testable and the job stays thin.
"""

from __future__ import annotations

import json
import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from lib.config import Config
from lib.lakehouse import Lakehouse
from lib.sources import read_events_stream
from lib.transforms.bronze import BRONZE_PARTITION, with_bronze_columns

QUERY_NAMES = ("bronze", "lakehouse")
log = logging.getLogger("shop.lakehouse")


def start_bronze(spark: SparkSession, cfg: Config, raw_df: DataFrame | None = None) -> StreamingQuery:
    """Kafka -> bronze Delta table (append; exactly once through the checkpoint + Delta txn log)."""
    raw_df = raw_df if raw_df is not None else read_events_stream(spark, cfg)
    return (
        raw_df.transform(with_bronze_columns)
        .writeStream.format("delta")
        .queryName("bronze")
        .outputMode("append")
        .partitionBy(BRONZE_PARTITION)
        .option("checkpointLocation", cfg.lake.checkpoint("bronze"))
        .trigger(processingTime=f"{cfg.streaming.bronze_trigger_seconds} seconds")
        .start(cfg.lake.table("bronze", "events"))
    )


def checkpoint_query_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query id Spark keeps in ``<checkpoint>/metadata`` (stable across restarts,
    new when the checkpoint is reset) — used as the Delta transaction app id of foreachBatch writes."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"{checkpoint.rstrip('/')}/metadata")
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(fs.open(path), "UTF-8"))
    try:
        return json.loads(reader.readLine())["id"]
    finally:
        reader.close()


def start_lakehouse(spark: SparkSession, cfg: Config, raw_df: DataFrame | None = None) -> StreamingQuery:
    """Kafka -> silver + quarantine + gold + ops, one foreachBatch per micro-batch (lib.lakehouse)."""
    lake = Lakehouse(cfg)
    lake.ensure_tables(spark)
    checkpoint = cfg.lake.checkpoint("lakehouse")
    app_ids: dict[str, str] = {}

    def process_batch(batch_df: DataFrame, batch_id: int) -> None:
        if "id" not in app_ids:
            app_ids["id"] = f"lakehouse-{checkpoint_query_id(batch_df.sparkSession, checkpoint)}"
        t0 = time.monotonic()
        r = lake.process(batch_df, batch_id, app_ids["id"])
        log.info("batch %d: read %d, valid %d, quarantined %d, duplicates %d, sales keys %d in %.1f s %s",
                 batch_id, r.read, r.valid, r.quarantined, r.duplicates, r.sales_rows, time.monotonic() - t0,
                 r.seconds)

    raw_df = raw_df if raw_df is not None else read_events_stream(spark, cfg)
    return (
        raw_df.transform(with_bronze_columns)
        .writeStream.queryName("lakehouse")
        .foreachBatch(process_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime=f"{cfg.streaming.trigger_seconds} seconds")
        .start()
    )


STARTERS = {"bronze": start_bronze, "lakehouse": start_lakehouse}


def start_queries(spark: SparkSession, cfg: Config, names: tuple[str, ...] = QUERY_NAMES) -> list[StreamingQuery]:
    return [STARTERS[name](spark, cfg) for name in names]
