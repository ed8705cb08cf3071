"""Delta Lake IO helpers: create tables once, idempotent appends, upserts.

Idempotent appends can use Delta's per-table transaction ids (``txnAppId`` + ``txnVersion``): a
retried write whose append already committed is skipped by Delta itself. (The streaming lakehouse
uses a cheaper scheme, see lib/lakehouse.py.)
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


def table_exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def append(df: DataFrame, path: str, *, app_id: str | None = None, version: int | None = None,
           partition_by: Sequence[str] = ()) -> None:
    """Append; with ``app_id``/``version`` the append happens at most once per (table, app_id, version)."""
    writer = df.write.format("delta").mode("append")
    if app_id is not None and version is not None:
        writer = writer.option("txnAppId", app_id).option("txnVersion", int(version))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def upsert(spark: SparkSession, updates: DataFrame, path: str, keys: Sequence[str],
           prune: str | None = None) -> None:
    """MERGE ``updates`` into the table at ``path`` on ``keys``: matched rows are replaced, new ones
    inserted. ``prune`` is an extra condition on the target (``t.``) that lets Delta skip files."""
    from delta.tables import DeltaTable

    cond = " AND ".join(f"t.{k} = u.{k}" for k in keys)
    if prune:
        cond = f"({prune}) AND {cond}"
    (
        DeltaTable.forPath(spark, path).alias("t")
        .merge(updates.alias("u"), cond)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def delete_where(spark: SparkSession, path: str, condition) -> None:
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, path).delete(condition)


def overwrite(df: DataFrame, path: str) -> None:
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "false").save(path)
