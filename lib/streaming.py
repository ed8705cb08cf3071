"""Starting the streaming queries of the one streaming app (each with its own checkpoint).

Jobs call :func:`start_queries`; each ``start_*`` function wires a source, a pure transformation
and a Delta sink, so the logic stays testable and the job stays thin.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from lib.clock import OBSERVATION, ClockTicker, resume_point, tick_publisher
from lib.config import Config
from lib.delta_io import create_spark_table, open_table_or_none
from lib.lakehouse import Lakehouse
from lib.quality import load_rules
from lib.retarget.dispatcher import Dispatcher
from lib.retarget.outbox import OPS_TABLE, write_batch
from lib.retarget.store import OUTBOX, RetargetStore
from lib.schema import table_properties
from lib.sessions import bucket_expiries, session_events, sessionize
from lib.sources import read_events_stream
from lib.transforms.bronze import BRONZE_PARTITION, with_bronze_columns

QUERY_NAMES = ("bronze", "lakehouse", "sessions")
log = logging.getLogger("shop.lakehouse")
session_log = logging.getLogger("shop.sessions")


def start_bronze(spark: SparkSession, cfg: Config, raw_df: DataFrame | None = None) -> StreamingQuery:
    """Kafka -> bronze Delta table (append; exactly once through the checkpoint + Delta txn log)."""
    raw_df = raw_df if raw_df is not None else read_events_stream(spark, cfg)
    bronze = raw_df.transform(with_bronze_columns)
    path = cfg.lake.table("bronze", "events")
    # created here, not by the sink's first commit: a streaming sink cannot set table properties
    create_spark_table(spark, path, bronze.schema, (BRONZE_PARTITION,), table_properties("bronze/events"))
    return (
        bronze
        .writeStream.format("delta")
        .queryName("bronze")
        .outputMode("append")
        .partitionBy(BRONZE_PARTITION)
        .option("checkpointLocation", cfg.lake.checkpoint("bronze"))
        .trigger(processingTime=f"{cfg.streaming.bronze_trigger_seconds} seconds")
        .start(path)
    )


def checkpoint_query_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query id Spark keeps in ``<checkpoint>/metadata`` (stable across restarts,
    new when the checkpoint is reset) — used as the Delta transaction app id of foreachBatch writes."""
    jvm: Any = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"{checkpoint.rstrip('/')}/metadata")
    jsc: Any = spark.sparkContext._jsc
    fs = path.getFileSystem(jsc.hadoopConfiguration())
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(fs.open(path), "UTF-8"))
    try:
        return json.loads(reader.readLine())["id"]
    finally:
        reader.close()


def start_lakehouse(spark: SparkSession, cfg: Config, raw_df: DataFrame | None = None) -> StreamingQuery:
    """Kafka -> silver + quarantine + gold + ops, one foreachBatch per micro-batch (lib.lakehouse)."""
    lake = Lakehouse(cfg)
    lake.ensure_tables()
    checkpoint = cfg.lake.checkpoint("lakehouse")
    app_ids: dict[str, str] = {}
    # bounded micro-batches (Kafka with maxOffsetsPerTrigger) are judged inside the streaming plan,
    # collected once and finished on the driver; unbounded ones are processed in Spark
    bounded = cfg.source.kind == "kafka" and cfg.kafka.max_offsets_per_trigger is not None
    run = lake.process_collected if bounded else lake.process

    def process_batch(batch_df: DataFrame, batch_id: int) -> None:
        if "id" not in app_ids:
            app_ids["id"] = f"lakehouse-{checkpoint_query_id(batch_df.sparkSession, checkpoint)}"
        t0 = time.monotonic()
        r = run(batch_df, batch_id, app_ids["id"])
        log.info("batch %d: read %d, valid %d, quarantined %d, duplicates %d, sales keys %d in %.1f s %s",
                 batch_id, r.read, r.valid, r.quarantined, r.duplicates, r.sales_rows, time.monotonic() - t0,
                 r.seconds)

    raw_df = raw_df if raw_df is not None else read_events_stream(spark, cfg)
    stream = raw_df.transform(with_bronze_columns)
    return (
        (stream.transform(lake.judge) if bounded else stream)
        .writeStream.queryName("lakehouse")
        .foreachBatch(process_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime=f"{cfg.streaming.trigger_seconds} seconds")
        .start()
    )


