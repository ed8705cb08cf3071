"""Abandoned-cart latency benchmark (BP1): seconds from a session's expiry (last activity + gap, on
the wall clock of the replay) to its email accepted by the SMTP server, under realistic traffic.

    .venv/bin/python -m bench.abandonment [--eps 500] [--duration 240] [--gap-minutes 2]

Runs the full local stack (broker, SMTP server, streaming app with all queries + dispatcher,
dashboard) in an isolated work dir. Background load: generated shoppers replayed at 1:1 event-time
pacing; on top, marked sessions of subscribed users that certainly abandon their carts. Every published
event is recorded; the batch oracle (tools/abandonment_oracle.py) computes from them, independently,
which sessions must get an email. When the load stops the shop goes quiet: the last sessions expire
through the clock ticks. Prints progress on stderr and, as the LAST line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lib.data.files import iter_rows
from lib.data.replayer import KafkaPublisher, replay
from lib.delta_io import read_table
from lib.retarget.store import RetargetStore
from lib.retarget.subscribers import load as load_subscribers
from tools import marked_load
from tools.abandonment_oracle import expected
from tools.local_stack import Stack, log
from tools.marked_load import RecordingPublisher, percentile, prepare_load, publish_marked, received_at


def _summary(lat: list[float]) -> dict:
    """n, p50 and p99 of sorted latencies (seconds)."""
    return {"n": len(lat), "p50_s": round(percentile(lat, 0.5), 2) if lat else None,
            "p99_s": round(percentile(lat, 0.99), 2) if lat else None}


def _ops(lake: Path) -> list[dict]:
    table = read_table(lake / "ops" / "session_batches")
    return [] if table is None else table.to_pylist()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    marked_load.add_load_arguments(p, duration=240, duration_help="seconds of load (default 240)", marks=40,
                                   marks_help="marked abandoned sessions (default 40)")
    p.add_argument("--drain", type=float, default=240, help="max seconds to wait for emails after the last expiry")
    marked_load.add_work_arguments(p, name="abandonment", seed=21)
    args = p.parse_args(argv)

    load_csv, subs_csv, subscribers = prepare_load(args.work, args.eps, args.duration, args.marks, args.seed)

    gap = timedelta(minutes=args.gap_minutes)
    stack = Stack(args.work, overrides={
        "SHOP__SESSIONS__GAP_MINUTES": str(args.gap_minutes), "SHOP__RETARGET__CONTROL_SHARE": "0",
        "SHOP__KAFKA__PARTITIONS": str(args.partitions),
    })
    cfg = stack.config()
    load_subscribers(RetargetStore(str(args.work / "lake")), subs_csv)
    counter = {"n": 0}
    try:
        stack.start(topic_partitions=args.partitions)
        pub = RecordingPublisher(KafkaPublisher({"bootstrap.servers": stack.bootstrap}, cfg.kafka.topic))
        t0 = time.time()

        def background() -> None:
            replay(iter_rows(load_csv), pub, speedup=1.0, on_progress=lambda k: counter.__setitem__("n", counter["n"] + k))

        loader = threading.Thread(target=background, daemon=True)
        loader.start()
        log(f"load at ~{args.eps:.0f} events/s for {args.duration:.0f} s, {args.marks} marked abandoned sessions")
        run = f"{int(t0)}"
        for i in range(args.marks):
            time.sleep(args.duration * 0.9 / max(args.marks, 1))
            publish_marked(pub, i, run)
        loader.join()
        load_seconds = time.time() - t0
        pub.flush()
        log(f"load done: {counter['n']} events in {load_seconds:.0f} s; computing the expected emails")

        published = [json.loads(v) for v in pub.sent]
        carts = expected(published, subscribers, gap=gap, cap_days=cfg.retarget.cap_days, control_share=0.0)
        want = {c.session: c for c in carts if c.decision == "send"}
        last_expiry = max((c.expiry for c in want.values()), default=datetime.now(UTC))
        deadline = max(time.time(), last_expiry.timestamp()) + args.drain
        log(f"{len(carts)} abandoned carts, {len(want)} emails expected; the last expires at "
            f"{last_expiry:%H:%M:%S} — waiting for them (the shop is quiet now)")
        while time.time() < deadline:
            got = {m["X-Session-Id"] for m in stack.messages()}
            if set(want) <= got and time.time() > last_expiry.timestamp() + 20:
                break
            time.sleep(2)
        time.sleep(3)
        messages = stack.messages()
        ops = _ops(args.work / "lake")
    finally:
        stack.stop()

    received = received_at(messages)
    # (expiry, latency) per email; split by sessions that expired while the load ran vs after it
    # stopped (the quiet shop: clock ticks move time)
    got = [(c.expiry, (min(received[s]) - c.expiry).total_seconds()) for s, c in want.items() if s in received]
    load_end = datetime.fromtimestamp(t0 + load_seconds, UTC)
    lat = sorted(x for _, x in got)
    lat_load = sorted(x for e, x in got if e <= load_end)
    lat_quiet = sorted(x for e, x in got if e > load_end)
    missed = [s for s in want if s not in received]
    duplicates = sum(len(v) - 1 for v in received.values())
    unexpected = [s for s in received if s not in want]
    calls = sum(r["python_calls"] or 0 for r in ops)
    span = ((max(r["processed_at"] for r in ops) - min(r["processed_at"] for r in ops)).total_seconds()
            if len(ops) > 1 else 0)
    out = {
        "bench": "abandonment",
        "load_eps": round(counter["n"] / load_seconds, 1),
        "expected": len(want),
        "sent": len(want) - len(missed),
        "missed": len(missed),
        "duplicates": duplicates,
        "unexpected": len(unexpected),
        "latency_p50_s": round(percentile(lat, 0.5), 2) if lat else None,
        "latency_p99_s": round(percentile(lat, 0.99), 2) if lat else None,
        "latency_max_s": round(max(lat), 2) if lat else None,
        "latency_min_s": round(min(lat), 2) if lat else None,
        "python_calls_per_s": round(calls / span, 2) if span else None,
        "under_load": _summary(lat_load),
        "after_load": _summary(lat_quiet),
        "abandoned_carts": len(carts),
        "decisions_expected": dict(Counter(c.decision for c in carts)),
        "gap_minutes": args.gap_minutes,
        "watermark_delay_s": cfg.sessions.watermark_delay_seconds,
        "sessions_trigger_s": cfg.sessions.trigger_seconds,
        "buckets": cfg.sessions.buckets,
        "partitions": args.partitions,
        "cores": os.cpu_count(),
    }
    if missed:
        log(f"missed sessions (first 10): {missed[:10]}")
    if unexpected:
        log(f"unexpected emails (first 10): {unexpected[:10]}")
    print(json.dumps(out))
    return 0 if not missed and not duplicates else 1


if __name__ == "__main__":
    raise SystemExit(main())
