"""Raw consume rate of the local Kafka broker on this machine: the ceiling of the streaming figures (issue #15).

    .venv/bin/python -m bench.kafka_consume [--messages 1000000] [--port 19392] [--partitions N]

Starts its own broker the project's way (``scripts/kafka.sh`` through ``tools.local_stack.Stack``: the
Maven Central jars, KRaft, 512 MiB heap) in an isolated work dir under the temp folder on ``--port``
(controller on port + 1), creates the events topic with the app's partition count (``kafka.partitions``,
``lib.kafka_admin.ensure_topic``), and publishes ``--messages`` realistic events: rows of
``lib.data.generator.writers.write_csv`` as wire JSON (``lib.schema.csv_row_to_wire`` / ``encode_wire``, key =
user id) through the replayer's producer (``lib.data.replayer.KafkaPublisher``: idempotent, acks=all,
lz4, linger 5 ms). Then it reads the whole topic back, twice each:

* **confluent-kafka**: one plain consumer (librdkafka) assigned every partition from the start,
  ``consume(10000)`` batches, each value's length read — once with librdkafka's default settings, once
  with a deep prefetch (``PREFETCH``); the faster is ``kafka_consume_eps``, the broker's raw rate to one
  client (both in ``kafka_consume_by_settings``);
* **Spark's Kafka source** as the streaming app reads it: ``lib.spark.build_session`` (``local[2]``; the app itself now runs ``local[3]``, one slot more for its Python-bound sessions tasks),
  ``spark.read.format("kafka")`` with the app's options (``lib.sources.kafka_reader_options``),
  ``startingOffsets=earliest``, ``endingOffsets=latest``, key/value cast to strings
  (``read_events_stream``'s columns), ``count(*)`` and ``sum(length(value))``.

The first read of each is reported as ``*_first_eps``, the last (warm: page cache, JIT, Spark's cached
consumers) as the figure: two confluent-kafka reads per setting, ``--spark-reads`` (4) Spark reads — a
Spark read is ~3x faster once the JIT has compiled the read path, which takes about three reads of
1M events (measured: 93k, 198k, 251k, 282k, 274k events/s); the larger fetches of ``PREFETCH`` or more
Spark partitions (``minPartitions``) did not change the warm figure. The session's start-up is not timed. Everything it started (broker,
Spark's JVM) is stopped at the end and /proc is checked for leftovers (``left_running``). Progress on
stderr; the LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from pyspark import SparkContext
from pyspark.sql import functions as F

from lib.data.files import iter_rows
from lib.data.generator.writers import write_csv
from lib.data.replayer import KafkaPublisher
from lib.kafka_admin import ensure_topic, topic_message_count
from lib.schema import csv_row_to_wire, encode_wire, wire_key
from lib.sources import kafka_reader_options
from lib.spark import build_session
from tools.local_stack import Stack, log, sigterm_as_ctrl_c

DEFAULT_PORT = 19392  # not the tests' 19092 nor the default 9092
# librdkafka settings of the confluent-kafka reads: its defaults, and a deep prefetch with large fetches.
# With the defaults the consumer mostly waits on fetch round trips (measured: ~160k events/s with the
# consumer's own CPU at ~25 %); the deep prefetch keeps fetches in flight (up to 1 GiB queued, 10 MiB
# per partition per fetch) and shows what the broker serves one client on this machine.
PREFETCH = {"queued.max.messages.kbytes": 1048576, "queued.min.messages": 1000000,
            "max.partition.fetch.bytes": 10485760, "fetch.max.bytes": 104857600}
CONSUMER_SETTINGS = {"default": {}, "prefetch": PREFETCH}


def make_messages(work: Path, n: int, seed: int) -> list[tuple[bytes | None, bytes]]:
    """``n`` generated events as (key, value) wire messages, in event-time order."""
    csv_path = work / "events.csv"
    write_csv(csv_path, rows=n, seed=seed)
    msgs = []
    for row in iter_rows(csv_path):
        if not isinstance(row, dict):  # a RawLine: the generator writes none
            continue
        event = csv_row_to_wire(row)
        msgs.append((wire_key(event), encode_wire(event)))
    csv_path.unlink()
    return msgs


def produce(bootstrap: str, topic: str, msgs: list[tuple[bytes | None, bytes]]) -> float:
    """Publish every message with the replayer's producer; seconds until all are acknowledged."""
    pub = KafkaPublisher({"bootstrap.servers": bootstrap}, topic)
    t0 = time.perf_counter()
    for key, value in msgs:
        pub.publish(key, value)
    undelivered = pub.flush(120)
    seconds = time.perf_counter() - t0
    if undelivered:
        raise RuntimeError(f"{undelivered} messages were not delivered")
    return seconds


