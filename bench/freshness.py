"""Freshness benchmark (BP4): seconds from a purchase published to Kafka until the dashboard's API
shows it, under a steady background load of realistic traffic at 1:1 event-time pacing.

    .venv/bin/python -m bench.freshness [--eps 500] [--duration 120] [--marks 40]

Runs the full local stack (broker, streaming app with all its queries, dashboard) in an isolated
work dir; the background load comes from the generator (many simultaneous shoppers) replayed at
real-time pacing; marked purchases use product ids the generator never emits. Prints progress on
stderr and, as the LAST line on stdout, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import threading
import time
import urllib.error
import uuid
from datetime import datetime, timezone

from lib.data.files import iter_rows
from lib.data.generator.writers import write_csv
from lib.data.replayer import KafkaPublisher, replay
from lib.schema import encode_wire, format_wire_time
from tools.local_stack import Stack, log
from tools.marked_load import add_load_arguments, add_work_arguments, percentile

MARK_PRODUCT_BASE = 9_900_000  # above the generator's product id range (<= 5,932,595)


def marked_purchase(i: int, run: str) -> dict:
    return {"event_time": format_wire_time(datetime.now(timezone.utc)), "event_type": "purchase",
            "product_id": MARK_PRODUCT_BASE + i, "category_id": 1487580005134238553, "category_code": None,
            "brand": "benchmark", "price": 9.99, "user_id": 999_000_000 + i,
            "user_session": f"{run}-{uuid.uuid4()}"[:36]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_load_arguments(p, duration=120, duration_help="seconds of measurement (default 120)", marks=40,
                       marks_help="marked purchases to time (default 40)", gap_minutes=False)
    p.add_argument("--warmup", type=float, default=45, help="seconds of load before the first mark")
    p.add_argument("--trigger", type=float, default=2.0, help="streaming trigger seconds (default 2)")
    add_work_arguments(p, name="freshness", seed=11)
    args = p.parse_args(argv)

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    window_s = args.warmup + args.duration + 60
    rows = int(args.eps * window_s)
    load_csv = args.work / "load.csv"
    log(f"generating {rows} events over {window_s:.0f} s of event time")
    write_csv(load_csv, rows=rows, seed=args.seed, start="2019-11-21 17:00:00", days=window_s / 86400)

    stack = Stack(args.work, overrides={"SHOP__STREAMING__TRIGGER_SECONDS": str(args.trigger),
                                        "SHOP__KAFKA__PARTITIONS": str(args.partitions)})
    results: dict[int, float] = {}
    published: dict[int, float] = {}
    load_stats = {}
    stop = threading.Event()
    try:
        stack.start(topic_partitions=args.partitions)
        load_pub = KafkaPublisher({"bootstrap.servers": stack.bootstrap}, "events")

        stop_load = threading.Event()
        counter = {"n": 0, "t0": time.time()}

        def count(k: int) -> None:
            counter["n"] += k

        def background() -> None:
            rows_iter = (r for r in iter_rows(load_csv) if not stop_load.is_set())
            counter["t0"] = time.time()
            replay(rows_iter, load_pub, speedup=1.0, on_progress=count)

        loader = threading.Thread(target=background, daemon=True)
        loader.start()
        log(f"background load at ~{args.eps:.0f} events/s; warming up {args.warmup:.0f} s")
        time.sleep(args.warmup)

        # the load is measured over the marks' window (after the warm-up and the shoppers' ramp-up)
        measured_from = {"n": counter["n"], "t": time.time()}
        mark_pub = KafkaPublisher({"bootstrap.servers": stack.bootstrap}, "events", linger_ms=0)
        run = uuid.uuid4().hex[:8]

        def poller() -> None:
            while not stop.is_set() or len(results) < len(published):
                pending = [i for i in list(published) if i not in results]
                for i in pending:
                    try:
                        body = stack.api(f"/api/sales/products/{MARK_PRODUCT_BASE + i}?minutes=60")
                        if body.get("totals", {}).get("units", 0) >= 1 or body.get("today", {}).get("units", 0) >= 1:
                            results[i] = time.time() - published[i]
                    except (urllib.error.HTTPError, urllib.error.URLError, TimeoutError):
                        pass
                if stop.is_set() and time.time() > stop_deadline[0]:
                    return
                time.sleep(0.2)

        stop_deadline = [float("inf")]
        poll_thread = threading.Thread(target=poller, daemon=True)
        poll_thread.start()
        gap = args.duration / args.marks
        for i in range(args.marks):
            event = marked_purchase(i, run)
            published[i] = time.time()
            mark_pub.publish(str(event["user_id"]).encode(), encode_wire(event))
            mark_pub.flush(10)
            time.sleep(gap)
        load_stats.update(published=counter["n"] - measured_from["n"], seconds=time.time() - measured_from["t"])
        stop_deadline[0] = time.time() + 90
        stop.set()
        poll_thread.join(timeout=100)
        stop_load.set()
        loader.join(timeout=30)
    finally:
        stop.set()
        stack.stop()

    lat = [results[i] for i in sorted(results)]
    missing = args.marks - len(lat)
    eps = load_stats.get("published", 0) / load_stats["seconds"] if load_stats.get("seconds") else 0.0
    out = {
        "bench": "freshness",
        "load_eps": round(eps, 1),
        "n": len(lat),
        "missing": missing,
        "freshness_p50_s": round(percentile(lat, 0.5), 2),
        "freshness_p95_s": round(percentile(lat, 0.95), 2),
        "freshness_max_s": round(max(lat), 2) if lat else None,
        "freshness_mean_s": round(statistics.fmean(lat), 2) if lat else None,
        "trigger_s": args.trigger,
        "partitions": args.partitions,
        "cores": __import__("os").cpu_count(),
    }
    print(json.dumps(out))
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
