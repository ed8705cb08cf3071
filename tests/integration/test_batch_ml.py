"""The batch chain end to end on a small generated history: backfill (same cleaning as streaming,
every row accounted for), gold + feature tables queryable by name, models trained and registered in
a real MLflow server, champion aliases, scoring, maintenance, and the job CLIs' error handling."""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from lib.batch import cli, stages
from lib.config import PROJECT_ROOT, load_config

pytestmark = pytest.mark.integration

ROWS, DAYS = 40_000, 70


@pytest.fixture(scope="module")
def bcfg(test_root, mlflow_server):
    root = test_root / f"batch-{uuid.uuid4().hex[:6]}"
    return load_config("local", environ={
        "SHOP__LAKE__ROOT": str(root / "lake"), "SHOP__LAKE__CHECKPOINTS": str(root / "checkpoints"),
        "SHOP__PATHS__RUN_DIR": str(root / "run"), "SHOP__SPARK__SHUFFLE_PARTITIONS": "2",
        "SHOP__ML__EXPERIMENT_PREFIX": f"t{uuid.uuid4().hex[:8]}", "SHOP__ML__MAX_PRODUCTS": "40",
        "SHOP__ML__GBT_MAX_ITER": "10", "SHOP__ML__GBT_MAX_DEPTH": "3", "SHOP__ML__BACKTEST_FOLDS": "2",
        "SHOP__ML__TOP_K": "10", "SHOP__ML__CLV_HORIZON_DAYS": "21", "SHOP__BATCH__COMPACT_MIN_FILES": "2",
    })


@pytest.fixture(scope="module")
def events_csv(test_root):
    from lib.data.generator.writers import write_csv

    out = test_root / "batch-events.csv"
    write_csv(out, ROWS, seed=5, days=DAYS)
    return out


# One fixture per stage, each building on the previous one: the chain runs once per module, and
# every stage's time counts against the test that first needs it.
@pytest.fixture(scope="module")
def backfilled(spark, bcfg, events_csv):
    return {"backfill": stages.backfill(spark, bcfg, str(events_csv))}


@pytest.fixture(scope="module")
def golden(spark, bcfg, backfilled):
    return {**backfilled, "gold": stages.gold(spark, bcfg)}


@pytest.fixture(scope="module")
def demand_trained(spark, bcfg, golden):
    return {**golden, **stages.train_demand(spark, bcfg)}


@pytest.fixture(scope="module")
def chain(spark, bcfg, demand_trained):
    return {**demand_trained, **stages.train_clv(spark, bcfg)}


def table(spark, cfg, name):
    return spark.read.format("delta").load(cfg.lake.table(*name.split("/")))


def test_backfill_accounts_for_every_row(spark, bcfg, backfilled):
    b = backfilled["backfill"]
    assert b["bronze"] == ROWS
    assert b["bronze"] == b["silver"] + b["quarantined"] + b["duplicates"]
    assert b["quarantined"] > 0 and b["duplicates"] > 0  # the generator's quirks reach both
    assert table(spark, bcfg, "silver/events").count() == b["silver"]
    assert table(spark, bcfg, "quarantine/events").count() == b["quarantined"]
    reasons = {r for row in table(spark, bcfg, "quarantine/events").select("reasons").collect() for r in row.reasons}
    assert "non_positive_price" in reasons


def test_backfill_writes_silver_one_file_per_day(bcfg, backfilled):
    files = [Path(f).parent.name for f in DeltaTable(bcfg.lake.table("silver", "events")).file_uris()]
    assert len(files) == len(set(files)) > 1  # one load: each event_date=... folder holds one file


def test_backfill_again_adds_nothing(spark, bcfg, backfilled, events_csv):
    again = stages.backfill(spark, bcfg, str(events_csv))
    assert again["bronze"] == ROWS
    assert table(spark, bcfg, "bronze/events").count() == ROWS
    assert table(spark, bcfg, "silver/events").count() == backfilled["backfill"]["silver"]


