"""The emails' product catalogue (gold/product_catalogue) from the command line (make catalogue).

    python -m jobs.ops.catalogue import-generator | build [--min-users N] | show [--env local]

import-generator: the generator's catalogue (make demo); build: from silver (Spark, what the gold stage
does); show: how many products and where from. The catalogue itself is lib/retarget/catalogue.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.config import load_config  # noqa: E402
from lib.delta_io import exit_without_teardown  # noqa: E402
from lib.retarget.catalogue import CATALOGUE, MIN_USERS, generator_table, write_from_silver  # noqa: E402
from lib.retarget.store import RetargetStore  # noqa: E402
from lib.spark import build_session  # noqa: E402 (light: pyspark is imported when a session is built, build only)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The product catalogue of the cart-recovery emails (gold/product_catalogue).")
    p.add_argument("command", choices=["import-generator", "build", "show"],
                   help="import-generator: the generator's catalogue (make demo); build: from silver (Spark, "
                        "what the gold stage does); show: how many products and where from")
    p.add_argument("--env", help="config environment (default local)")
    p.add_argument("--min-users", type=int, default=MIN_USERS, help="build: distinct users a product needs")
    args = p.parse_args(argv)
    cfg = load_config(args.env)
    store = RetargetStore(cfg.lake.root)
    if args.command == "import-generator":
        store.overwrite(CATALOGUE, generator_table())
    elif args.command == "build":
        spark = build_session(cfg, "product-catalogue", batch=True)
        try:
            write_from_silver(spark, cfg, args.min_users)
        finally:
            spark.stop()
    t = store.read(CATALOGUE, ["source"])
    sources = sorted(set(t.column(0).to_pylist()) - {None})
    print(f"{CATALOGUE}: {t.num_rows:,} products (source: {', '.join(sources) or '-'})")
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