class SessionsRuntime:
    """What runs beside the sessions query in the app: the clock ticker and the email dispatcher."""

    def __init__(self):
        self.wake = threading.Event()  # set after each outbox write: the dispatcher starts at once
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.ticker = None

    def close(self) -> None:
        self.stop.set()
        self.wake.set()
        if self.ticker is not None:
            self.ticker.stop()
        for t in self.threads:
            t.join(timeout=30)


def start_sessions(spark: SparkSession, cfg: Config, raw_df: DataFrame | None = None,
                   runtime: SessionsRuntime | None = None, dispatcher: bool = True) -> StreamingQuery:
    """Kafka (events + clock ticks) -> cart sessions (lib.sessions) -> outbox + ops; with the clock
    ticker and (``dispatcher=True``) the email dispatcher as threads of this app."""
    sc = cfg.sessions
    runtime = runtime or SessionsRuntime()
    store = RetargetStore(cfg.lake.root)
    store.ensure(OUTBOX)
    store.ensure(OPS_TABLE)
    if raw_df is None:
        if cfg.kafka.auth == "none":  # locally the app creates the tick topic; on GCP Terraform does
            _ensure_clock_topic(cfg.kafka.bootstrap_servers, sc.clock_topic)
        raw_df = read_events_stream(spark, cfg, extra_topics=(sc.clock_topic,))
    events = session_events(raw_df.transform(with_bronze_columns), load_rules(), events_topic=cfg.kafka.topic,
                            clock_topic=sc.clock_topic, buckets=sc.buckets, max_future_seconds=sc.max_future_seconds)
    events = events.observe(OBSERVATION, F.max(F.when(~F.col("is_tick"), F.col("watermark_t"))).alias("max_event_time"),
                            F.max(F.when(~F.col("is_tick"), F.col("received_at"))).alias("max_received_at"))
    out = sessionize(events, gap_minutes=sc.gap_minutes, watermark_delay_seconds=sc.watermark_delay_seconds,
                     python_nice=sc.python_nice)
    checkpoint = cfg.lake.checkpoint("sessions")
    app_ids: dict[str, str] = {}

    def process_batch(batch_df: DataFrame, batch_id: int) -> None:
        if "id" not in app_ids:
            app_ids["id"] = f"sessions-{checkpoint_query_id(batch_df.sparkSession, checkpoint)}"
        t0 = time.monotonic()
        pdf = batch_df.toPandas()  # one action: expired sessions + one stats row per Python call
        expiries = bucket_expiries(pdf)
        r = write_batch(store, pdf, batch_id, app_ids["id"], round(time.monotonic() - t0, 3))
        runtime.wake.set()
        if runtime.ticker is not None:  # the ticks wait for the next session due (lib.clock)
            runtime.ticker.note_expiries(expiries)
        if r.outcomes or r.python_calls:
            session_log.info("batch %d: %d python calls, %d rows, expired %s, outbox +%d in %.1f s", batch_id,
                             r.python_calls, r.rows_in, r.outcomes, r.inserted, time.monotonic() - t0)

    spark.sparkContext.setLocalProperty("spark.scheduler.pool", "sessions")
    query = (
        out.writeStream.queryName("sessions")
        .foreachBatch(process_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime=f"{sc.trigger_seconds} seconds")
        .start()
    )
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]  # None clears it; the hint says str
    if sc.idle_seconds > 0:
        runtime.ticker = ClockTicker(query, tick_publisher(spark, cfg), idle_seconds=sc.idle_seconds,
                                     tick_seconds=sc.tick_seconds, watermark_delay_seconds=sc.watermark_delay_seconds,
                                     gap_seconds=sc.gap_minutes * 60, quiet_tick_seconds=sc.quiet_tick_seconds,
                                     buckets=sc.buckets, resume=_clock_resume_point(cfg))
        runtime.ticker.start()
    if dispatcher:
        disp = Dispatcher.from_config(cfg)
        t = threading.Thread(target=disp.run_forever, name="dispatcher",
                             args=(runtime.stop, runtime.wake, cfg.retarget.poll_seconds), daemon=True)
        t.start()
        runtime.threads.append(t)
    return query


