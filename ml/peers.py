"""Classical forecasting peers of the demand model: what a data scientist would have picked instead.

Nixtla ``statsforecast``'s intermittent-demand methods (Croston SBA and optimised, ADIDA, IMAPA, TSB)
and an ETS(A,N,A), fitted per product on the daily units of the panel (``features/product_daily``,
``units_1d``). They are scored on the *same* rolling-origin folds, rows and metrics as the MLlib
model (:mod:`ml.demand`): for a test day ``d`` each peer sees the product's units up to and
including ``d`` and forecasts the next ``horizon`` days; the sum is its ``units_next_{h}d``.

A peer that wins the backtest serves: :class:`PeerForecaster` wraps it as an MLflow pyfunc whose
input is the daily history (``product_id, date, units``) and whose output is one forecast per
product, so ``score`` needs no special case beyond the flavor it already checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from sklearn.isotonic import IsotonicRegression

from ml import registry

# statsforecast model aliases, in the order they are reported
PEERS: tuple[str, ...] = ("CrostonSBA", "CrostonOptimized", "ADIDA", "IMAPA", "TSB", "ETS")
SERIES_COLUMNS = ("product_id", "date", "units")


def make_models(names: tuple[str, ...] = PEERS) -> list:
    """Fresh statsforecast model objects for ``names`` (TSB with the usual smoothing of 0.1/0.1;
    ETS is the additive-error, no-trend, additive weekly-season form: the automatic search over all
    forms scored the same on the 1M backtest, at twice the time)."""
    # deferred: statsforecast.models takes ~1.3 s to import (numba); the batch stages without peers skip it
    from statsforecast.models import ADIDA, IMAPA, TSB, AutoETS, CrostonOptimized, CrostonSBA

    factories: dict[str, Callable[[], Any]] = {
        "CrostonSBA": CrostonSBA, "CrostonOptimized": CrostonOptimized, "ADIDA": ADIDA, "IMAPA": IMAPA,
        "TSB": lambda: TSB(alpha_d=0.1, alpha_p=0.1),
        "ETS": lambda: AutoETS(season_length=7, model="ANA", alias="ETS"),
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown peer {unknown[0]}; choose from {', '.join(factories)}")
    return [factories[n]() for n in names]


def _statsforecast(names: tuple[str, ...], n_jobs: int):
    from statsforecast import StatsForecast  # deferred: ~1.3 s import (numba), see make_models

    return StatsForecast(models=make_models(names), freq="D", n_jobs=n_jobs)


def jobs(configured: int) -> int:
    """``ml.peer_jobs`` -> statsforecast's ``n_jobs`` (0: every core)."""
    return configured or os.cpu_count() or 1


def _long(series: pd.DataFrame) -> pd.DataFrame:
    """``product_id, date, units`` -> statsforecast's ``unique_id, ds, y`` (sorted, float)."""
    df = pd.DataFrame({"unique_id": series["product_id"].astype("int64"),
                       "ds": pd.to_datetime(series["date"]), "y": series["units"].astype(float)})
    return df.sort_values(["unique_id", "ds"], ignore_index=True)


def backtest(series: pd.DataFrame, test_dates: list[date], horizon: int, names: tuple[str, ...] = PEERS,
             n_jobs: int = 1) -> pd.DataFrame:
    """Forecasts of every peer for every product on every test day: ``product_id, date, <peer>...``
    where ``<peer>`` is the sum of its ``horizon`` daily forecasts made with the units up to ``date``.

    ``test_dates`` must be consecutive days (the backtest blocks are); the series must reach
    ``max(test_dates) + horizon`` (their labels are complete).
    """
    days = sorted(test_dates)
    if any((b - a).days != 1 for a, b in zip(days, days[1:])):
        raise ValueError("peer backtest: the test days must be consecutive")
    df = _long(series)
    end = pd.Timestamp(days[-1]) + pd.Timedelta(days=horizon)
    df = df[df["ds"] <= end]
    cv = _statsforecast(names, n_jobs).cross_validation(df=df, h=horizon, step_size=1, n_windows=len(days))
    cv = cv.reset_index() if "unique_id" not in cv.columns else cv
    out = (cv.groupby(["unique_id", "cutoff"], as_index=False)[list(names)].sum()
           .rename(columns={"unique_id": "product_id", "cutoff": "date"}))
    out[list(names)] = out[list(names)].clip(lower=0.0)
    out["date"] = out["date"].dt.date
    return out


