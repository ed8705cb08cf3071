"""Batch side of the lakehouse: backfill, analyst (gold) tables, catalog registration, maintenance.

Pure DataFrame -> DataFrame transformations live beside the small IO functions that the thin
batch entry point ``jobs/batch/run.py <stage>`` calls; ``jobs/ops/batch_chain.py`` runs the whole chain for ``make batch``.
"""
