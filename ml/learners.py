"""MLlib's gradient-boosted trees as every model here uses them: one pipeline, configured once.

``ml.gbt_max_iter``, ``ml.gbt_max_depth`` and ``ml.gbt_min_instances_per_node`` come from the config;
the learning rate (0.1), the row subsampling (0.8) and the seed (``ml.seed``) are the same for every
model, so a change of one of them changes all (CLV, sale probability, the MLlib demand learner).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.classification import GBTClassifier
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import GBTRegressor

from lib.config import Config

STEP_SIZE = 0.1
SUBSAMPLING_RATE = 0.8


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
