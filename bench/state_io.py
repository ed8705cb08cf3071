"""Session state I/O inside Spark: one JSON value per bucket (today's design) against a ``MapState`` entry per
session (``transformWithStateInPandas``, pyspark 4.0), on the same micro-batches (issue #15, point 1).

    python -m bench.state_io [--batches 20] [--events 10000] [--buckets 16]

Each micro-batch brings ``--events`` events: half start new sessions, half continue live ones (chosen at
random), so the live sessions grow by ``events / 2`` per batch and never expire within the run (the
30-minute gap of a busy shop keeps ~128 live sessions per event/s; docs/performance.md). Both operators
group by bucket, keep per session its last event time and a small cart payload, and register an
event-time timer for a new session, as an expiry would need:

* ``json_bucket``: ``applyInPandasWithState``, the bucket's sessions as one JSON string (read, updated and
  rewritten whole in every call: ``lib.sessions.SessionTracker``'s design);
* ``map_state``: ``transformWithStateInPandas``, a ``MapState`` keyed by session id: only the sessions a
  batch brings are read and written (one round trip to the JVM's state server per get and per update).

The input is a folder of Parquet files read one per micro-batch (``maxFilesPerTrigger=1``, ``availableNow``),
so both queries see identical batches. Per batch it records the live sessions before it and Spark's
``addBatch`` duration. The last line is JSON: per operator the batch duration at the start and at the end,
and its slope (ms per 10k live sessions, least squares) — the cost that grows with live sessions.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql.streaming.state import GroupStateTimeout
from pyspark.sql.streaming.stateful_processor import StatefulProcessor

from bench import bench_config
from lib.spark import build_session

GAP_MS = 30 * 60_000
OUTPUT = "bucket INT, live BIGINT"
PAYLOAD = '[[1700000000000,"cart",5001,4.2,"runail","beauty.nail.polish",1487580005268456287]]'


def write_batches(folder: Path, batches: int, events: int, buckets: int, seed: int) -> list[int]:
    """Parquet files, one per micro-batch; returns the live sessions before each batch."""
    rng = random.Random(seed)  # noqa: S311 — a reproducible synthetic load, not a secret
    live: list[str] = []
    before = []
    t0 = pd.Timestamp("2026-11-30", tz="UTC")
    for b in range(batches):
        before.append(len(live))
        new = [f"s{b:04d}-{i:06d}" for i in range(events // 2)]
        old = rng.choices(live, k=events - len(new)) if live else rng.choices(new, k=events - len(new))
        sids = new + old
        times = [t0 + pd.Timedelta(seconds=5 * b + rng.random() * 5) for _ in sids]
        pd.DataFrame({
            "bucket": pd.Series([zlib.crc32(s.encode()) % buckets for s in sids], dtype="int32"),
            "t": pd.to_datetime(times).astype("datetime64[us, UTC]"),
            "user_session": sids,
        }).to_parquet(folder / f"batch-{b:04d}.parquet", index=False)
        live += new
    return before


def json_bucket(key: tuple, pdfs: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:
    """Today's design: the bucket's sessions in one JSON value, parsed and rewritten in every call."""
    sessions = json.loads(state.get[0]) if state.exists else {}
    for pdf in pdfs:
        ms = (pd.to_datetime(pdf["t"]).astype("int64") // 1_000_000).tolist()
        for sid, t in zip(pdf["user_session"], ms):
            s = sessions.get(sid)
            if s is None:
                sessions[sid] = [t, PAYLOAD]
            else:
                s[0] = max(s[0], t)
    state.update((json.dumps(sessions, separators=(",", ":")),))
    state.setTimeoutTimestamp(min(s[0] for s in sessions.values()) + GAP_MS)
    yield pd.DataFrame({"bucket": [int(key[0])], "live": [len(sessions)]})


class Sessions(StatefulProcessor):
    """A ``MapState`` entry per session: a batch reads and writes only the sessions it brings."""

    def init(self, handle) -> None:
        self.handle = handle
        self.sessions = handle.getMapState("sessions", "user_session STRING", "last_ms BIGINT, payload STRING")

    def handleInputRows(self, key, rows, timerValues) -> Iterator[pd.DataFrame]:  # noqa: N802, N803 — Spark's names
        n = 0
        for pdf in rows:
            ms = (pd.to_datetime(pdf["t"]).astype("int64") // 1_000_000).tolist()
            latest: dict[str, int] = {}
            for sid, t in zip(pdf["user_session"], ms):
                latest[sid] = max(t, latest.get(sid, t))
            for sid, t in latest.items():
                got = self.sessions.getValue((sid,))
                if got is None:
                    self.sessions.updateValue((sid,), (t, PAYLOAD))
                    self.handle.registerTimer(t + GAP_MS)
                elif t > got[0]:
                    self.sessions.updateValue((sid,), (t, got[1]))
                n += 1
        yield pd.DataFrame({"bucket": [int(key[0])], "live": [n]})

    def close(self) -> None:
        pass


def run(spark, kind: str, source: Path, work: Path, schema) -> list[float]:
    df = (spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(str(source))
          .withWatermark("t", "10 seconds"))
    grouped = df.groupBy("bucket")
    if kind == "json_bucket":
        out = grouped.applyInPandasWithState(json_bucket, OUTPUT, "payload STRING", "append",
                                             GroupStateTimeout.EventTimeTimeout)
    else:
        out = grouped.transformWithStateInPandas(Sessions(), OUTPUT, "Append", "EventTime")
    q = (out.writeStream.format("noop").option("checkpointLocation", str(work / f"cp-{kind}"))
         .trigger(availableNow=True).start())
    q.awaitTermination()
    return [p["durationMs"].get("addBatch", 0) / 1000 for p in q.recentProgress if p["numInputRows"] > 0]


def slope_per_10k(live: list[int], seconds: list[float]) -> float:
    a, _ = np.polyfit(np.asarray(live, dtype=float), np.asarray(seconds, dtype=float), 1)
    return float(a * 10_000 * 1000)  # ms per 10k live sessions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.state_io", description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--events", type=int, default=10_000, help="events per micro-batch (2,000/s x 5 s)")
    p.add_argument("--buckets", type=int, default=16)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--only", choices=["json_bucket", "map_state"], default=None)
    args = p.parse_args(argv)
    if args.batches < 3 or args.events < 2:
        p.error("--batches must be >= 3 and --events >= 2")
    with tempfile.TemporaryDirectory(prefix="shop-state-io-") as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        before = write_batches(work / "in", args.batches, args.events, args.buckets, args.seed)
        cfg = bench_config(SHOP__LAKE__ROOT=str(work / "lake"), SHOP__PATHS__RUN_DIR=str(work / "run"),
                           SHOP__SPARK__SHUFFLE_PARTITIONS="2")
        spark = build_session(cfg, "bench-state-io")
        spark.conf.set("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        schema = spark.read.parquet(str(work / "in" / "batch-0000.parquet")).schema
        result: dict[str, object] = {"batches": args.batches, "events_per_batch": args.events,
                                     "buckets": args.buckets, "live_sessions_end": before[-1] + args.events // 2}
        for kind in ("json_bucket", "map_state"):
            if args.only and kind != args.only:
                continue
            t = time.monotonic()
            seconds = run(spark, kind, work / "in", work, schema)
            if len(seconds) != args.batches:
                print(f"state_io: {kind}: {len(seconds)} batches with input, expected {args.batches}", file=sys.stderr)
                return 1
            for b, s in enumerate(seconds):
                print(f"{kind} batch {b:3d}: live before {before[b]:7,d}  {s:6.2f} s", file=sys.stderr)
            rest = seconds[1:]  # the first batch pays the query's start
            result[kind] = {"batch_s_first": round(rest[0], 2), "batch_s_last": round(seconds[-1], 2),
                            "ms_per_10k_live": round(slope_per_10k(before[1:], rest), 1),
                            "total_s": round(time.monotonic() - t, 1)}
        spark.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