def _ensure_clock_topic(bootstrap: str, topic: str, wait_seconds: float = 300.0, every: float = 5.0) -> None:
    """Create the tick topic, waiting for a broker that is down (a restart beside a broker restart,
    seen in make chaos: the app used to exit). Gives up with KafkaUnavailable after ``wait_seconds``."""
    # deferred: lib.kafka_admin needs confluent_kafka, not on Dataproc (requirements/dataproc.txt); local broker only
    from lib.kafka_admin import KafkaUnavailable, ensure_topic

    def waiting(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        session_log.warning("%s; waiting for it (up to %.0f s more)", exc, wait_seconds - (state.seconds_since_start or 0.0))

    Retrying(stop=stop_after_delay(wait_seconds), wait=wait_fixed(every), retry=retry_if_exception_type(KafkaUnavailable),
             before_sleep=waiting, reraise=True)(ensure_topic, bootstrap, topic, 1, timeout=min(30.0, every * 2))


def _clock_resume_point(cfg):
    """The ticker's starting point after a restart (lib.clock.resume_point), from ops/session_batches;
    None (the ticker then waits for a micro-batch) when the table is missing or cannot be read."""
    try:
        dt = open_table_or_none(cfg.lake.table("ops", "session_batches"))
        if dt is None:
            return None
        rows = dt.to_pyarrow_table(columns=["batch_id", "watermark", "processed_at"]).to_pylist()
        return resume_point(rows, cfg.sessions.watermark_delay_seconds)
    except Exception as exc:  # noqa: BLE001 - a restart must not fail on this; ticks then start with a batch
        logging.getLogger("shop.clock").warning("clock: no resume point from ops/session_batches (%s)", exc)
        return None


def log_progress(spark: SparkSession) -> None:
    """Log every query's micro-batch progress (one line per batch: rows, where the time went, state)
    under ``shop.progress``; what an operator reads first when latency grows."""
    progress_log = logging.getLogger("shop.progress")

    class _Listener(StreamingQueryListener):
        def onQueryStarted(self, event):  # noqa: N802 — Spark's API
            pass

        def onQueryIdle(self, event):  # noqa: N802
            pass

        def onQueryTerminated(self, event):  # noqa: N802
            pass

        def onQueryProgress(self, event):  # noqa: N802
            p = event.progress
            state = {k: v for op in p.stateOperators
                     for k, v in (("state_rows", op.numRowsTotal), ("state_ms", op.allUpdatesTimeMs + op.commitTimeMs))}
            progress_log.info("%s batch %d: %d rows, %s ms %s%s", p.name, p.batchId, p.numInputRows,
                              p.durationMs.get("triggerExecution"),
                              {k: v for k, v in p.durationMs.items() if k != "triggerExecution" and v},
                              f" {state}" if state else "")

    spark.streams.addListener(_Listener())


STARTERS: dict[str, Callable[..., StreamingQuery]] = {"bronze": start_bronze, "lakehouse": start_lakehouse, "sessions": start_sessions}


def start_queries(spark: SparkSession, cfg: Config, names: tuple[str, ...] = QUERY_NAMES,
                  runtime: SessionsRuntime | None = None) -> list[StreamingQuery]:
    queries = []
    for name in names:
        if name == "sessions":
            queries.append(start_sessions(spark, cfg, runtime=runtime))
        else:
            spark.sparkContext.setLocalProperty("spark.scheduler.pool", name)
            queries.append(STARTERS[name](spark, cfg))
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]  # None clears it
    return queries
