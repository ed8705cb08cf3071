"""Where the gold stage's time goes: ``make bench-gold`` (issue #15, the batch chain in 20 min).

Runs the gold stage (``lib.batch.stages.gold``: what ``make batch`` runs after the backfill) over the
silver of an existing lake (``--lake``: e.g. ``var/bench/batch_1000000/lake``, which ``make
bench-batch`` leaves behind), ``--runs`` times in one Spark session: the first pays the JVM's warm-up,
the last is reported as warm. Each table the stage writes is timed (its ``replace_table``: the Spark
job that computes and writes it), and so is every other Spark action at its call site in lib/ or ml/
(the history check, the panel's bounds, the caches' first fill).

The stage replaces the lake's gold and feature tables with what it computes from the same silver (the
same rows as before: the lake keeps a new table version each run). Progress on stderr; the LAST stdout
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import bench_config
from bench.backfill_profile import JobClock
from lib.batch import gold, stages
from lib.retarget import catalogue
from lib.spark import build_session

WRAPPED = ((gold, "replace_table"), (catalogue, "replace_table"))


def log(msg: str) -> None:
    print(f"[bench-gold] {msg}", file=sys.stderr, flush=True)


class TableClock:
    """Times each ``replace_table`` call of the gold stage by the table it writes."""

    def __init__(self, lake: Path) -> None:
        self.lake = lake
        self.tables: list[tuple[str, float]] = []
        self._undo: list[tuple[object, str, object]] = []

    def __enter__(self) -> TableClock:
        for module, name in WRAPPED:
            orig = getattr(module, name)

            def timed(df, path, *args, _orig=orig, **kwargs):
                t0 = time.monotonic()
                try:
                    return _orig(df, path, *args, **kwargs)
                finally:
                    table = str(Path(path).relative_to(self.lake)) if str(path).startswith(str(self.lake)) else path
                    self.tables.append((table, round(time.monotonic() - t0, 2)))
            self._undo.append((module, name, orig))
            setattr(module, name, timed)
        return self

    def __exit__(self, *exc) -> None:
        for module, name, orig in reversed(self._undo):
            setattr(module, name, orig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lake", required=True, help="a lake with silver (e.g. var/bench/batch_1000000/lake)")
    p.add_argument("--runs", type=int, default=2, help="gold stages in one Spark session; the last is reported as warm (2)")
    args = p.parse_args(argv)
    lake = Path(args.lake).resolve()
    if not (lake / "silver" / "events" / "_delta_log").is_dir():
        p.error(f"--lake: no silver table under {lake} (run make bench-batch or make backfill first)")
    if args.runs < 1:
        p.error("--runs must be >= 1")
    cfg = bench_config(SHOP__LAKE__ROOT=str(lake))
    t0 = time.monotonic()
    spark = build_session(cfg, "bench-gold", batch=True)  # as make batch runs
    session_s = round(time.monotonic() - t0, 2)
    runs = []
    try:
        for i in range(args.runs):
            with JobClock() as jobs, TableClock(lake) as tables:
                t = time.monotonic()
                result = stages.gold(spark, cfg)
                seconds = round(time.monotonic() - t, 2)
            other = [[site, s] for site, s in jobs.calls if not site.startswith("save ")]
            runs.append({"seconds": seconds, "tables_s": dict(tables.tables), "other_jobs_s": other,
                         "events": result["history"]["events"]})
            log(f"gold {i + 1}/{args.runs}: {seconds:.2f} s")
            for name, s in sorted(tables.tables, key=lambda x: -x[1]):
                log(f"  {s:7.2f} s  {name}")
            for site, s in other:
                log(f"  {s:7.2f} s  {site}")
    finally:
        spark.stop()
    warm, first = runs[-1], runs[0]
    print(json.dumps({"bench": "gold_profile", "lake": str(lake), "events": warm["events"],
                      "gold_s": warm["seconds"], "gold_first_s": first["seconds"],
                      "tables_s": warm["tables_s"], "other_jobs_s": warm["other_jobs_s"],
                      "tables_sum_s": round(sum(warm["tables_s"].values()), 2),
                      "first_tables_s": first["tables_s"], "spark_session_start_s": session_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
