"""MLflow: tracking, model logging with signature + input example, registry and the ``champion`` alias.

Tracking URI: ``MLFLOW_TRACKING_URI`` when set (Dataproc batches get it from ``scripts/submit.sh``),
else ``ml.tracking_uri`` (the local server of ``scripts/mlflow.sh``). Experiments and registered
models are named ``<ml.experiment_prefix>-<what>`` / ``<prefix>_<what>``.

Champion rule: within one training run the candidates (the MLlib model, and for CLV the BG/NBD
challenger) are compared on the *same* holdout against the same naive baseline; the best candidate
gets the ``champion`` alias only if it beats the baseline on the primary metric. Metrics from
different training runs come from different holdouts and are never compared with each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import get_model_info, infer_signature
from pyspark.sql import SparkSession

from lib.config import Config

CHAMPION = "champion"


def tracking_uri(cfg: Config) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.ml.tracking_uri


def model_name(cfg: Config, what: str) -> str:
    return f"{cfg.ml.experiment_prefix}_{what}"


def start(cfg: Config, what: str) -> None:
    """Point MLflow at the tracking server and the experiment ``<prefix>-<what>``."""
    mlflow.set_tracking_uri(tracking_uri(cfg))
    mlflow.set_experiment(f"{cfg.ml.experiment_prefix}-{what.replace('_', '-')}")


def pins(*packages: str) -> list[str]:
    """Exact requirements of the logged model (no slow inference by loading the model)."""
    return [f"{p}=={version(p)}" for p in packages]


@dataclass(frozen=True)
class Registered:
    name: str
    version: int
    run_id: str


# Spark ML's writer logs a failed save at ERROR, with its stack trace, before re-raising it
SPARK_ML_LOGGER = "org.apache.spark.ml.util.Instrumentation"
# artifact URIs Spark cannot write to (no Hadoop file system): mlflow's direct save fails and it falls back
PROXIED_ARTIFACTS = "mlflow-artifacts:"


@contextmanager
def quiet_failed_direct_save(artifact_uri: str) -> Iterator[None]:
    """``mlflow.spark.log_model`` first tries to save the model straight to the run's artifact URI with
    Spark (which works for ``gs://``); on the local tracking server's ``mlflow-artifacts:/`` URI Hadoop has
    no file system, Spark ML logs the exception at ERROR with a 30-line stack trace, and mlflow falls back
    to a local save and an upload — its normal path here, not an error. So for such a URI that one logger
    is off while the model is logged (and back to its level after); any other URI logs as before."""
    spark = SparkSession.getActiveSession()
    if spark is None or not artifact_uri.startswith(PROXIED_ARTIFACTS):
        yield
        return
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j  # type: ignore[union-attr]
    before = log4j.LogManager.getLogger(SPARK_ML_LOGGER).getLevel()
    log4j.core.config.Configurator.setLevel(SPARK_ML_LOGGER, log4j.Level.OFF)
    try:
        yield
    finally:
        log4j.core.config.Configurator.setLevel(SPARK_ML_LOGGER, before)


def log_spark_model(model, name: str, example: pd.DataFrame, output: pd.DataFrame,
                    packages: tuple[str, ...] = ()) -> Registered:
    """Log a fitted Spark ML model (PipelineModel) in the active run and register it as ``name``
    (``packages``: what its stages need beyond pyspark, e.g. ``xgboost-cpu``)."""
    with quiet_failed_direct_save(mlflow.get_artifact_uri()):
        info = mlflow.spark.log_model(
            model, "model", registered_model_name=name, signature=infer_signature(example, output),
            input_example=example, pip_requirements=pins("pyspark", "mlflow", *packages))
    return Registered(name, int(info.registered_model_version), info.run_id)


def log_python_model(python_model, name: str, artifacts: dict[str, str], example: pd.DataFrame,
                     output: pd.DataFrame, packages: tuple[str, ...]) -> Registered:
    """Log a ``mlflow.pyfunc.PythonModel`` with its artifacts in the active run and register it."""
    info = mlflow.pyfunc.log_model(
        name="model", python_model=python_model, artifacts=artifacts, registered_model_name=name,
        signature=infer_signature(example, output), input_example=example,
        pip_requirements=pins("mlflow", *packages))
    return Registered(name, int(info.registered_model_version), info.run_id)


def crown(reg: Registered, reason: str) -> None:
    """Give ``reg`` the champion alias (and record why on the version)."""
    client = MlflowClient()
    client.set_registered_model_alias(reg.name, CHAMPION, str(reg.version))
    client.set_model_version_tag(reg.name, str(reg.version), "champion_reason", reason)


def champion(name: str):
    """The ``ModelVersion`` holding the champion alias of ``name`` (raises if none)."""
    return MlflowClient().get_model_version_by_alias(name, CHAMPION)


def champion_uri(name: str) -> str:
    return f"models:/{name}@{CHAMPION}"


def is_spark_model(model_uri: str) -> bool:
    return "spark" in get_model_info(model_uri).flavors
