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
from dataclasses import dataclass
from importlib.metadata import version

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import get_model_info, infer_signature

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


def log_spark_model(model, name: str, example: pd.DataFrame, output: pd.DataFrame,
                    packages: tuple[str, ...] = ()) -> Registered:
    """Log a fitted Spark ML model (PipelineModel) in the active run and register it as ``name``
    (``packages``: what its stages need beyond pyspark, e.g. ``xgboost-cpu``)."""
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
