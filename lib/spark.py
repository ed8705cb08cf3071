"""The one SparkSession builder: Delta Lake, Kafka connector jars, RocksDB state store, UTC.

Locally (``spark.master`` set in config) it runs embedded with the jars fetched by ``make setup``
(``spark.jars``: nothing is downloaded at run time). On Dataproc (``spark.master`` empty) the
cluster/Serverless runtime decides the master and ``scripts/submit.sh`` passes the jars.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from lib.config import Config, ConfigError

# Settings every session gets, locally and on Dataproc.
BASE_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.streaming.stateStore.providerClass":
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    # Delta: no extra shuffle before each streaming write (compaction is a batch maintenance job)
    "spark.databricks.delta.optimizeWrite.enabled": "false",
    "spark.databricks.delta.autoCompact.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # the app's queries share the executors fairly (each query thread has its own pool), so a
    # quick sessions batch does not queue behind a long lakehouse batch
    "spark.scheduler.mode": "FAIR",
}


# HotSpot leaves a method of more than 8,000 bytes of bytecode to its interpreter (DontCompileHugeMethods).
# Spark's whole-stage generated code for a wide projection — the quality rules and the silver and
# quarantine columns of every row, gold's aggregates — is such a method: compiled, the 1M backfill took
# 47.5 s instead of 53.8 s and gold's warm run 95 s instead of 110 s (docs/performance.md, "Huge generated methods").
JIT_OPTIONS = "-XX:-DontCompileHugeMethods"
EXECUTOR_JAVA_OPTIONS = "spark.executor.extraJavaOptions"


# A JVM class-data-sharing archive of the classes a local Spark driver loads (``make setup`` writes it
# with tools/spark_class_archive.py): each local Spark process starts ~3.5 s sooner (docs/decisions.md).
CLASS_ARCHIVE = "classes.jsa"
# a JVM whose classpath or JDK differs from the archive's ignores it; these keep that quiet
CLASS_ARCHIVE_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def class_archive(jars_dir: str) -> Path | None:
    """The class archive beside the jars, when ``make setup`` made one."""
    p = Path(jars_dir) / CLASS_ARCHIVE if jars_dir else None
    return p if p is not None and p.is_file() else None


def local_jars(jars_dir: str) -> list[str]:
    d = Path(jars_dir)
    jars = sorted(str(p) for p in d.glob("*.jar")) if d.is_dir() else []
    if not jars:
        raise ConfigError(f"config error: spark.jars_dir: no jars in {jars_dir} — run 'make setup'")
    return jars


def with_extra_task_slots(master: str, extra: int) -> str:
    """``local[N]`` -> ``local[N + extra]``; any other master (``local[*]``, a cluster's, empty) as it is."""
    m = re.fullmatch(r"local\[(\d+)\]", master)
    return f"local[{int(m.group(1)) + extra}]" if m and extra else master


def with_java_options(existing: str, ours: str) -> str:
    """JVM options ``existing`` followed by those of ``ours`` it does not already have."""
    have = existing.split()
    return " ".join([*have, *(o for o in ours.split() if o not in have)])


def session_conf(cfg: Config, app_name: str | None = None, *, java_options: str | None = None,
                 extra_task_slots: int = 0, batch: bool = False) -> dict[str, str]:
    """All Spark settings for this config (pure: easy to test and to print). ``java_options``: the
    local driver's JVM options after the project's own instead of the class archive (the tool that
    writes the archive passes its own). ``extra_task_slots``: task slots beyond a ``local[N]``
    master's N (the streaming app's ``streaming.local_extra_task_slots``). ``batch``: a batch job's
    session (``spark.batch_shuffle_partitions``, coalesced by size; locally ``spark.batch_driver_memory``)."""
    conf = dict(BASE_CONF)
    conf["spark.app.name"] = app_name or cfg.spark.app_name
    partitions = cfg.spark.batch_shuffle_partitions if batch else cfg.spark.shuffle_partitions
    conf["spark.sql.shuffle.partitions"] = str(partitions)
    if batch:
        # coalesce to spark.sql.adaptive.advisoryPartitionSizeInBytes (64 MB), not to the most tasks
        conf["spark.sql.adaptive.coalescePartitions.parallelismFirst"] = "false"
        # ... cached DataFrames too: by default a persisted plan keeps every one of its shuffle's
        # partitions (64 tasks for a 20k-row backfill's new silver rows, ~65 ms each in every job over it)
        conf["spark.sql.optimizer.canChangeCachedPlanOutputPartitioning"] = "true"
    conf["spark.ui.enabled"] = str(cfg.spark.ui_enabled).lower()
    if cfg.spark.master:
        conf["spark.master"] = with_extra_task_slots(cfg.spark.master, extra_task_slots)
        conf["spark.driver.memory"] = cfg.spark.batch_driver_memory if batch else cfg.spark.driver_memory
        conf["spark.ui.showConsoleProgress"] = "false"
        # Delta rebuilds table state with 50 tasks by default: far too many on a laptop, and the
        # streaming sink does it on every commit (measured: 7-11 s -> ~1.5 s per micro-batch).
        conf["spark.databricks.delta.snapshotPartitions"] = str(cfg.spark.shuffle_partitions)
        conf["spark.sql.warehouse.dir"] = str(Path(cfg.lake.root) / "_warehouse")
        # keep the embedded metastore out of the working directory
        conf["spark.driver.extraJavaOptions"] = (
            f"-Dderby.system.home={Path(cfg.paths.run_dir) / 'derby'} -Dlog4j2.level=WARN {JIT_OPTIONS}"
        )
        archive = class_archive(cfg.spark.jars_dir)
        if java_options is not None:
            conf["spark.driver.extraJavaOptions"] += f" {java_options}"
        elif archive is not None:
            conf["spark.driver.extraJavaOptions"] += f" -XX:SharedArchiveFile={archive} {CLASS_ARCHIVE_QUIET}"
    else:  # a cluster's executors (the driver's JVM runs before this code; locally the driver is the executor)
        conf[EXECUTOR_JAVA_OPTIONS] = JIT_OPTIONS
    if cfg.spark.jars_dir:
        conf["spark.jars"] = ",".join(local_jars(cfg.spark.jars_dir))
    conf.update(cfg.spark.extra)
    return conf


def build_session(cfg: Config, app_name: str | None = None, *, java_options: str | None = None,
                  extra_task_slots: int = 0, batch: bool = False):
    """Create (or return the running) SparkSession configured for ``cfg`` (arguments: ``session_conf``)."""
    from pyspark.sql import SparkSession  # deferred: jobs/ops/catalogue imports this and may run without Spark

    cluster_java_options = ""
    if cfg.spark.master:
        # Python workers must run the project's interpreter, not the system one.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        # ... and import lib/ (pandas functions such as lib.sessions run in Python workers)
        root = str(Path(__file__).resolve().parent.parent)
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if root not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [root, *paths] if p)
    else:  # keep the cluster's own executor JVM options (spark-defaults.conf): ours go after them
        from pyspark import SparkConf  # deferred: as above

        cluster_java_options = SparkConf().get(EXECUTOR_JAVA_OPTIONS, "") or ""
    builder = SparkSession.builder
    for key, value in session_conf(cfg, app_name, java_options=java_options, extra_task_slots=extra_task_slots,
                                   batch=batch).items():
        if key == EXECUTOR_JAVA_OPTIONS:  # locally no cluster options: the value as it is
            value = with_java_options(cluster_java_options, value)
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    # PySpark logs every failed SQL/DataFrame analysis as a JSON line with the whole JVM stack trace
    # before raising it; the exception itself still reaches the caller, which reports it in one line.
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return spark
