"""Batch side of the lakehouse: backfill, analyst (gold) tables, catalog registration, maintenance.

Pure DataFrame -> DataFrame transformations live beside the small IO functions that the thin
entry points in ``jobs/batch/`` call; ``lib.batch.chain`` runs the whole chain for ``make batch``.
"""
