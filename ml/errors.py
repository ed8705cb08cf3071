"""The models' one-line refusals, in a module that loads nothing: the batch entry points name them
(``lib.batch.cli.expected_errors``) without importing MLflow, XGBoost and the models (~5 s) for a stage
that does not train or score (``make uplift``, ``make maintain``, a Dataproc backfill)."""

from __future__ import annotations


class InsufficientData(ValueError):
    """The lake holds too little history for the configured backtest; ``str(err)`` is one line."""


class NoChampion(RuntimeError):
    """A model has no champion version yet; ``str(err)`` is one line."""
