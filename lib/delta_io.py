"""Delta Lake IO helpers (Spark): create tables once, appends (idempotent on request), deletes.

Idempotent appends can use Delta's per-table transaction ids (``txnAppId`` + ``txnVersion``): a
retried write whose append already committed is skipped by Delta itself. (The streaming lakehouse
uses them on every table, see lib/lakehouse.py.)
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType


def ensure_table(spark: SparkSession, path: str, schema: StructType, partition_by: Sequence[str] = ()) -> None:
    """Create an empty Delta table at ``path`` if there is none (safe to call concurrently-ish)."""
    from delta.tables import DeltaTable

    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    if partition_by:
        builder = builder.partitionedBy(*partition_by)
    builder.execute()


def append(df: DataFrame, path: str, *, app_id: str | None = None, version: int | None = None,
           partition_by: Sequence[str] = ()) -> None:
    """Append; with ``app_id``/``version`` the append happens at most once per (table, app_id, version)."""
    writer = df.write.format("delta").mode("append")
    if app_id is not None and version is not None:
        writer = writer.option("txnAppId", app_id).option("txnVersion", int(version))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def delete_where(spark: SparkSession, path: str, condition) -> None:
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, path).delete(condition)
