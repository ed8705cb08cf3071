"""Replay event CSV files into Kafka (or Pub/Sub), re-timed to the present (make replay FILE=...).

    python -m tools.replay FILE [FILE ...] [--speedup X] [--max-rate EPS] [--limit N] [--shift-to-now]

Dev tooling: the pacing, re-timing and publishing are in lib/data/replayer.py (its docstring has the
modes); this file is the command line: options, inputs, the progress bar and the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from lib.config import ConfigError, load_config
from lib.data.files import DataFileError, RawLine, count_rows, find_real_files, iter_rows
from lib.data.pubsub import PubSubPublisher
from lib.data.replayer import KafkaPublisher, last_valid_event_time, replay
from lib.kafka_admin import KafkaUnavailable, ensure_topic, ping
from lib.sources import kafka_client_options


def _rows(paths: list[Path], limit: int | None) -> Iterator[Mapping[str, str] | RawLine]:
    n = 0
    for p in paths:
        for row in iter_rows(p):
            if limit is not None and n >= limit:
                return
            n += 1
            yield row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.replay",
                                description="Publish event CSV files to Kafka, re-timed to the present.")
    p.add_argument("files", nargs="*", type=Path,
                   help="event CSV files (plain/.gz/.zip); default: the real monthly files in paths.data_dir")
    p.add_argument("--speedup", type=float, default=1.0,
                   help="1 = real time, 60 = an hour per minute, 0 = as fast as possible (default 1)")
    p.add_argument("--max-rate", type=float, default=None, help="cap on events per second")
    p.add_argument("--limit", type=int, default=None, help="publish at most N events")
    p.add_argument("--shift-to-now", action="store_true",
                   help="with --speedup 0: shift times so the last event happens now")
    p.add_argument("--target", choices=("kafka", "pubsub"), default="kafka",
                   help="kafka (default) or Google Pub/Sub (forwarded into Kafka by Managed Kafka Connect)")
    p.add_argument("--pubsub-project", help="with --target pubsub: the GCP project")
    p.add_argument("--pubsub-topic", help="with --target pubsub: the Pub/Sub topic id")
    p.add_argument("--topic", help="Kafka topic (default kafka.topic)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default kafka.bootstrap_servers)")
    p.add_argument("--env", help="config environment (default SHOP_ENV or local)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.speedup < 0:
        p.error("--speedup must be >= 0")
    if args.max_rate is not None and args.max_rate <= 0:
        p.error("--max-rate must be > 0")
    if args.limit is not None and args.limit < 0:
        p.error("--limit must be >= 0")
    if args.shift_to_now and args.speedup != 0:
        p.error("--shift-to-now only applies with --speedup 0")
    if args.target == "pubsub" and not (args.pubsub_project and args.pubsub_topic):
        p.error("--target pubsub needs --pubsub-project and --pubsub-topic")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.env)
        if args.bootstrap:
            cfg = cfg.model_copy(update={"kafka": cfg.kafka.model_copy(update={"bootstrap_servers": args.bootstrap})})
        paths = args.files or find_real_files(cfg.paths.data_dir)
        if not paths:
            raise DataFileError(f"no input: give event files, or drop the real monthly CSVs into {cfg.paths.data_dir}")
        for path in paths:  # fail fast on a missing file or a bad header
            next(iter_rows(path), None)
        if args.target == "pubsub":
            topic = f"projects/{args.pubsub_project}/topics/{args.pubsub_topic}"
            destination = topic
            publisher: PubSubPublisher | KafkaPublisher = PubSubPublisher(args.pubsub_project, args.pubsub_topic)
        else:
            ping(cfg.kafka.bootstrap_servers)
            topic = args.topic or cfg.kafka.topic
            destination = f"{cfg.kafka.bootstrap_servers}/{topic}"
            ensure_topic(cfg.kafka.bootstrap_servers, topic, cfg.kafka.partitions, cfg.kafka.replication_factor)
            publisher = KafkaPublisher(kafka_client_options(cfg), topic)
        shift = None
        if args.shift_to_now:
            now = datetime.now(timezone.utc)
            last = max((t for p in paths if (t := last_valid_event_time(p, now)) is not None), default=None)
            shift = (now - last) if last else None
        total = sum(count_rows(p) for p in paths)
        if args.limit is not None:
            total = min(total, args.limit)
    except (ConfigError, DataFileError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KafkaUnavailable as exc:  # unreachable broker: one line, no trace
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mode = "as fast as possible" if args.speedup == 0 else f"at {args.speedup:g}x real time"
    print(f"[replay] {total} events from {len(paths)} file(s) to {destination}, {mode}",
          file=sys.stderr)
    with tqdm(total=total, unit="ev", disable=args.quiet, file=sys.stderr, smoothing=0.1) as bar:
        stats = replay(_rows(paths, args.limit), publisher, speedup=args.speedup, max_rate=args.max_rate,
                       shift=shift, on_progress=bar.update)
    print(f"[replay] published {stats.published} events in {stats.seconds:.1f} s ({stats.rate:.0f} ev/s); "
          f"undelivered {stats.undelivered}; unparsable times {stats.unparsable_time}; "
          f"raw lines (not UTF-8, over 64 KiB or not CSV) {stats.raw_lines}", file=sys.stderr)
    return 1 if stats.undelivered else 0


if __name__ == "__main__":
    sys.exit(main())
