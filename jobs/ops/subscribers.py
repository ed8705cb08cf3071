"""Load the newsletter subscribers into the ``retarget/subscribers`` Delta table, replacing its contents
(make subscribers FILE=...; the logic is in lib/retarget/subscribers.py).

    python -m jobs.ops.subscribers <subscribers.csv> [--env local]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.config import ConfigError, load_config  # noqa: E402
from lib.delta_io import exit_without_teardown  # noqa: E402
from lib.retarget.store import RetargetStore  # noqa: E402
from lib.retarget.subscribers import SubscriberFileError, load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Load newsletter subscribers into the lake.")
    p.add_argument("csv", help="subscribers CSV (user_id,email,consent,first_name,locale)")
    p.add_argument("--env", help="config environment (default local)")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.env)
        n = load(RetargetStore(cfg.lake.root), args.csv)
    except (ConfigError, SubscriberFileError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"loaded {n} subscribers into {cfg.lake.table('retarget', 'subscribers')}")
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
