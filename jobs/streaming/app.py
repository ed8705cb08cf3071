"""The streaming app: Kafka -> bronze, silver/gold (lakehouse), cart sessions -> outbox -> emails.

Locally:   .venv/bin/python jobs/streaming/app.py [--env local] [--queries bronze]
Dataproc:  gcloud dataproc jobs submit pyspark jobs/streaming/app.py ... -- --env gcp
           (scripts/submit.sh streaming does this for you)

Runs until stopped (SIGINT/SIGTERM stop the queries cleanly; SIGKILL is safe too: the checkpoints
make a restart resume exactly where the last committed micro-batch ended).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit / gcloud): make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pyspark.errors import StreamingQueryException  # noqa: E402

from lib.config import ConfigError, load_config  # noqa: E402
from lib.sources import check_source  # noqa: E402
from lib.spark import build_session  # noqa: E402
from lib.streaming import QUERY_NAMES, SessionsRuntime, log_progress, start_queries  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run the streaming queries until stopped.")
    p.add_argument("--env", help="config environment: local (default) or gcp, or a .yaml path")
    p.add_argument("--queries", default=",".join(QUERY_NAMES),
                   help=f"comma-separated subset of {','.join(QUERY_NAMES)}")
    args = p.parse_args(argv)
    names = tuple(q.strip() for q in args.queries.split(",") if q.strip())
    unknown = [q for q in names if q not in QUERY_NAMES]
    if unknown or not names:
        p.error(f"--queries: unknown query {unknown[0] if unknown else '(none)'}; choose from {','.join(QUERY_NAMES)}")
    args.queries = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    logging.getLogger("shop").setLevel(logging.INFO)  # our per-batch lines; py4j stays quiet
    try:
        cfg = load_config(args.env)
        check_source(cfg)  # before Spark starts: a source that cannot run stops here in one line
        spark = build_session(cfg, app_name="shop-streaming", extra_task_slots=cfg.streaming.local_extra_task_slots)
        log_progress(spark)
        runtime = SessionsRuntime()
        queries = start_queries(spark, cfg, args.queries, runtime=runtime)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    # The handler only sets a flag (a py4j call from inside a signal handler would race the
    # blocked main thread); the loop below notices it within a second and stops cleanly.
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    print(f"[streaming] started {', '.join(q.name for q in queries)}; lake at {cfg.lake.root}", flush=True)
    failed = False
    try:
        while not stopping.is_set() and not spark.streams.awaitAnyTermination(1):
            pass
    except StreamingQueryException as exc:
        print(f"[streaming] a query failed: {exc}", file=sys.stderr)
        failed = True
    for q in queries:
        try:
            q.stop()
        except Exception:  # noqa: BLE001, S110 — SIGTERM to the process group also stops the JVM: nothing left to stop
            pass
    runtime.close()
    print("[streaming] stopped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