def test_tables_are_registered_for_spark_sql(spark, bcfg, golden):
    assert golden["gold"]["registered"] >= 12
    units = spark.sql("SELECT sum(units) AS u FROM gold.daily_product_sales").first()["u"]
    assert units == table(spark, bcfg, "silver/events").where("event_type = 'purchase'").count()
    rate = spark.sql("SELECT avg(session_no_purchase_rate) AS r FROM gold.carts_without_purchase_daily").first()["r"]
    assert 0 < rate < 1
    assert spark.sql("SELECT count(*) AS n FROM features.product_daily").first()["n"] == 40 * DAYS


def _check_champion(name: str, result: dict) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from ml import registry

    if result["champion"]:
        assert int(registry.champion(name).version) == result["version"]
    else:
        with pytest.raises(MlflowException):
            MlflowClient().get_model_version_by_alias(name, registry.CHAMPION)


def test_demand_and_sale_models_are_evaluated_and_registered(bcfg, demand_trained):
    from mlflow.models import get_model_info

    from ml import registry

    d, s = demand_trained["demand"], demand_trained["sale_probability"]
    assert d["candidates"] == ["model", *bcfg.ml.peers] and len(bcfg.ml.peers) == 6
    for name in (*d["candidates"], "naive", "seasonal_naive"):
        assert all(math.isfinite(d[name][k]) for k in ("wape", "rmse", "precision_at_k")), name
    assert d["test_rows"] == 40 * 2 * 7  # products x folds x days per block
    assert [f["fold"] for f in d["folds"]] == [0, 1] and set(d["folds"][0]) >= set(d["candidates"])
    # the champion rule: the best candidate (model or peer) on WAPE, crowned only when it beats both baselines
    best = min(d["candidates"], key=lambda c: (d[c]["wape"], d["candidates"].index(c)))
    assert d["best"] == best
    assert d["champion"] == (d[best]["wape"] < min(d["naive"]["wape"], d["seasonal_naive"]["wape"]))
    assert d["version"] == d["versions"][best] and ("model" in d["versions"])
    _check_champion(registry.model_name(bcfg, "demand"), d)
    # sale probability: the model against the best demand peer turned into a calibrated probability
    assert s["peer_name"] == min(bcfg.ml.peers, key=lambda p: d[p]["wape"])
    best = max(("model", "peer"), key=lambda c: (s[c]["pr_auc"], c == "model"))
    assert s["best"] == best and 0 <= s["peer"]["brier"] <= 1
    assert s["champion"] == (s[best]["pr_auc"] > s["frequency"]["pr_auc"] and s[best]["brier"] < s["frequency"]["brier"])
    _check_champion(registry.model_name(bcfg, "sale_probability"), s)
    info = get_model_info(f"models:/{registry.model_name(bcfg, 'demand')}/{d['versions']['model']}")
    assert info.signature is not None and "units_7d" in info.signature.inputs.input_names()
    assert info.saved_input_example_info is not None


def test_the_learned_demand_model_is_champion_ahead_of_every_peer(demand_trained):
    """Model quality on a fixed-seed dataset (40k events over 70 days, seed 5, 40 products): the
    learned model (XGBoost, Poisson) is the champion — WAPE below the best classical peer's, RMSE
    and precision@K no worse than that peer's — and at least 15 % below the seasonal naive's WAPE.
    Measured: model 0.720 / RMSE 1.227 / P@10 0.571; best peer CrostonOptimized 0.730 / 1.231 / 0.543;
    seasonal naive 0.913. Fails when a change to the features, the learner or the data lets a classical
    method (or a naive rule) forecast better — the champion would then be a peer. Checked once by breaking
    the model on purpose (training labels permuted across rows): WAPE 0.789 / RMSE 1.413 / P@10 0.300,
    CrostonOptimized crowned, and 0.789 > 0.85 x 0.913."""
    d = demand_trained["demand"]
    peers = [c for c in d["candidates"] if c != "model"]
    best_peer = min(peers, key=lambda p: d[p]["wape"])
    model, peer = d["model"], d[best_peer]
    assert d["champion_name"] == "model", (d["champion_name"], model, best_peer, peer)
    assert model["wape"] < peer["wape"], (model, best_peer, peer)
    assert model["rmse"] <= peer["rmse"] and model["precision_at_k"] >= peer["precision_at_k"], (model, best_peer, peer)
    assert model["wape"] <= 0.85 * d["seasonal_naive"]["wape"], (model, d["seasonal_naive"])


