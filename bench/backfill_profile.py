"""Where the Spark backfill's time goes: ``make bench-backfill`` (issue #15, "backfill at Spark speed").

Runs the backfill stage (``lib.batch.stages.backfill``: what ``make backfill`` and ``make batch`` run)
on one CSV, ``--runs`` times in one Spark session, each into a fresh lake under a temp folder: the first
run pays the JVM's warm-up (class loading, JIT), the last is reported as warm. Every Spark job the
backfill starts is timed at its call site in lib/ (the DataFrame actions ``collect``, ``count``,
``toArrow``, ``toPandas`` and ``DataFrameWriter.save``; the appends of one batch run in parallel, so their
times may overlap), beside the stage's own laps (``seconds`` of its JSON) and the creation of the
lake's tables. Then the same file is cleaned twice by ``bench/duckdb_clean.py`` (the single-machine
reference, warm run reported) for the Spark / DuckDB ratios:

* ``spark_duckdb_ratio``: the whole backfill stage (bronze, cleaning, gold sales, ops) / DuckDB's cleaning;
* ``spark_duckdb_cleaning_ratio``: the cleaning laps only (``validate`` + ``write`` + ``count`` + ``appends``: judge,
  duplicates, silver / quarantine / ops writes) / DuckDB's cleaning, which does the same work.

Progress on stderr; the LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from pyspark.sql import readwriter
from pyspark.sql.classic import dataframe

from bench import bench_config
from bench.duckdb_clean import add_input_arguments, clean, ensure_input
from lib import lakehouse
from lib.batch import stages
from lib.config import PROJECT_ROOT as ROOT
from lib.quality import load_rules
from lib.spark import build_session

ACTIONS = ("collect", "count", "toArrow", "toPandas")
DELTA_IO = str(ROOT / "lib" / "delta_io.py")  # its callers are the call sites
CLEANING_LAPS = ("validate", "dedupe", "write", "count", "appends")


class JobClock:
    """Times Spark jobs at their call site in lib/ while installed (a profiler: it wraps methods)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self._undo: list[tuple[object, str, object]] = []

    def _wrap(self, owner, name: str, label: str) -> None:
        orig = getattr(owner, name)
        calls = self.calls

        def timed(*args, **kwargs):
            t0 = time.monotonic()
            try:
                return orig(*args, **kwargs)
            finally:
                site = next((f for f in reversed(traceback.extract_stack()[:-1])
                             if f.filename.startswith(str(ROOT / "lib")) and f.filename != DELTA_IO), None)
                where = f"{Path(site.filename).relative_to(ROOT)}:{site.lineno}" if site else "?"
                calls.append((f"{label} {where}", round(time.monotonic() - t0, 2)))
        self._undo.append((owner, name, orig))
        setattr(owner, name, timed)

    def __enter__(self) -> JobClock:
        for name in ACTIONS:
            self._wrap(dataframe.DataFrame, name, name)
        self._wrap(readwriter.DataFrameWriter, "save", "save")
        self._wrap(readwriter.DataFrameReader, "load", "load (Delta snapshot)")
        self._wrap(lakehouse, "sales_increments", "sales_increments (pandas)")
        self._wrap(lakehouse.ServingTables, "apply", "serving apply (delta-rs MERGEs)")
        self._wrap(lakehouse.Lakehouse, "ensure_tables", "ensure_tables")
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, orig in reversed(self._undo):
            setattr(owner, name, orig)


def log(msg: str) -> None:
    print(f"[bench-backfill] {msg}", file=sys.stderr, flush=True)


def run_once(spark, base_cfg_env: dict, path: Path, work: Path) -> dict:
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    cfg = bench_config(**base_cfg_env, SHOP__LAKE__ROOT=str(lake))
    with JobClock() as clock:
        t0 = time.monotonic()
        result = stages.backfill(spark, cfg, str(path))
        seconds = round(time.monotonic() - t0, 2)
    laps = result["files"][0]["seconds"]
    ensure = sum(s for site, s in clock.calls if site.startswith("ensure_tables"))
    return {"seconds": seconds, "rows": result["bronze"], "silver": result["silver"],
            "quarantined": result["quarantined"], "duplicates": result["duplicates"],
            "laps": laps, "ensure_tables_s": round(ensure, 2),
            "cleaning_s": round(sum(laps.get(k, 0) for k in CLEANING_LAPS), 2),
            "jobs": [[site, s] for site, s in clock.calls if not site.startswith("ensure_tables")]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_input_arguments(p)
    p.add_argument("--runs", type=int, default=2, help="backfills in one Spark session; the last is reported as warm (2)")
    p.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB reference (no ratios)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    path = ensure_input(args.input, args.rows, args.days, args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    env = {"SHOP__PATHS__RUN_DIR": str(work / "run")}
    try:
        t0 = time.monotonic()
        spark = build_session(bench_config(**env), "bench-backfill", batch=True)  # as make backfill runs
        session_s = round(time.monotonic() - t0, 2)
        runs = []
        for i in range(args.runs):
            r = run_once(spark, env, path, work)
            runs.append(r)
            log(f"backfill {i + 1}/{args.runs}: {r['seconds']:.2f} s (tables {r['ensure_tables_s']} s) {r['laps']}")
            for site, s in r["jobs"]:
                log(f"  {s:7.2f} s  {site}")
        spark.stop()
        duck = None
        if not args.no_duckdb:
            rules = load_rules()
            for _ in range(2):
                duck = clean(path, work / "duckdb", rules, threads=2)
            log(f"duckdb cleaning (warm): {duck['seconds']:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    warm, first = runs[-1], runs[0]
    out = {
        "bench": "backfill_profile", "input": str(path), "rows": warm["rows"],
        "backfill_s": warm["seconds"], "backfill_first_s": first["seconds"],
        "rows_per_s": round(warm["rows"] / warm["seconds"]) if warm["seconds"] else None,
        "rows_per_s_first": round(first["rows"] / first["seconds"]) if first["seconds"] else None,
        "laps_s": warm["laps"], "ensure_tables_s": warm["ensure_tables_s"], "cleaning_s": warm["cleaning_s"],
        "first_laps_s": first["laps"], "jobs_s": warm["jobs"], "spark_session_start_s": session_s,
        "silver": warm["silver"], "quarantined": warm["quarantined"], "duplicates": warm["duplicates"],
    }
    if duck is not None:
        out.update({"duckdb_clean_s": duck["seconds"],
                    "spark_duckdb_ratio": round(warm["seconds"] / duck["seconds"], 1),
                    "spark_duckdb_cleaning_ratio": round(warm["cleaning_s"] / duck["seconds"], 1),
                    "counts_equal": (duck["silver"], duck["quarantined"], duck["duplicates"])
                    == (warm["silver"], warm["quarantined"], warm["duplicates"])})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
