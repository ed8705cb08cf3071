"""Registering the lake in the Spark SQL catalog.

Batch tables (gold analyst tables, feature tables, scores) are recomputed in full and *replaced* with
:func:`lib.delta_io.replace_table` (``overwrite`` + ``overwriteSchema``): one Delta commit, readers see
the old or the new version, and time travel keeps the previous ones until VACUUM.

:func:`register_tables` names every Delta table of the lake ``<layer>.<name>`` (``gold.funnel_daily``,
``silver.events`` ...) as an external table over its location, so analysts query them by name with
Spark SQL (``make sql``). Locally the catalog lives in the session; on Dataproc with a metastore
the same statements persist them.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from lib.config import Config

__all__ = ["LAYERS", "lake_tables", "register_tables"]

LAYERS: tuple[str, ...] = ("bronze", "silver", "quarantine", "gold", "features", "ops")


def lake_tables(spark: SparkSession, cfg: Config) -> dict[str, str]:
    """``{"<layer>.<name>": location}`` of every Delta table under the lake root (local or gs://)."""
    jvm: Any = spark.sparkContext._jvm  # py4j's JVM view (a live session always has one)
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    found: dict[str, str] = {}
    for layer in LAYERS:
        base = cfg.lake.table(layer, "")[:-1]
        jpath = jvm.org.apache.hadoop.fs.Path(base)
        fs = jpath.getFileSystem(hconf)
        if not fs.exists(jpath):
            continue
        for status in fs.listStatus(jpath):
            if not status.isDirectory():
                continue
            name = status.getPath().getName()
            if fs.exists(jvm.org.apache.hadoop.fs.Path(status.getPath(), "_delta_log")) and name.isidentifier():
                found[f"{layer}.{name}"] = cfg.lake.table(layer, name)
    return dict(sorted(found.items()))


def register_tables(spark: SparkSession, cfg: Config) -> list[str]:
    """Register every lake table as ``<layer>.<name>``; returns the names."""
    tables = lake_tables(spark, cfg)
    for layer in sorted({n.split(".")[0] for n in tables}):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{layer}`")
    for name, location in tables.items():
        layer, table = name.split(".")
        spark.sql(f"CREATE TABLE IF NOT EXISTS `{layer}`.`{table}` USING DELTA LOCATION '{location}'")
    return list(tables)
