"""Kafka admin from the command line (used by scripts/kafka.sh); the logic is in lib/kafka_admin.py.

    python -m jobs.ops.kafka_admin [--bootstrap HOST:PORT] ping
    python -m jobs.ops.kafka_admin [--bootstrap HOST:PORT] ensure-topic [--topic T] [--partitions N]
    python -m jobs.ops.kafka_admin [--bootstrap HOST:PORT] count [--topic T]

Defaults come from the config (``kafka.bootstrap_servers``, ``kafka.topic``, ``kafka.partitions``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.config import ConfigError, load_config  # noqa: E402
from lib.kafka_admin import KafkaUnavailable, ensure_topic, ping, topic_message_count  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.ops.kafka_admin", description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", help="host:port (default: kafka.bootstrap_servers from config)")
    parser.add_argument("--env", help="config environment (default: SHOP_ENV or local)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ping")
    et = sub.add_parser("ensure-topic")
    et.add_argument("--topic")
    et.add_argument("--partitions", type=int)
    ct = sub.add_parser("count")
    ct.add_argument("--topic")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.env)
        bootstrap = args.bootstrap or cfg.kafka.bootstrap_servers
        if args.cmd == "ping":
            print(f"{ping(bootstrap)} broker(s) at {bootstrap}")
        elif args.cmd == "ensure-topic":
            topic = args.topic or cfg.kafka.topic
            partitions = args.partitions or cfg.kafka.partitions
            if partitions < 1:
                parser.error("--partitions must be >= 1")
            created = ensure_topic(bootstrap, topic, partitions, cfg.kafka.replication_factor)
            print(f"[kafka] topic {topic!r} {'created with ' + str(partitions) + ' partitions' if created else 'already exists'}")
        elif args.cmd == "count":
            print(topic_message_count(bootstrap, args.topic or cfg.kafka.topic))
    except (ConfigError, KafkaUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