def consume_confluent(bootstrap: str, topic: str, expected: int, settings: dict | None = None,
                      timeout: float = 300) -> tuple[float, int]:
    """Read the whole topic with one confluent-kafka consumer (librdkafka ``settings`` on top of the
    defaults); (seconds, value bytes)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-consume-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 3,
                         **(settings or {})})
    try:
        md = consumer.list_topics(topic, timeout=30)
        parts = sorted(md.topics[topic].partitions)
        t0 = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        n = nbytes = 0
        deadline = time.monotonic() + timeout
        while n < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumed {n} of {expected} messages in {timeout:.0f} s")
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            # per message: its error (None) and its value's length, iterated in C (map over the
            # methods): a Python-level loop would cost more than librdkafka's fetch
            if any(map(Message.error, batch)):
                raise KafkaException(next(m.error() for m in batch if m.error()))
            n += len(batch)
            nbytes += sum(map(len, map(Message.value, batch)))
        seconds = time.perf_counter() - t0
    finally:
        consumer.close()
    if n != expected:
        raise RuntimeError(f"consumed {n} messages, expected {expected}")
    return seconds, nbytes


def spark_read(spark, cfg) -> tuple[float, int, int]:
    """Batch-read the whole topic with Spark's Kafka source; (seconds, rows, value bytes)."""
    opts = kafka_reader_options(cfg)
    opts.pop("maxOffsetsPerTrigger", None)  # a streaming option; a batch read takes the whole range
    opts.update({"startingOffsets": "earliest", "endingOffsets": "latest"})
    t0 = time.perf_counter()
    raw = spark.read.format("kafka").options(**opts).load()
    events = raw.select(F.col("key").cast("string").alias("key"), F.col("value").cast("string").alias("value"),
                        "topic", "partition", "offset", "timestamp")
    row = events.agg(F.count(F.lit(1)).alias("n"), F.sum(F.length("value")).alias("chars")).first()
    return time.perf_counter() - t0, row["n"], row["chars"] or 0