def forecast(series: pd.DataFrame, horizon: int, names: tuple[str, ...] = PEERS, n_jobs: int = 1) -> pd.DataFrame:
    """``product_id, <peer>...``: units over the ``horizon`` days after each product's last day."""
    fc = _statsforecast(names, n_jobs).forecast(df=_long(series), h=horizon)
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    out = fc.groupby("unique_id", as_index=False)[list(names)].sum().rename(columns={"unique_id": "product_id"})
    out[list(names)] = out[list(names)].clip(lower=0.0)
    return out


def register(python_model, name: str, series: pd.DataFrame):
    """Log a peer pyfunc in the active MLflow run and register it as ``name`` (input example: the
    daily history of two products, dates as text as in the signature)."""
    example = series[series["product_id"].isin(series["product_id"].drop_duplicates().head(2))]
    example = example.assign(date=example["date"].astype(str)).reset_index(drop=True)
    output = python_model.predict(None, example)
    return registry.log_python_model(python_model, name, {}, example, output, ("statsforecast", "scikit-learn"))


class PeerForecaster(PythonModel):
    """MLflow pyfunc: one statsforecast method, refitted on the history it is given (that is how
    these methods forecast). Input: ``product_id, date, units`` (every day of each product's
    history, zeros included); output: ``product_id, prediction`` (units over the horizon)."""

    def __init__(self, peer: str, horizon: int):
        self.peer, self.horizon = peer, int(horizon)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ARG002
        missing = [c for c in SERIES_COLUMNS if c not in model_input.columns]
        if missing:
            raise ValueError(f"{self.peer} forecaster: input lacks column {missing[0]} (needs {', '.join(SERIES_COLUMNS)})")
        fc = forecast(model_input, self.horizon, (self.peer,))
        return pd.DataFrame({"product_id": fc["product_id"].astype("int64"),
                             "prediction": fc[self.peer].astype(float).to_numpy()})


def poisson_sale_probability(units_over_horizon, horizon: int) -> np.ndarray:
    """P(at least one unit tomorrow) from a peer's forecast, if tomorrow's units are Poisson with
    the forecast's daily rate: ``1 - exp(-units / horizon)``."""
    return 1.0 - np.exp(-np.clip(np.asarray(units_over_horizon, float), 0.0, None) / horizon)


class Calibrator:
    """Isotonic recalibration of probabilities (scikit-learn), kept as its breakpoints so that the
    pyfunc needs numpy only to apply it."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = np.asarray(x, float), np.asarray(y, float)

    @classmethod
    def fit(cls, p, outcome) -> Calibrator:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(np.asarray(p, float),
                                                                                 np.asarray(outcome, float))
        return cls(iso.X_thresholds_, iso.y_thresholds_)

    def __call__(self, p) -> np.ndarray:
        if len(self.x) == 0:
            return np.asarray(p, float)
        return np.interp(np.asarray(p, float), self.x, self.y)


class PeerSaleProbability(PythonModel):
    """MLflow pyfunc: P(sale tomorrow) from a statsforecast peer, Poisson-transformed and isotonic-
    calibrated. Input as :class:`PeerForecaster`; output ``product_id, prediction`` (a probability)."""

    def __init__(self, peer: str, horizon: int, calibrator: Calibrator):
        self.peer, self.horizon, self.calibrator = peer, int(horizon), calibrator

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ARG002
        units = PeerForecaster(self.peer, self.horizon).predict(context, model_input)
        p = self.calibrator(poisson_sale_probability(units["prediction"], self.horizon))
        return pd.DataFrame({"product_id": units["product_id"], "prediction": p})