def test_the_sale_probability_model_beats_the_frequency_baseline(demand_trained):
    """Model quality on the fixed-seed dataset: the sale-probability model (``ml.sale_learner``, XGBoost)
    is the champion, its PR-AUC at least 15 % above the per-product frequency baseline's and its Brier
    score no worse. Measured (backtest alone, 2026-12-01): model PR-AUC 0.275 / Brier 0.1226; frequency
    0.219 / 0.1267 (MLlib's GBT before it: 0.274 / 0.1231; best peer (Croston) 0.247 / 0.1239). Fails when
    the model stops ranking tomorrow's sellers better than "how often it sold". Checked by breaking the
    model on purpose (training labels permuted across rows): XGBoost PR-AUC 0.138, Brier 0.1352 (MLlib's
    GBT 0.130 / 0.1325)."""
    s = demand_trained["sale_probability"]
    model, base = s["model"], s["frequency"]
    assert s["champion_name"] == "model", s
    assert model["pr_auc"] >= 1.15 * base["pr_auc"], (model, base)
    assert model["brier"] <= base["brier"], (model, base)


def test_the_other_sale_learner_beats_the_frequency_baseline_too(spark, bcfg, golden):
    """``ml.sale_learner: mllib_gbt`` (MLlib's GBTClassifier, the learner before XGBoost) on the same
    backtest: a probability per row, and the same quality bar as the default learner. Measured: PR-AUC
    0.274 / Brier 0.1231 against the frequency's 0.219 / 0.1267."""
    from ml import sale_probability

    mllib = bcfg.model_copy(update={"ml": bcfg.ml.model_copy(update={"sale_learner": "mllib_gbt"})})
    assert type(sale_probability.classifier(mllib).getStages()[-1]).__name__ == "GBTClassifier"
    pred, _ = sale_probability.backtest_predictions(table(spark, bcfg, "features/product_daily"), mllib)
    assert len(pred) == 40 * 2 * 7 and pred["model"].between(0, 1).all()
    m = sale_probability.metrics(pred)
    assert m["model"]["pr_auc"] >= 1.15 * m["frequency"]["pr_auc"] and m["model"]["brier"] <= m["frequency"]["brier"], m


def test_clv_models_beat_the_naive_baseline(chain):
    """Model quality on the fixed-seed dataset (57 hold-out customers): a champion is crowned and its
    hold-out MAE is at least 25 % and RMSE at least 20 % below the naive baseline's (each customer's
    spend of the last horizon before the cut-off, repeated); the challenger beats the naive MAE too. Measured: BG/NBD + Gamma-Gamma MAE
    10.2 / RMSE 20.0, MLlib GBT 12.0 / 21.4, naive 18.5 / 31.0. Fails when a change leaves the CLV
    no better than extrapolating the past, but not when the model is broken: features shuffled across
    customers or a constant prediction pass too on these 57 customers. The requirement that catches a
    broken CLV runs on a larger fixed-seed history: tests/integration/test_clv_quality.py."""
    c = chain["clv"]
    assert c["champion"] in ("mllib_gbt", "bgnbd_gg"), c
    best, naive = c[c["champion"]], c["naive"]
    assert best["mae"] <= 0.75 * naive["mae"] and best["rmse"] <= 0.8 * naive["rmse"], (c["champion"], best, naive)
    assert all(c[m]["mae"] <= 0.8 * naive["mae"] for m in ("mllib_gbt", "bgnbd_gg")), c


def test_clv_champion_and_challenger(bcfg, chain):
    from ml import registry

    c = chain["clv"]
    for name in ("mllib_gbt", "bgnbd_gg", "naive"):
        assert c[name]["mae"] >= 0 and c[name]["rmse"] >= c[name]["mae"]
    assert set(c["versions"]) == {"mllib_gbt", "bgnbd_gg"}
    if c["champion"]:
        assert int(registry.champion(registry.model_name(bcfg, "clv")).version) == c["versions"][c["champion"]]
        assert c[c["champion"]]["rmse"] < c["naive"]["rmse"]


