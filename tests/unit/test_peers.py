"""The classical demand peers (ml/peers.py) and the champion rule among candidates (ml/demand.py):
pandas only, no Spark."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from ml import peers
from ml.demand import choose_champion

START = date(2020, 1, 1)
DAYS = 70


def _series(**products) -> pd.DataFrame:
    rows = []
    for pid, units in products.items():
        rows += [{"product_id": int(pid[1:]), "date": START + timedelta(days=i), "units": float(u)}
                 for i, u in enumerate(units)]
    return pd.DataFrame(rows)


def _test_days(n: int = 14, horizon: int = 7) -> list[date]:
    last = START + timedelta(days=DAYS - 1 - horizon)
    return [last - timedelta(days=n - 1 - i) for i in range(n)]


def test_every_peer_forecasts_every_product_and_test_day():
    rng = np.random.default_rng(3)
    series = _series(p1=np.full(DAYS, 2.0), p2=np.zeros(DAYS), p3=rng.poisson(0.4, DAYS))
    days = _test_days()
    out = peers.backtest(series, days, 7)
    assert len(out) == 3 * len(days) and set(out["date"]) == set(days)
    assert list(out.columns) == ["product_id", "date", *peers.PEERS]
    assert (out[list(peers.PEERS)] >= 0).all().all()
    steady = out[out["product_id"] == 1].set_index("date")
    others = [p for p in peers.PEERS if p != "CrostonSBA"]
    np.testing.assert_allclose(steady[others].to_numpy(), 14.0, rtol=1e-6)  # 2 a day x 7 days
    np.testing.assert_allclose(steady["CrostonSBA"], 14.0 * 0.95, rtol=1e-6)  # SBA's bias correction 1 - alpha/2
    assert (out[out["product_id"] == 2][list(peers.PEERS)] == 0).all().all()


def test_a_peer_sees_only_the_days_up_to_its_test_day():
    units = np.zeros(DAYS)
    days = _test_days()
    jump = days[5]  # sales start the day after this test day
    units[(jump - START).days + 1:] = 10.0
    out = peers.backtest(_series(p7=units), days, 7, ("CrostonSBA", "ADIDA", "TSB"))
    before = out[out["date"] <= jump]
    after = out[out["date"] > jump + timedelta(days=3)]
    assert (before[["CrostonSBA", "ADIDA", "TSB"]] == 0).all().all()  # nothing leaked from the future
    assert (after[["CrostonSBA", "ADIDA", "TSB"]] > 0).all().all()


def test_test_days_must_be_consecutive_and_peers_known():
    series = _series(p1=np.ones(DAYS))
    with pytest.raises(ValueError, match="consecutive"):
        peers.backtest(series, [START + timedelta(days=40), START + timedelta(days=42)], 7)
    with pytest.raises(ValueError, match="unknown peer Prophet"):
        peers.make_models(("CrostonSBA", "Prophet"))


def test_the_pyfunc_forecasts_what_the_peer_forecasts():
    rng = np.random.default_rng(11)
    series = _series(p1=rng.poisson(1.5, DAYS), p2=rng.poisson(0.2, DAYS))
    model = peers.PeerForecaster("CrostonSBA", 7)
    got = model.predict(None, series.assign(date=series["date"].astype(str)))
    want = peers.forecast(series, 7, ("CrostonSBA",))
    assert list(got["product_id"]) == [1, 2]
    np.testing.assert_allclose(got["prediction"], want["CrostonSBA"])
    with pytest.raises(ValueError, match="lacks column units"):
        model.predict(None, series.drop(columns="units"))


def test_sale_probability_from_a_peer_is_poisson_then_isotonic():
    p = peers.poisson_sale_probability([0.0, 7.0, 70.0], 7)
    np.testing.assert_allclose(p, [0.0, 1 - np.exp(-1), 1 - np.exp(-10)])
    raw = np.linspace(0.05, 0.95, 200)
    outcome = (np.random.default_rng(1).random(200) < raw / 2).astype(float)  # the raw ones are twice too high
    cal = peers.Calibrator.fit(raw, outcome)
    fitted = cal(raw)
    assert np.all(np.diff(fitted) >= 0) and fitted.min() >= 0 and fitted.max() <= 1
    assert abs(fitted.mean() - outcome.mean()) < 1e-9  # isotonic regression keeps the mean
    assert np.mean((fitted - outcome) ** 2) < np.mean((raw - outcome) ** 2)


def test_the_champion_is_the_best_candidate_and_must_beat_the_baselines():
    def m(wape):
        return {"wape": wape, "rmse": 1.0, "precision_at_k": 0.5}

    names = ("model", "CrostonSBA", "ETS")
    metrics = {"model": m(0.56), "CrostonSBA": m(0.54), "ETS": m(0.55), "naive": m(0.9), "seasonal_naive": m(0.66)}
    assert choose_champion(metrics, names) == ("CrostonSBA", True)
    metrics["model"] = m(0.52)
    assert choose_champion(metrics, names) == ("model", True)
    metrics["seasonal_naive"] = m(0.50)  # everything loses to a baseline: nothing is crowned
    assert choose_champion(metrics, names) == ("model", False)
    metrics.update(model=m(0.54), seasonal_naive=m(0.66))  # a tie goes to the earlier candidate
    assert choose_champion(metrics, names) == ("model", True)
