"""``make bench``: every benchmark part in turn, each part's last JSON line kept under ``bench/results/``,
then one summary (``bench/results/summary.json``, also the LAST line printed) and PNG plots.

    .venv/bin/python -m bench.run_all [--parts kafka,backfill,state,streaming,batch]
                                      [--batch-rows 1000000,5000000] [--backfill-rows 1000000,20700000]
                                      [--report-only]

Parts (each also alone: ``make bench-kafka``, ``bench-backfill``, ``bench-state``, ``bench-streaming``,
``bench-session-window``, ``make batch ROWS=...``):
- kafka      the raw consume rate of a local broker (the ceiling of the streaming figures)
- backfill   the Spark backfill of 1M rows (each of ``--backfill-rows``), cold and warm, against DuckDB's
             cleaning of the same file; 1M is kept as ``backfill``, another size as ``backfill_<rows>``
- state      the session state's Python cost per micro-batch at 2,000 events/s with the 30-min gap
- session_window  the same input sessionized by Spark's native ``session_window`` (the reference)
- streaming  the full app under a stepped load with the 30-min gap (bench/step_load.py)
- batch      ``make batch`` on a fresh lake for each of ``--batch-rows`` (20700000 = the real five months)
A part not run keeps its previous result in the summary (each part says when it was measured).
Needs the MLflow server for the batch part (``make bench`` starts it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools import bench_report
from tools.local_stack import ROOT, log

PARTS = ("kafka", "backfill", "state", "session_window", "streaming", "batch")
STATE_INPUT = ROOT / "var" / "bench" / "eps2000_40min.csv"


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def run_part(name: str, command: list[str], results: Path, logs: Path, env: dict[str, str] | None = None) -> bool:
    """Run one part (its progress on stderr as it goes), keep its last JSON line; False when it failed."""
    logs.mkdir(parents=True, exist_ok=True)
    log(f"part {name}: {' '.join(command)}")
    t0 = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,  # noqa: S603 — this interpreter, own modules
                          text=True, check=False)
    seconds = time.monotonic() - t0
    (logs / f"{name}.out").write_text(proc.stdout)
    figures = _last_json(proc.stdout)
    if figures is None:
        log(f"part {name} printed no JSON line (exit {proc.returncode}); its output: {logs / (name + '.out')}")
        return False
    # kept with paths relative to the checkout (the results are committed; any clone reads them)
    kept = [str(Path(c).relative_to(ROOT)) if c.startswith(str(ROOT) + os.sep) else c for c in command]
    bench_report.write_part(results, name, figures, command=kept, seconds=seconds, exit_code=proc.returncode)
    log(f"part {name}: exit {proc.returncode} in {seconds:.0f} s -> {results / (name + '.json')}")
    return proc.returncode == 0


def _generate(out: Path, *args: str) -> None:
    """``tools.generate --out out *args`` unless the file is there (the same command as the Makefile's)."""
    if not out.exists():
        subprocess.run([sys.executable, "-m", "tools.generate", *args, "--out", str(out), "--quiet"],  # noqa: S603 — own module
                       cwd=ROOT, check=True)


def _batch_input(rows: int) -> Path:
    """The generated five-month CSV of ``rows`` events (seed 42), generated when missing."""
    csv = ROOT / "var" / "data" / "generated" / f"batch_{rows}_152d.csv"
    _generate(csv, "--rows", str(rows), "--days", "152", "--seed", "42")
    return csv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, in this order: {','.join(PARTS)}")
    p.add_argument("--batch-rows", default="1000000,5000000",
                   help="generated events per batch-chain run (default 1000000,5000000; 20700000 = five months)")
    p.add_argument("--backfill-rows", default=str(bench_report.HEADLINE_BACKFILL_ROWS),
                   help="generated events per backfill-profile run (default 1000000; 20700000 = five months)")
    p.add_argument("--streaming-args", default="", help="extra arguments of bench/step_load.py, e.g. '--steps 1500,2000'")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--report-only", action="store_true", help="only redraw the summary and plots from kept results")
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = [x for x in parts if x not in PARTS]
    if unknown:
        p.error(f"--parts: unknown part {unknown[0]!r}; choose from {','.join(PARTS)}")
    sizes = {}
    for flag, value in (("--batch-rows", args.batch_rows), ("--backfill-rows", args.backfill_rows)):
        try:
            sizes[flag] = [int(x) for x in value.split(",") if x.strip()]
        except ValueError:
            p.error(f"{flag} must be comma-separated integers, got {value!r}")
        if any(n < 1 for n in sizes[flag]):
            p.error(f"{flag} must be positive, got {value!r}")
    batch_rows, backfill_rows = sizes["--batch-rows"], sizes["--backfill-rows"]

    logs = ROOT / "var" / "bench" / "logs"
    py = sys.executable
    failed = []
    for part in [] if args.report_only else parts:
        if part == "kafka":
            ok = run_part(part, [py, "-m", "bench.kafka_consume"], args.results, logs)
        elif part == "backfill":
            ok = True
            for rows in backfill_rows:
                csv = _batch_input(rows)
                ok = run_part(bench_report.backfill_part(rows), [py, "-m", "bench.backfill_profile", "--input", str(csv)],
                              args.results, logs) and ok
        elif part == "state":
            _generate(STATE_INPUT, "--rows", "4800000", "--minutes", "40", "--seed", "42", "--no-subscribers")
            ok = run_part(part, [py, "-m", "bench.session_state", "--sample-buckets", "2"], args.results, logs)
        elif part == "session_window":
            _generate(STATE_INPUT, "--rows", "4800000", "--minutes", "40", "--seed", "42", "--no-subscribers")
            ok = run_part(part, [py, "-m", "bench.session_window"], args.results, logs)
        elif part == "streaming":
            ok = run_part(part, [py, "-m", "bench.step_load", *args.streaming_args.split()], args.results, logs)
        else:
            ok = True
            for rows in batch_rows:
                csv = _batch_input(rows)
                lake = ROOT / "var" / "bench" / f"batch_{rows}" / "lake"
                shutil.rmtree(lake.parent, ignore_errors=True)
                env = {"SHOP__LAKE__ROOT": str(lake), "SHOP__ML__EXPERIMENT_PREFIX": "bench",
                       "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")}
                ok = run_part(f"batch_{rows}", [py, "-m", "jobs.ops.batch_chain", "--input", str(csv)],
                              args.results, logs, env) and ok
        if not ok:
            failed.append(part)

    kept = bench_report.read_parts(args.results)
    summary = bench_report.summarize(kept, os.cpu_count() or 1)
    summary["plots"] = [str(x.relative_to(ROOT)) if x.is_relative_to(ROOT) else str(x)
                        for x in bench_report.plot(kept, args.results)]
    summary["failed_parts"] = failed
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    log(f"summary: {args.results / 'summary.json'}; plots: {', '.join(summary['plots']) or 'none (no parts kept)'}")
    print(json.dumps(summary, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