def test_registered_models_load_by_alias_and_reproduce_predictions(spark, bcfg, golden):
    import mlflow

    from ml import clv, demand, registry
    from ml.features import PANEL_FEATURES

    registry.start(bcfg, "roundtrip")
    panel = table(spark, bcfg, "features/product_daily")
    rows = panel.where(F.col("units_next_7d").isNotNull()).select(*PANEL_FEATURES, "units_next_7d")
    model = demand.regressor(bcfg, "units_next_7d").fit(rows)
    example = rows.select(*PANEL_FEATURES).limit(3).toPandas()
    name = registry.model_name(bcfg, "roundtrip_spark")
    with mlflow.start_run():
        reg = registry.log_spark_model(model, name, example,
                                       model.transform(spark.createDataFrame(example)).select("prediction").toPandas())
    registry.crown(reg, "round-trip test")
    loaded = mlflow.spark.load_model(registry.champion_uri(name))
    expected = [r.prediction for r in model.transform(rows).orderBy(*PANEL_FEATURES).select("prediction").collect()]
    got = [r.prediction for r in loaded.transform(rows).orderBy(*PANEL_FEATURES).select("prediction").collect()]
    assert got == expected

    rfm = table(spark, bcfg, "features/customer_calibration").select("user_id", *clv.RFM_COLUMNS).toPandas()
    bg, gg = clv.fit_bgnbd_gg(rfm)
    direct = clv.bgnbd_gg_predict(bg, gg, rfm[list(clv.RFM_COLUMNS)], 21)
    name = registry.model_name(bcfg, "roundtrip_bgnbd")
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run():
        bg.save(f"{tmp}/bg.nc")
        gg.save(f"{tmp}/gg.nc")
        Path(f"{tmp}/c.json").write_text('{"horizon_days": 21}')
        head = rfm[list(clv.RFM_COLUMNS)].head(3).astype(float)
        reg = registry.log_python_model(clv.BgNbdGammaGamma.model_class(), name,
                                        {"bgnbd": f"{tmp}/bg.nc", "gamma_gamma": f"{tmp}/gg.nc", "config": f"{tmp}/c.json"},
                                        head, pd.DataFrame({"prediction": direct[:3]}), ("pymc-marketing",))
    registry.crown(reg, "round-trip test")
    pyfunc = mlflow.pyfunc.load_model(registry.champion_uri(name))
    np.testing.assert_allclose(pyfunc.predict(rfm[list(clv.RFM_COLUMNS)].astype(float))["prediction"], direct, rtol=1e-9)


def test_only_a_proxied_artifact_store_quiets_spark_mls_failed_save_log(spark):
    """Locally mlflow's direct Spark save to ``mlflow-artifacts:/`` always fails before its fallback;
    that one ERROR logger is off only during such a log, and keeps its level for any other store."""
    from ml import registry

    logger = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getLogger(registry.SPARK_ML_LOGGER)
    before = str(logger.getLevel())
    with registry.quiet_failed_direct_save("mlflow-artifacts:/1/0ab/artifacts"):
        assert str(logger.getLevel()) == "OFF"
    assert str(logger.getLevel()) == before != "OFF"
    with registry.quiet_failed_direct_save("gs://shop-mlflow/1/0ab/artifacts"):
        assert str(logger.getLevel()) == before


def test_a_peer_champion_serves_through_score_like_the_peer_itself(spark, bcfg, golden):
    """A classical peer that wins is registered as a pyfunc over the daily history; ``score``'s
    panel prediction gives exactly what the peer forecasts (and a probability for sale)."""
    import mlflow

    from ml import peers, registry
    from ml.demand import daily_series
    from ml.scoring import predict_panel

    registry.start(bcfg, "roundtrip_peer")
    panel = table(spark, bcfg, "features/product_daily")
    latest = panel.where(F.col("date") == panel.agg(F.max("date")).first()[0])
    series = daily_series(panel)
    calibrator = peers.Calibrator(np.array([0.0, 1.0]), np.array([0.1, 0.6]))
    uris = {}
    for what, python_model in (("d", peers.PeerForecaster("ADIDA", 7)),
                               ("s", peers.PeerSaleProbability("ADIDA", 7, calibrator))):
        name = registry.model_name(bcfg, f"roundtrip_peer_{what}")
        with mlflow.start_run():
            reg = peers.register(python_model, name, series)
        registry.crown(reg, "round-trip test")
        uris[what] = registry.champion_uri(name)
        assert not registry.is_spark_model(uris[what])
    units = predict_panel(spark, uris["d"], panel, latest, "forecast_units").toPandas().sort_values("product_id")
    want = peers.forecast(series, 7, ("ADIDA",)).sort_values("product_id")
    assert list(units["product_id"]) == list(want["product_id"]) and len(units) == 40
    np.testing.assert_allclose(units["forecast_units"], want["ADIDA"], rtol=1e-9)
    p = predict_panel(spark, uris["s"], panel, latest, "p").toPandas().sort_values("product_id")
    np.testing.assert_allclose(p["p"], calibrator(peers.poisson_sale_probability(want["ADIDA"], 7)), rtol=1e-9)


