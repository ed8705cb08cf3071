"""The tree learners every model here uses, each configured once: MLlib's gradient-boosted trees and
XGBoost's Spark estimator.

MLlib: ``ml.gbt_max_iter``, ``ml.gbt_max_depth`` and ``ml.gbt_min_instances_per_node`` come from the
config; the learning rate (0.1), the row subsampling (0.8) and the seed (``ml.seed``) are the same for
every model, so a change of one of them changes all (CLV, the MLlib demand and sale learners).

XGBoost (``xgboost.spark``): ``ml.xgb_rounds`` rounds at learning rate 0.05, depth ``gbt_max_depth`` + 1,
``min_child_weight`` = ``gbt_min_instances_per_node``, rows and columns subsampled at 0.8, the same seed;
one Spark job per fit (MLlib's GBT runs one per tree level: ~240 for 40 trees of depth 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.classification import GBTClassifier
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import GBTRegressor
from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

from lib.config import Config

STEP_SIZE = 0.1
SUBSAMPLING_RATE = 0.8
XGB_LEARNING_RATE = 0.05
# what a model logged with an XGBoost stage needs beyond pyspark to load (ml.registry.log_spark_model)
XGB_PACKAGES = ("xgboost-cpu",)


def gbt_pipeline(learner: type[GBTRegressor] | type[GBTClassifier], features: Sequence[str], label: str,
                 cfg: Config, **extra: Any) -> Pipeline:
    """``features`` assembled into one vector, then ``learner`` (``GBTRegressor`` or ``GBTClassifier``)
    predicting ``label``; ``extra``: more parameters of the learner (e.g. ``lossType``)."""
    return Pipeline(stages=[
        VectorAssembler(inputCols=list(features), outputCol="features"),
        learner(labelCol=label, featuresCol="features", maxIter=cfg.ml.gbt_max_iter, maxDepth=cfg.ml.gbt_max_depth,
                stepSize=STEP_SIZE, subsamplingRate=SUBSAMPLING_RATE,
                minInstancesPerNode=cfg.ml.gbt_min_instances_per_node, seed=cfg.ml.seed, **extra),
    ])


def xgb_pipeline(learner: type[SparkXGBRegressor] | type[SparkXGBClassifier], features: Sequence[str], label: str,
                 cfg: Config, **extra: Any) -> Pipeline:
    """``features`` assembled into one vector, then XGBoost's Spark ``learner``; ``extra``: more of its
    parameters (the demand's ``objective="count:poisson"``; the classifier sets ``binary:logistic`` itself
    for two classes and refuses an objective)."""
    return Pipeline(stages=[
        VectorAssembler(inputCols=list(features), outputCol="features"),
        learner(features_col="features", label_col=label, n_estimators=cfg.ml.xgb_rounds,
                learning_rate=XGB_LEARNING_RATE, max_depth=cfg.ml.gbt_max_depth + 1,
                min_child_weight=cfg.ml.gbt_min_instances_per_node, subsample=0.8, colsample_bytree=0.8,
                random_state=cfg.ml.seed, num_workers=cfg.ml.xgb_workers,
                verbose=False,  # XGBModel.fit's default prints the training loss of every round to stderr
                **extra),
    ])
