"""Out-of-sample metrics and plots (numpy/scikit-learn on the collected test predictions, which are
small: one row per product and test day, or per held-out customer).

Demand: WAPE (sum |error| / sum actual), RMSE, precision@K of the predicted top sellers per day.
Sale probability: PR-AUC (average precision), Brier score, a calibration table/plot.
CLV: MAE, RMSE, Spearman rank correlation, top-decile lift (mean actual spend of the top 10 %
by prediction / mean actual spend of everyone).

RMSE, MAE, Brier and PR-AUC are scikit-learn's (``sklearn.metrics``), identical to the last bit to the
formulas they replaced. Written here because no library has the same figure: WAPE, precision@K per
day, top-decile lift, and the calibration table (``sklearn.calibration.calibration_curve`` puts a
probability on a bin edge, e.g. 0.5, in the lower bin and sums differently, so its figures differ).
Brier is ``mean_squared_error`` of the probabilities, its definition: ``brier_score_loss`` sums over
both classes and halves, which moves the last bit in about 1 case in 1,000.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, mean_absolute_error, mean_squared_error, root_mean_squared_error


def wape(y, yhat) -> float:
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    total = np.abs(y).sum()
    return float(np.abs(y - yhat).sum() / total) if total > 0 else math.nan


def rmse(y, yhat) -> float:
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    return float(root_mean_squared_error(y, yhat)) if len(y) else math.nan


def mae(y, yhat) -> float:
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    return float(mean_absolute_error(y, yhat)) if len(y) else math.nan


def precision_at_k(df: pd.DataFrame, actual: str, predicted: str, k: int, group: str = "date") -> float:
    """Mean over ``group`` (a test day) of |predicted top k ∩ actual top k| / k (ties: by product id)."""
    scores = []
    for _, g in df.groupby(group):
        kk = min(k, len(g))
        if kk == 0:
            continue
        top_true = set(g.sort_values([actual, "product_id"], ascending=[False, True]).head(kk)["product_id"])
        top_pred = set(g.sort_values([predicted, "product_id"], ascending=[False, True]).head(kk)["product_id"])
        scores.append(len(top_true & top_pred) / kk)
    return float(np.mean(scores)) if scores else math.nan


def pr_auc(y, p) -> float:
    y = np.asarray(y, int)
    return float(average_precision_score(y, p)) if 0 < y.sum() < len(y) else math.nan


def brier(y, p) -> float:
    y, p = np.asarray(y, float), np.asarray(p, float)
    return float(mean_squared_error(y, p)) if len(y) else math.nan


def calibration_table(y, p, bins: int = 10) -> pd.DataFrame:
    """Predicted vs observed frequency in equal-width probability bins (empty bins left out)."""
    y, p = np.asarray(y, float), np.clip(np.asarray(p, float), 0.0, 1.0)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    df = pd.DataFrame({"bin": idx, "p": p, "y": y})
    out = df.groupby("bin").agg(mean_predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size"))
    return out.reset_index()


def spearman(y, yhat) -> float:
    """Rank correlation; NaN when either side is constant (a rank correlation is undefined there).
    Constant means equal values (``np.ptp``), not a zero ``np.std``: the std of equal floats is often
    ~1e-17, not 0."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    if len(y) < 2 or np.ptp(yhat) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(y, yhat).statistic)


def top_decile_lift(y, yhat) -> float:
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    if len(y) == 0 or y.mean() == 0:
        return math.nan
    n = max(1, int(math.ceil(len(y) * 0.1)))
    order = np.lexsort((np.arange(len(y)), -yhat))  # stable: ties keep input order
    return float(y[order[:n]].mean() / y.mean())


def regression_report(y, yhat) -> dict[str, float]:
    return {"wape": wape(y, yhat), "rmse": rmse(y, yhat)}


def clv_report(y, yhat) -> dict[str, float]:
    return {"mae": mae(y, yhat), "rmse": rmse(y, yhat), "spearman": spearman(y, yhat),
            "top_decile_lift": top_decile_lift(y, yhat)}


# -- plots (matplotlib, headless) ---------------------------------------------------------------------
def _figure():
    """A figure outside pyplot: no backend to choose, nothing kept in pyplot's registry after logging."""
    fig = Figure(figsize=(6, 4.5), dpi=100)
    return fig, fig.subplots()


def calibration_plot(y, probabilities: dict[str, np.ndarray], bins: int = 10):
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, p in probabilities.items():
        t = calibration_table(y, p, bins)
        ax.plot(t["mean_predicted"], t["observed"], marker="o", label=name)
    ax.set_xlabel("predicted probability of >= 1 sale tomorrow")
    ax.set_ylabel("observed frequency")
    ax.set_title("Calibration on the backtest folds")
    ax.legend()
    fig.tight_layout()
    return fig


def actual_vs_predicted_plot(y, predictions: dict[str, np.ndarray], what: str):
    fig, ax = _figure()
    y = np.asarray(y, float)
    hi = float(max([np.max(y, initial=1.0)] + [np.max(np.asarray(p, float), initial=1.0) for p in predictions.values()]))
    for name, p in predictions.items():
        ax.scatter(p, y, s=6, alpha=0.4, label=name)
    ax.plot([0, hi], [0, hi], linestyle="--", color="grey")
    ax.set_xlabel(f"predicted {what}")
    ax.set_ylabel(f"actual {what}")
    ax.legend()
    fig.tight_layout()
    return fig


def lift_plot(y, predictions: dict[str, np.ndarray]):
    """Cumulative share of actual holdout spend captured by the customers ranked by each prediction."""
    fig, ax = _figure()
    y = np.asarray(y, float)
    total = y.sum() or 1.0
    x = np.arange(1, len(y) + 1) / max(len(y), 1)
    for name, p in predictions.items():
        order = np.lexsort((np.arange(len(y)), -np.asarray(p, float)))
        ax.plot(x, np.cumsum(y[order]) / total, label=name)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set_xlabel("share of customers (ranked by prediction)")
    ax.set_ylabel("share of holdout spend")
    ax.legend()
    fig.tight_layout()
    return fig
