"""One-shot run for operators and acceptance checks: a file of events in, the emails out.

    make run-once INPUT=<events.csv> SUBSCRIBERS=<subscribers.csv> OUT=<dir>
    (= .venv/bin/python -m tools.run_once --input ... --subscribers ... --out ...)

Builds a fresh, isolated environment under OUT (``lake/``, ``checkpoints/``, broker data, logs and
the Maildir ``mail/``), loads the subscribers, starts a Kafka broker, the SMTP server and the full
streaming app (all queries + dispatcher), replays the file through Kafka as fast as it goes (event
times kept), then advances the clock past the session gap (a tick on the clock topic), waits until
every event is accounted for and every abandoned cart has its decision (and its email), and exits 0.

Config overrides work through the usual variables, e.g. ``SHOP__RETARGET__CONTROL_SHARE=0``. The
watermark delay defaults to the session gap here (a fast replay interleaves partitions unevenly; a
live run keeps the small default), unless ``SHOP__SESSIONS__WATERMARK_DELAY_SECONDS`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path

import pyarrow.compute as pc

from lib import delta_io
from lib.config import ConfigError
from lib.data.files import DataFileError, iter_rows
from lib.data.replayer import KafkaPublisher, last_event_time, replay
from lib.retarget.store import RetargetStore
from lib.retarget.subscribers import SubscriberFileError, read_subscribers
from lib.retarget.subscribers import load as load_subscribers
from tools.local_stack import Stack, log
from tools.wait import wait_until


class RunError(Exception):
    pass


def _table(lake: Path, name: str, columns: list[str] | None = None):
    return delta_io.read_table(lake / name, columns)


def _sum(lake: Path, name: str, column: str) -> int:
    t = _table(lake, name, [column])
    return 0 if t is None or t.num_rows == 0 else int(pc.sum(t.column(column)).as_py() or 0)


def _max_time(lake: Path, name: str, column: str):
    """Greatest value of a timestamp column (aware UTC), or None for an empty/missing table."""
    t = _table(lake, name, [column])
    value = None if t is None or t.num_rows == 0 else pc.max(t.column(column)).as_py()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


_STOP = threading.Event()


def _terminate(signum, _frame) -> None:
    """SIGTERM as Ctrl-C: unwind through main's clean-up, which stops the broker, SMTP server and app.

    The flag makes it stick: an exception raised by a signal handler while the interpreter runs a
    ``__del__`` or a GC callback (frequent here: Delta/Arrow objects every second) is printed and
    dropped by Python, so :func:`_wait` raises it again on its next round."""
    _STOP.set()
    raise KeyboardInterrupt(f"signal {signum}")


def _check_stop() -> None:
    if _STOP.is_set():
        raise KeyboardInterrupt("signal 15")


def _wait(what: str, predicate, timeout: float, app) -> None:
    def ready() -> bool:
        _check_stop()
        if app.poll() is not None:
            raise RunError(f"the streaming app exited while waiting for {what}")
        return predicate()

    wait_until(ready, timeout, 1, what, error=RunError)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Replay a file through the full streaming app and dispatch the emails.")
    p.add_argument("--input", required=True, type=Path, help="events CSV (.csv, .csv.gz or .zip)")
    p.add_argument("--subscribers", required=True, type=Path, help="subscribers CSV")
    p.add_argument("--out", required=True, type=Path, help="fresh directory for everything this run writes")
    p.add_argument("--partitions", type=int, default=4, help="Kafka partitions of the events topic (default 4)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each stage (default 3600)")
    p.add_argument("--force", action="store_true", help="empty OUT first if it exists")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if not args.input.is_file():
            raise RunError(f"input file not found: {args.input}")
        read_subscribers(args.subscribers)  # fail fast on a bad file, before anything starts
        out = args.out.resolve()
        if out.exists() and any(out.iterdir()):
            if not args.force:
                raise RunError(f"{out} is not empty (use a fresh directory, or --force to empty it)")
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        overrides = {
            "SHOP__LAKE__ROOT": str(out / "lake"), "SHOP__LAKE__CHECKPOINTS": str(out / "checkpoints"),
            "SHOP__PATHS__RUN_DIR": str(out / "run"), "SHOP__PATHS__LOG_DIR": str(out / "log"),
        }
        stack = Stack(out, overrides=overrides)
        cfg = stack.config()
        if "SHOP__RETARGET__STALE_AFTER_HOURS" not in os.environ:
            # a replay of a historical file: by the wall clock every cart expired long ago; an offer is
            # stale only when the outage is real, never because the data is old
            stack.env["SHOP__RETARGET__STALE_AFTER_HOURS"] = "0"
        if "SHOP__SESSIONS__WATERMARK_DELAY_SECONDS" not in os.environ:
            stack.env["SHOP__SESSIONS__WATERMARK_DELAY_SECONDS"] = str(cfg.sessions.gap_minutes * 60)
            cfg = stack.config()
    except (RunError, ConfigError, SubscriberFileError, DataFileError) as exc:
        print(f"run-once: {exc}", file=sys.stderr)
        return 2

    lake = out / "lake"
    t_start = time.monotonic()
    try:
        n_subs = load_subscribers(RetargetStore(str(lake)), args.subscribers)
        log(f"loaded {n_subs} subscribers; starting broker, SMTP server and streaming app under {out}")
        stack.start(topic_partitions=args.partitions, with_dashboard=False)
        last = last_event_time(args.input)
        if last is None:
            raise RunError(f"{args.input}: no event with a readable time")
        log(f"replaying {args.input} (event times kept) …")
        stats = replay(iter_rows(args.input), KafkaPublisher({"bootstrap.servers": stack.bootstrap}, cfg.kafka.topic),
                       speedup=0)
        _check_stop()
        if stats.undelivered:
            raise RunError(f"{stats.undelivered} events could not be delivered to Kafka")
        n = stats.published
        log(f"published {n} events in {stats.seconds:.0f} s ({stats.raw_lines} lines not UTF-8, over 64 KiB or not CSV "
            f"published as raw bytes, for quarantine); waiting for the lakehouse and the sessions")
        _wait("the lakehouse to account for every event",
              lambda: _sum(lake, "ops/quality_batches", "read") >= n, args.timeout, stack.app)
        valid_or_dup = n - _sum(lake, "ops/quality_batches", "quarantined")
        _wait("the sessions query to read every valid event",
              lambda: _sum(lake, "ops/session_batches", "rows_in") >= valid_or_dup, args.timeout, stack.app)
        sc = cfg.sessions
        # The clock moves to the newest *valid* event (silver), not the file's newest row: a quarantined
        # row dated far in the future must not set a time that the watermark is rightly never allowed to reach.
        valid_last = _max_time(lake, "silver/events", "event_time")
        if valid_last is None:
            raise RunError(f"{args.input}: no valid event (every row is quarantined: see quarantine/events in {lake})")
        if valid_last < last:
            log(f"the file's newest row ({last.isoformat()}) was quarantined; the newest valid event is {valid_last.isoformat()}")
        tick = valid_last + timedelta(minutes=sc.gap_minutes, seconds=sc.watermark_delay_seconds + 1)
        log(f"advancing the clock to {tick.isoformat()} (last event + gap + watermark delay)")
        clock = KafkaPublisher({"bootstrap.servers": stack.bootstrap}, sc.clock_topic)
        clock.publish(None, json.dumps({"event_time": tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}).encode())
        if clock.flush():
            raise RunError("could not publish the clock tick")

        def all_decided() -> bool:
            wm = _table(lake, "ops/session_batches", ["watermark"])
            if wm is None or wm.num_rows == 0:
                return False
            marks = [w for w in wm.column("watermark").to_pylist() if w is not None]
            if not marks or max(marks) < tick - timedelta(seconds=sc.watermark_delay_seconds):
                return False
            outbox = _table(lake, "retarget/outbox", ["user_session"])
            decided = _table(lake, "retarget/decisions", ["user_session"])
            return {*(outbox.column(0).to_pylist() if outbox else [])} <= {
                *(decided.column(0).to_pylist() if decided else [])}

        _wait("every session to expire and every abandoned cart to be decided", all_decided, args.timeout, stack.app)
        time.sleep(sc.trigger_seconds + 1)  # one more sessions batch: nothing left after the watermark moved
        _wait("the last decisions", all_decided, args.timeout, stack.app)
    except RunError as exc:
        print(f"run-once: {exc} (logs: {out / 'log'})", file=sys.stderr)
        stack.stop()
        return 1
    except BaseException:
        stack.stop()
        raise
    stack.stop()

    dec = _table(lake, "retarget/decisions", ["decision"])
    decisions = Counter(dec.column(0).to_pylist() if dec is not None else [])
    summary = {
        "events": n, "seconds": round(time.monotonic() - t_start, 1),
        "lakehouse": {k: _sum(lake, "ops/quality_batches", k) for k in ("read", "valid", "quarantined", "duplicates")},
        "sessions": {k: _sum(lake, "ops/session_batches", k) for k in ("expired", "abandoned", "checked_out",
                                                                       "emptied", "python_calls")},
        "outbox": _table(lake, "retarget/outbox", ["user_session"]).num_rows,
        "decisions": dict(decisions),
        "emails": len(stack.messages()),
        "maildir": str(out / "mail"),
        "lake": str(lake),
    }
    print(f"[run-once] done: {summary['emails']} emails in {out / 'mail' / 'new'}; lake {lake}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: main() has stopped what it started
        print("run-once: interrupted; the services it started are stopped", file=sys.stderr)
        sys.exit(130)
