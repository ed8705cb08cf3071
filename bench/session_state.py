"""What the session state costs per micro-batch at a given event rate and gap: ``make bench-state``
(issue #15, "state that costs what a batch touches").

The streaming sessions query (``lib.sessions``) keeps each bucket's live cart sessions as ONE JSON
string in Spark's state store: every micro-batch, each bucket that receives an event parses its whole
string, folds the batch in, scans every live session for expiry and writes the whole string back. This
bench runs exactly that code (``SessionTracker``'s steps: ``BucketState.loads`` / ``expire`` / ``apply`` /
``prune`` / ``next_expiry_ms`` / ``dumps``) in this process, without Spark, over a generated event CSV
replayed in micro-batches of ``--trigger-seconds`` of event time (1:1 pacing: a batch holds what the
shop produced in one trigger interval), with the configured gap, buckets and watermark delay. What
it leaves out (Arrow transfer to the Python worker, the RocksDB put/get of the strings, Spark's own
per-batch costs) only adds to the figures.

Per batch it records the Python time of all buckets (the sum: what the query's Python workers must
do within one trigger interval, on ``--cores`` cores), live sessions and the state's JSON bytes; the
figures are taken after ``--warmup-minutes`` of event time (the first gap fills the state). The
LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from lib.config import PROJECT_ROOT, ConfigError, load_config
from lib.sessions import INPUT_COLUMNS, BucketState

DEFAULT_INPUT = PROJECT_ROOT / "var" / "bench" / "eps2000_40min.csv"


def log(msg: str) -> None:
    print(f"[bench-state] {msg}", file=sys.stderr, flush=True)


def load_events(path: Path, buckets: int) -> pd.DataFrame:
    """The CSV's events with a cart-state shape (``INPUT_COLUMNS``; ``t`` in epoch ms), in event-time
    order; rows the rule table would quarantine for lacking what the state needs are dropped."""
    df = pd.read_csv(path, engine="pyarrow", dtype_backend="numpy_nullable")
    df = df.dropna(subset=["event_time", "user_id", "user_session", "product_id", "price"])
    t = pd.to_datetime(df["event_time"].str.replace(" UTC", "", regex=False), utc=True)
    ms = (t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    df = df.assign(t=ms, watermark_t=ms,  # a replay: no event is stamped ahead of the broker
                   # a stable, uniform bucket per user (Spark's is pmod(xxhash64(user_id), buckets))
                   bucket=[zlib.crc32(str(int(u)).encode()) % buckets for u in df["user_id"]])
    df = df.astype({"user_id": "int64", "product_id": "int64", "price": "float64"})
    return df[INPUT_COLUMNS].sort_values("t", kind="stable").reset_index(drop=True)


def run(events: pd.DataFrame, gap_minutes: float, trigger_s: float, delay_s: float, warmup_minutes: float,
        scale: float = 1.0) -> dict:
    """``scale``: what the figures are multiplied by (the buckets left out: ``--sample-buckets``)."""
    gap_ms, step_ms, delay_ms = int(gap_minutes * 60_000), int(trigger_s * 1000), int(delay_s * 1000)
    state: dict[int, str] = {}
    live_in: dict[int, int] = {}
    t0_ms = int(events["t"].iloc[0])
    batch_of = ((events["t"] - t0_ms) // step_ms).to_numpy()
    starts = np.searchsorted(batch_of, np.arange(batch_of[-1] + 2))
    watermark = -(2 ** 62)
    rows = []
    for b in range(len(starts) - 1):
        batch = events.iloc[starts[b]:starts[b + 1]]
        if batch.empty:
            continue
        busy = 0.0
        calls = expired = 0
        for bucket, pdf in batch.groupby("bucket", sort=False):
            c0 = time.perf_counter()
            text = state.get(bucket)
            st = BucketState.loads(text) if text is not None else BucketState()
            out = st.expire(watermark, gap_ms)
            out += st.apply(pdf, gap_ms)
            out += st.expire(int(pdf["t"].max()) - delay_ms, gap_ms)
            st.prune()
            if st.next_expiry_ms(gap_ms) is None:
                state.pop(bucket, None)
            else:
                state[bucket] = st.dumps()
            live_in[bucket] = len(st.sessions)
            busy += time.perf_counter() - c0
            calls += 1
            expired += len(out)
        watermark = int(batch["t"].max()) - delay_ms
        rows.append({"minute": (int(batch["t"].iloc[0]) - t0_ms) / 60_000, "events": len(batch) * scale,
                     "python_s": busy * scale, "calls": calls * scale, "expired": expired * scale,
                     "live": sum(live_in.values()) * scale, "state_bytes": sum(len(s) for s in state.values()) * scale})
        if b % 60 == 0:
            log(f"minute {rows[-1]['minute']:6.1f}: {rows[-1]['events']:7.0f} events, python {rows[-1]['python_s']:6.3f} s, "
                f"state {rows[-1]['state_bytes'] / 1e6:7.1f} MB, live {rows[-1]['live']:,.0f}")
    steady = pd.DataFrame([r for r in rows if r["minute"] >= warmup_minutes])
    if steady.empty:
        raise SystemExit(f"error: no batch after --warmup-minutes {warmup_minutes:g}: the input is too short")
    live = float(steady["live"].mean())
    eps = steady["events"].sum() / (len(steady) * trigger_s)
    state_mb = steady["state_bytes"].mean() / 1e6
    return {
        "events_per_s": round(float(eps)), "batches": len(steady),
        "python_s_p50": round(float(steady["python_s"].quantile(0.5)), 3),
        "python_s_p95": round(float(steady["python_s"].quantile(0.95)), 3),
        "python_s_max": round(float(steady["python_s"].max()), 3),
        "live_sessions": int(live),
        "state_mb": round(state_mb, 1),
        "state_mb_per_100k_live": round(state_mb / (live / 100_000), 1) if live else None,
        # the state is rewritten whole: its cost per batch follows the live sessions, not the batch
        "python_us_per_live_session": round(float(steady["python_s"].mean() / live * 1e6), 2) if live else None,
        "calls_per_batch": round(float(steady["calls"].mean()), 1),
        "expired_per_batch": round(float(steady["expired"].mean()), 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", type=Path, default=DEFAULT_INPUT,
                   help="event CSV at the rate to study (default var/bench/eps2000_40min.csv; generate it with "
                        "python -m tools.generate --rows 4800000 --minutes 40 --out <it>: 2,000 events/s)")
    p.add_argument("--gap-minutes", type=float, help="session gap (default: sessions.gap_minutes of the config)")
    p.add_argument("--warmup-minutes", type=float, help="event time before the figures count (default: the gap + 2)")
    p.add_argument("--cores", type=int, default=2, help="cores the query's Python workers share (2)")
    p.add_argument("--sample-buckets", type=int, help="run only this many of the buckets (users hashed into them) "
                   "and scale the figures up: each bucket's work is its own (default: all)")
    args = p.parse_args(argv)
    try:
        cfg = load_config()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not args.input.exists():
        print(f"error: no input {args.input}: generate it first (see --help)", file=sys.stderr)
        return 2
    s = cfg.sessions
    gap = args.gap_minutes if args.gap_minutes is not None else s.gap_minutes
    warmup = args.warmup_minutes if args.warmup_minutes is not None else gap + 2
    t0 = time.monotonic()
    events = load_events(args.input, s.buckets)
    sample = args.sample_buckets or s.buckets
    if not 1 <= sample <= s.buckets:
        print(f"error: --sample-buckets must be 1..{s.buckets}", file=sys.stderr)
        return 2
    events = events[events["bucket"] < sample]
    log(f"{len(events):,} events loaded in {time.monotonic() - t0:.1f} s; gap {gap:g} min, {s.buckets} buckets, "
        f"trigger {s.trigger_seconds:g} s, watermark delay {s.watermark_delay_seconds:g} s")
    r = run(events, gap, s.trigger_seconds, s.watermark_delay_seconds, warmup, scale=s.buckets / sample)
    r["sampled_buckets"] = sample
    # the Python workers of one query run up to `cores` buckets at once
    r["keeps_up"] = r["python_s_p95"] / args.cores <= s.trigger_seconds
    print(json.dumps({"bench": "session_state", "input": str(args.input), "gap_minutes": gap, "buckets": s.buckets,
                      "trigger_s": s.trigger_seconds, "cores": args.cores, **r}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
