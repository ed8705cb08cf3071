"""``make batch``: the whole batch chain in one Spark session, locally.

    python -m lib.batch.chain --input <csv or folder> [--env local] [--stages backfill,gold,...]

Stages in order: backfill, gold (analyst + feature tables), train_demand (demand + sale probability),
train_clv, score, maintain — the same functions the ``jobs/batch/*.py`` entry points run. Needs the
MLflow tracking server (``make mlflow-start``; ``make batch`` starts it). The last line on stdout is
one JSON object: the holdout metrics of every model and its baseline (with the margins), and the
duration of each stage in seconds.
"""

from __future__ import annotations

import json
import sys
import time

from lib.batch import cli
from lib.batch.stages import STAGES
from lib.config import ConfigError, load_config


def _margin(model: float, baseline: float) -> float:
    """Relative improvement over the baseline (positive = better) for an error metric."""
    return round((baseline - model) / baseline, 4) if baseline else float("nan")


def summary(results: dict) -> dict:
    """The models' holdout metrics, baselines and margins, out of the stages' results."""
    out: dict = {}
    if "train_demand" in results:
        d = results["train_demand"]["demand"]
        best = min(("naive", "seasonal_naive"), key=lambda b: d[b]["wape"])
        peers = [c for c in d["candidates"] if c != "model"]
        out["demand"] = {name: d[name] for name in (*d["candidates"], "naive", "seasonal_naive")}
        out["demand"].update({
            "wape_margin_vs_best_baseline": _margin(d["model"]["wape"], d[best]["wape"]),
            "rmse_margin_vs_best_baseline": _margin(d["model"]["rmse"], d[best]["rmse"]),
            "champion": d["champion_name"], "version": d["version"], "folds": d["folds"]})
        if peers:
            best_peer = min(peers, key=lambda p: d[p]["wape"])
            out["demand"].update({
                "best_peer": best_peer,
                "model_wape_vs_best_peer": round(d["model"]["wape"] / d[best_peer]["wape"], 4),
                "model_rmse_vs_best_peer": round(d["model"]["rmse"] / d[best_peer]["rmse"], 4),
                "model_precision_at_k_vs_best_peer": round(d["model"]["precision_at_k"] / d[best_peer]["precision_at_k"], 4)
                if d[best_peer]["precision_at_k"] else None})
        s = results["train_demand"]["sale_probability"]
        out["sale_probability"] = {"model": s["model"], "frequency_baseline": s["frequency"],
                                   "pr_auc_gain": round(s["model"]["pr_auc"] - s["frequency"]["pr_auc"], 4),
                                   "brier_margin": _margin(s["model"]["brier"], s["frequency"]["brier"]),
                                   "champion": s["champion_name"], "version": s["version"]}
        if s.get("peer_name"):
            out["sale_probability"]["peer"] = {"name": s["peer_name"], **s["peer"]}
    if "train_clv" in results:
        c = results["train_clv"]["clv"]
        out["clv"] = {name: c[name] for name in ("mllib_gbt", "bgnbd_gg", "naive")}
        for name in ("mllib_gbt", "bgnbd_gg"):
            out["clv"][f"{name}_mae_margin"] = _margin(c[name]["mae"], c["naive"]["mae"])
            out["clv"][f"{name}_rmse_margin"] = _margin(c[name]["rmse"], c["naive"]["rmse"])
        out["clv"]["champion"] = c["champion"]
        out["clv"]["holdout_customers"] = c["holdout_customers"]
    return out


def main(argv=None) -> int:
    p = cli.parser("batch", __doc__.splitlines()[0])
    p.add_argument("--input", help="a CSV file or a folder of them (default: paths.data_dir)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    args = p.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        p.error(f"--stages: unknown stage {unknown[0] if unknown else '(none)'}; choose from {','.join(STAGES)}")
    try:
        cfg = load_config(args.env)
        from lib.spark import build_session

        spark = build_session(cfg, app_name="shop-batch")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
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