def stop_spark(spark) -> None:
    """Stop the session and its JVM (the gateway process exits when its stdin closes)."""
    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    spark.stop()
    if gateway is not None:
        gateway.shutdown()
        SparkContext._gateway = None
        SparkContext._jvm = None
    if proc is not None:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except Exception:  # noqa: BLE001 — a JVM that does not exit in time is killed
            proc.kill()
            proc.wait(timeout=30)


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (this process excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if text in cmdline and "\nState:\tZ" not in status:
            pids.append(int(entry.name))
    return pids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=1_000_000, help="events to publish and read back (1000000)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"broker port (default {DEFAULT_PORT}; controller: port + 1)")
    p.add_argument("--partitions", type=int, help="topic partitions (default: the app's kafka.partitions)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--spark-reads", type=int, default=4,
                   help="Spark reads of the whole topic, the last one reported (4: the JIT warms up over ~3 reads)")
    p.add_argument("--no-spark", action="store_true", help="skip the Spark read")
    p.add_argument("--keep", action="store_true", help="keep the work dir (broker data and logs)")
    args = p.parse_args(argv)
    if args.messages < 1 or args.spark_reads < 1:
        p.error("--messages and --spark-reads must be >= 1")

    sigterm_as_ctrl_c()  # SIGTERM unwinds through the finally below: broker and JVM stopped
    work = Path(tempfile.mkdtemp(prefix="shop-bench-kafka-"))
    overrides = {"SHOP__KAFKA__PARTITIONS": str(args.partitions)} if args.partitions else {}
    stack = Stack(work, kafka_port=args.port, overrides=overrides)
    cfg = stack.config()
    partitions = cfg.kafka.partitions
    topic = cfg.kafka.topic
    out: dict = {"bench": "kafka_consume"}
    spark = None
    try:
        log(f"generating {args.messages:,} events (work dir {work})")
        t = time.perf_counter()
        msgs = make_messages(work, args.messages, args.seed)
        value_bytes = sum(len(v) for _, v in msgs)
        log(f"{len(msgs):,} messages, {value_bytes / len(msgs):.0f} bytes each on average ({time.perf_counter() - t:.1f} s)")

        log(f"starting the broker on {stack.bootstrap}")
        stack.start_broker()
        ensure_topic(stack.bootstrap, topic, partitions, cfg.kafka.replication_factor)
        log(f"producing to {topic!r} ({partitions} partitions)")
        produce_s = produce(stack.bootstrap, topic, msgs)
        del msgs
        in_topic = topic_message_count(stack.bootstrap, topic)
        if in_topic != args.messages:
            raise RuntimeError(f"the topic holds {in_topic} messages, expected {args.messages}")
        log(f"produced {args.messages:,} in {produce_s:.2f} s ({args.messages / produce_s:,.0f}/s)")

        by_config = {}
        for name, settings in CONSUMER_SETTINGS.items():
            runs = []
            for i in range(2):
                s, nbytes = consume_confluent(stack.bootstrap, topic, args.messages, settings)
                if nbytes != value_bytes:
                    raise RuntimeError(f"consumed {nbytes} value bytes, produced {value_bytes}")
                runs.append(s)
                log(f"confluent-kafka ({name}) read {i + 1}/2: {s:.2f} s ({args.messages / s:,.0f} events/s)")
            by_config[name] = {"eps": round(args.messages / runs[-1]), "first_eps": round(args.messages / runs[0])}
        best = max(by_config, key=lambda k: by_config[k]["eps"])
        out.update({
            "kafka_consume_eps": by_config[best]["eps"],
            "kafka_consume_first_eps": by_config[best]["first_eps"],
            "kafka_consume_mb_s": round(by_config[best]["eps"] * value_bytes / args.messages / 1e6, 1),
            "kafka_consume_settings": best,
            "kafka_consume_by_settings": by_config,
        })
        if not args.no_spark:
            log("starting Spark (local session of the app's config)")
            t = time.perf_counter()
            spark = build_session(cfg, app_name="bench-kafka-consume")
            out["spark_session_start_s"] = round(time.perf_counter() - t, 1)
            spark_runs = []
            for i in range(args.spark_reads):
                s, n, _chars = spark_read(spark, cfg)
                if n != args.messages:
                    raise RuntimeError(f"Spark read {n} rows, expected {args.messages}")
                spark_runs.append(s)
                log(f"Spark Kafka read {i + 1}/{args.spark_reads}: {s:.2f} s ({args.messages / s:,.0f} events/s)")
            out.update({
                "spark_kafka_read_eps": round(args.messages / spark_runs[-1]),
                "spark_kafka_read_first_eps": round(args.messages / spark_runs[0]),
                "spark_kafka_read_runs_eps": [round(args.messages / x) for x in spark_runs],
                "spark_master": cfg.spark.master,
            })
        out.update({
            "produce_eps": round(args.messages / produce_s),
            "messages": args.messages,
            "avg_message_bytes": round(value_bytes / args.messages),
            "partitions": partitions,
            "cores": os.cpu_count(),
        })
    finally:
        if spark is not None:
            log("stopping Spark")
            stop_spark(spark)
        log("stopping the broker")
        stack.stop()
        left = processes_mentioning(str(work))
        out["left_running"] = len(left)
        if left:
            log(f"processes still running from {work}: {left}")
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))
    return 0 if out["left_running"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