def test_score_writes_gold_tables_with_model_versions(spark, bcfg, chain):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from ml import registry
    from ml.scoring import NoChampion, _champion

    client = MlflowClient()
    names = {"demand": chain["demand"]["version"], "sale_probability": chain["sale_probability"]["version"]}
    missing = registry.model_name(bcfg, "nothing_here")
    client.create_registered_model(missing)
    with pytest.raises(NoChampion):
        _champion(missing)
    for what, version in names.items():  # small data may leave a model without the alias: score its version
        name = registry.model_name(bcfg, what)
        try:
            registry.champion(name)
        except MlflowException:
            client.set_registered_model_alias(name, registry.CHAMPION, str(version))
    if not chain["clv"]["champion"]:
        client.set_registered_model_alias(registry.model_name(bcfg, "clv"), registry.CHAMPION,
                                          str(chain["clv"]["versions"]["mllib_gbt"]))
    result = stages.score(spark, bcfg)
    forecast = table(spark, bcfg, "gold/demand_forecast").toPandas()
    assert result["demand_forecast_rows"] == len(forecast) == 40
    assert sorted(forecast["forecast_rank"]) == list(range(1, 41))
    assert (forecast["forecast_units"] >= 0).all() and forecast["p_sale_tomorrow"].between(0, 1).all()
    assert set(forecast["demand_model_version"]) == {int(registry.champion(registry.model_name(bcfg, "demand")).version)}
    value = table(spark, bcfg, "gold/customer_value").toPandas()
    assert len(value) == result["customer_value_rows"] > 0 and set(value["value_segment"]) <= {"high", "medium", "low"}
    segments = table(spark, bcfg, "gold/customer_segments").toPandas()
    assert segments["customers"].sum() == len(value)
    assert segments["share_of_predicted_value"].sum() == pytest.approx(1.0, abs=1e-3)


def test_maintain_compacts_and_vacuums(spark, bcfg, chain):
    result = stages.maintain(spark, bcfg)
    assert result["tables"] >= 12
    assert result["files_after"] <= result["files_before"]


@pytest.mark.parametrize(("stage", "message"), [
    ("gold", r"^no silver/events in the lake \S+: run the backfill stage \(make backfill\) or the streaming app "
             r"\(make demo\) first$"),
    ("train_demand", r"^no features/product_daily in the lake \S+: run the gold stage \(make gold\) first$"),
    ("train_clv", r"^no features/customer_calibration in the lake \S+: run the gold stage \(make gold\) first$"),
    ("score", r"^no silver/events, features/product_daily, features/customer_current in the lake \S+: run the "
              r"backfill stage \(make backfill\) or the streaming app \(make demo\) and the gold stage \(make gold\) first$"),
])
def test_a_stage_run_before_its_input_exists_names_what_to_run_first(spark, tmp_path, stage, message):
    """Not Spark's PATH_NOT_FOUND stack trace: one line (``jobs/batch/run.py`` prints it and exits 1), and
    the lake is left as it was (nothing created)."""
    lake = tmp_path / "lake"
    cfg = load_config("local", environ={"SHOP__LAKE__ROOT": str(lake), "SHOP__PATHS__RUN_DIR": str(tmp_path / "run")})
    with pytest.raises(stages.MissingInput, match=message):
        stages.STAGES[stage](spark, cfg)
    assert not lake.exists()
    assert stages.MissingInput in cli.expected_errors()


@pytest.mark.parametrize("args", [["--env", "nope"], ["--bogus"]])
def test_job_mistakes_exit_2_with_one_line(args):
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "jobs" / "batch" / "run.py"), "gold", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
