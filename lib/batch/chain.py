"""The batch chain's order and ``make batch``'s report (the models' holdout metrics, baselines and margins
out of the stages' results).

The order comes from one file, ``conf/batch_chain.yaml`` (:data:`CHAIN`, :data:`NIGHTLY`; Terraform reads the
same file). This module stays light on purpose: the entry points check a stage's name against it and
answer a command-line mistake before pyspark, MLflow and the models load (``lib/batch/stages.py``).
The command line that runs the chain is ``jobs/ops/batch_chain.py``.
"""

from __future__ import annotations

from lib.config import batch_chain_order

_ORDER = batch_chain_order()
CHAIN: list[str] = _ORDER["stages"]  # what `make batch` runs, in order
NIGHTLY: list[str] = _ORDER["nightly"]  # the nightly chain on Google Cloud


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
