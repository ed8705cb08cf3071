"""``make batch``: the whole batch chain in one Spark session, locally.

    python -m jobs.ops.batch_chain --input <csv or folder> [--env local] [--stages backfill,gold,...]

Stages in order (conf/batch_chain.yaml): backfill, gold (analyst + feature tables), train_demand (demand +
sale probability), train_clv, score, retarget_uplift, maintain — the same functions ``jobs/batch/run.py
<stage>`` runs. Needs the MLflow tracking server (``make mlflow-start``; ``make batch`` starts it). The
last line on stdout is one JSON object: the holdout metrics of every model and its baseline (with the
margins), and the duration of each stage in seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jobs.ops._cli import open_session  # noqa: E402
from lib.batch import cli  # noqa: E402
from lib.batch.chain import CHAIN, summary  # noqa: E402


def main(argv=None) -> int:
    p = cli.parser("batch", __doc__.splitlines()[0])
    p.add_argument("--input", help="a CSV file or a folder of them (default: paths.data_dir)")
    p.add_argument("--stages", default=",".join(CHAIN), help=f"comma-separated subset of {','.join(CHAIN)}")
    args = p.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in CHAIN]
    if unknown or not stages:
        p.error(f"--stages: unknown stage {unknown[0] if unknown else '(none)'}; choose from {','.join(CHAIN)}")
    opened = open_session(args.env, "shop-batch")
    if opened is None:
        return 2
    # deferred: pyspark loads once the command line and config are right (each stage then loads its own pipeline)
    from lib.batch.stages import STAGES

    cfg, spark = opened
    results, seconds = {}, {}
    started = time.monotonic()
    for name in stages:
        t = time.monotonic()
        options = {"input": args.input} if name == "backfill" else {}
        try:
            results[name] = STAGES[name](spark, cfg, **options)
        except cli.expected_errors() as exc:
            print(f"batch: {name}: {exc}", file=sys.stderr)
            return 1
        seconds[name] = round(time.monotonic() - t, 1)
        print(f"[batch] {name} done in {seconds[name]} s: {json.dumps(results[name], default=str)[:300]}",
              file=sys.stderr)
    report = {"input": args.input or cfg.paths.data_dir, "stages_s": seconds,
              "total_s": round(time.monotonic() - started, 1), **summary(results)}
    if "gold" in results:
        report["history"] = results["gold"]["history"]  # what the models learned from (ml/history.py)
    if "backfill" in results:
        b = results["backfill"]
        report["events"] = {k: b[k] for k in ("bronze", "silver", "quarantined", "duplicates")}
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
