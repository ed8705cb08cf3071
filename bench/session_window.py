"""Native sessionization reference (issue #15): Spark's own ``session_window`` over the input of
``make bench-state`` (2,000 events/s for 40 minutes of shop time), with the 30-minute gap, in
micro-batches of 5 s of shop time each, RocksDB state store (the app's settings).

    python -m bench.session_window [--input var/bench/eps2000_40min.csv] [--gap-minutes 30] [--batch-seconds 5]

It is what the app's sessions query would cost if sessions were only counted: ``groupBy(user_session,
session_window(t, gap))`` with counts of events, carts and purchases and the last event time, append
mode (a session is emitted once the watermark passes its end). The app's own operator keeps the cart
(products, quantities, prices) and decides abandonment in Python (``lib.sessions``); its figures at the
same rate come from ``make bench-state`` (Python alone) and ``make bench-streaming`` (the full app).

The input is cut into Parquet files, one per micro-batch, read one per trigger (``maxFilesPerTrigger=1``,
``availableNow``). Prints per-batch lines on stderr and, as the LAST line, one JSON object: batch
duration percentiles over all batches and over those after the first gap (when sessions expire),
state rows and memory, and whether a batch fits in its 5 s of shop time (``keeps_up``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from pyspark.sql import functions as F

from bench import bench_config
from lib.spark import build_session
from tools.local_stack import ROOT, log
from tools.marked_load import percentile

DEFAULT_INPUT = ROOT / "var" / "bench" / "eps2000_40min.csv"


def write_batches(csv: Path, folder: Path, batch_seconds: float) -> tuple[int, int, pd.Timestamp]:
    """The input's valid events as Parquet files of ``batch_seconds`` of shop time each, in time order.
    Returns (events, files, first event time)."""
    df = pd.read_csv(csv, usecols=["event_time", "event_type", "user_id", "user_session", "product_id", "price"],
                     dtype={"event_type": "string", "user_session": "string"})
    df["t"] = pd.to_datetime(df["event_time"], format="%Y-%m-%d %H:%M:%S UTC", errors="coerce", utc=True)
    df = df.dropna(subset=["t", "user_session", "user_id"]).drop(columns=["event_time"])
    df = df[df["event_type"].isin(["view", "cart", "remove_from_cart", "purchase"])].sort_values("t", kind="stable")
    df["t"] = df["t"].astype("datetime64[us, UTC]")
    t0 = df["t"].iloc[0]
    slot = ((df["t"] - t0).dt.total_seconds() // batch_seconds).astype("int64")
    files = 0
    for k, part in df.groupby(slot, sort=True):
        part.to_parquet(folder / f"batch-{int(k):05d}.parquet", index=False)
        files += 1
    return len(df), files, t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.session_window", description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=DEFAULT_INPUT,
                   help="events CSV (default: make bench-state's, 2,000 events/s over 40 min)")
    p.add_argument("--gap-minutes", type=float, default=30)
    p.add_argument("--batch-seconds", type=float, default=5, help="shop time per micro-batch (the sessions trigger)")
    p.add_argument("--watermark-seconds", type=float, default=20)
    args = p.parse_args(argv)
    if not args.input.exists():
        p.error(f"--input {args.input} does not exist (make bench-state writes the default one)")
    with tempfile.TemporaryDirectory(prefix="shop-session-window-") as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        log(f"cutting {args.input} into micro-batches of {args.batch_seconds:g} s of shop time")
        events, files, _ = write_batches(args.input, work / "in", args.batch_seconds)
        cfg = bench_config(SHOP__LAKE__ROOT=str(work / "lake"), SHOP__PATHS__RUN_DIR=str(work / "run"))
        spark = build_session(cfg, "bench-session-window")
        spark.conf.set("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", str(files + 10))
        schema = spark.read.parquet(str(work / "in" / "batch-00000.parquet")).schema
        df = (spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(str(work / "in"))
              .withWatermark("t", f"{int(args.watermark_seconds)} seconds"))
        sessions = (df.groupBy("user_session", F.session_window("t", f"{int(args.gap_minutes * 60)} seconds"))
                    .agg(F.count("*").alias("events"), F.sum((F.col("event_type") == "cart").cast("int")).alias("carts"),
                         F.sum((F.col("event_type") == "purchase").cast("int")).alias("purchases"),
                         F.max("t").alias("last_event")))
        t = time.monotonic()
        q = (sessions.writeStream.format("noop").outputMode("append")
             .option("checkpointLocation", str(work / "checkpoint")).trigger(availableNow=True).start())
        q.awaitTermination()
        wall = time.monotonic() - t
        progress = [pr for pr in q.recentProgress if pr["numInputRows"] > 0]
        spark.stop()
    if len(progress) != files:
        print(f"session_window: {len(progress)} batches with input, expected {files}", file=sys.stderr)
        return 1
    seconds, after_gap, state_rows, state_mb = [], [], [], []
    gap_batches = int(args.gap_minutes * 60 / args.batch_seconds)
    for b, pr in enumerate(progress):
        s = pr["durationMs"].get("triggerExecution", 0) / 1000
        op = (pr.get("stateOperators") or [{}])[0]
        state_rows.append(op.get("numRowsTotal", 0))
        state_mb.append(op.get("memoryUsedBytes", 0) / 2**20)
        seconds.append(s)
        if b > gap_batches:
            after_gap.append(s)
        if b % 20 == 0 or b == len(progress) - 1:
            log(f"batch {b:4d}: {pr['numInputRows']:6d} rows {s:6.2f} s, state rows {state_rows[-1]:,}")
    rest = sorted(seconds[1:])  # the first batch pays the query's start
    steady = sorted(after_gap)
    out = {
        "bench": "session_window", "input": str(args.input), "events": events, "batches": files,
        "events_per_s": round(events / (files * args.batch_seconds)),
        "gap_minutes": args.gap_minutes, "batch_seconds": args.batch_seconds,
        "batch_s_p50": round(percentile(rest, 0.5), 3), "batch_s_p95": round(percentile(rest, 0.95), 3),
        "batch_s_max": round(rest[-1], 3),
        "after_gap_batch_s_p50": round(percentile(steady, 0.5), 3) if steady else None,
        "after_gap_batch_s_p95": round(percentile(steady, 0.95), 3) if steady else None,
        "state_rows_max": max(state_rows), "state_memory_mb_max": round(max(state_mb), 1),
        "events_per_s_capacity": round(events / sum(seconds[1:])) if len(seconds) > 1 else None,
        "wall_s": round(wall, 1),
        "keeps_up": bool(steady and percentile(steady, 0.95) <= args.batch_seconds),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
