from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lib.config import PROJECT_ROOT, ConfigError, load_config
from lib.sources import GCP_LOGIN_HANDLER, kafka_reader_options, pubsublite_reader_options
from lib.spark import (
    CLASS_ARCHIVE,
    EXECUTOR_JAVA_OPTIONS,
    JIT_OPTIONS,
    session_conf,
    with_extra_task_slots,
    with_java_options,
)


def test_local_kafka_options_are_plaintext():
    opts = kafka_reader_options(load_config("local", environ={}))
    assert opts["kafka.bootstrap.servers"] == "127.0.0.1:9092"
    assert opts["subscribe"] == "events"
    assert opts["startingOffsets"] == "earliest"
    assert opts["failOnDataLoss"] == "true"
    assert not any(k.startswith("kafka.sasl") or k == "kafka.security.protocol" for k in opts)


def test_managed_kafka_uses_oauthbearer_with_googles_handler():
    opts = kafka_reader_options(load_config("gcp", environ={}))
    assert opts["kafka.security.protocol"] == "SASL_SSL"
    assert opts["kafka.sasl.mechanism"] == "OAUTHBEARER"
    assert opts["kafka.sasl.login.callback.handler.class"] == GCP_LOGIN_HANDLER
    assert "OAuthBearerLoginModule required" in opts["kafka.sasl.jaas.config"]
    assert opts["maxOffsetsPerTrigger"] == "200000"


def test_pubsublite_is_deprecated_and_only_builds_options():
    cfg = load_config("local", environ={"SHOP__SOURCE__KIND": "pubsublite",
                                        "SHOP__SOURCE__PUBSUBLITE__PROJECT": "p",
                                        "SHOP__SOURCE__PUBSUBLITE__LOCATION": "europe-west1-b",
                                        "SHOP__SOURCE__PUBSUBLITE__SUBSCRIPTION": "events-sub"})
    with pytest.warns(DeprecationWarning, match="2027-01-31"):
        opts = pubsublite_reader_options(cfg)
    assert opts == {"pubsublite.subscription": "projects/p/locations/europe-west1-b/subscriptions/events-sub"}
    incomplete = load_config("local", environ={"SHOP__SOURCE__KIND": "pubsublite"})
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="source.pubsublite.project"):
        pubsublite_reader_options(incomplete)


def test_local_session_conf_has_delta_rocksdb_and_local_jars():
    conf = session_conf(load_config("local", environ={}))
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert "RocksDBStateStoreProvider" in conf["spark.sql.streaming.stateStore.providerClass"]
    assert conf["spark.sql.session.timeZone"] == "UTC"
    jars = conf["spark.jars"].split(",")
    assert any("delta-spark_2.13" in j for j in jars)
    assert any("spark-sql-kafka-0-10_2.13" in j for j in jars)


def test_dataproc_session_conf_leaves_master_and_jars_to_the_cluster():
    conf = session_conf(load_config("gcp", environ={}))
    assert "spark.master" not in conf and "spark.jars" not in conf


def test_the_streaming_app_gets_its_extra_task_slots_on_a_local_master_only():
    cfg = load_config("local", environ={})
    assert cfg.streaming.local_extra_task_slots == 1
    assert session_conf(cfg, extra_task_slots=1)["spark.master"] == "local[3]"
    assert session_conf(cfg)["spark.master"] == "local[2]"  # the batch jobs and tests: as configured
    assert "spark.master" not in session_conf(load_config("gcp", environ={}), extra_task_slots=1)
    assert with_extra_task_slots("local[*]", 1) == "local[*]"  # as many as cores: nothing to add to
    assert with_extra_task_slots("local[4]", 0) == "local[4]"
    assert with_extra_task_slots("yarn", 2) == "yarn"


def test_batch_sessions_start_with_more_shuffle_partitions_and_coalesce_them_by_size():
    cfg = load_config("local", environ={})
    batch = session_conf(cfg, batch=True)
    assert batch["spark.sql.shuffle.partitions"] == "64"
    assert batch["spark.sql.adaptive.enabled"] == "true"
    assert batch["spark.sql.adaptive.coalescePartitions.parallelismFirst"] == "false"
    # ... persisted plans too (else a cached small load keeps its 64 tasks in every job over it)
    assert batch["spark.sql.optimizer.canChangeCachedPlanOutputPartitioning"] == "true"
    assert batch["spark.driver.memory"] == "6g" and session_conf(cfg)["spark.driver.memory"] == "2g"
    streaming = session_conf(cfg)  # the stateful queries keep theirs: it is fixed in their checkpoints
    assert streaming["spark.sql.shuffle.partitions"] == "2"
    assert "spark.sql.adaptive.coalescePartitions.parallelismFirst" not in streaming
    assert "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning" not in streaming
    assert session_conf(load_config("gcp", environ={}), batch=True)["spark.sql.shuffle.partitions"] == "200"


def test_the_batch_entry_points_build_batch_sessions(monkeypatch):
    import argparse  # deferred: only this test builds a namespace

    import jobs.ops._cli as ops_cli  # deferred: only this test needs the entry points
    import lib.batch.cli as batch_cli  # deferred: imports ml.* (the models), only this test needs it

    seen = []
    monkeypatch.setattr(batch_cli, "build_session", lambda cfg, **kw: seen.append(kw) or "spark")
    monkeypatch.setattr(ops_cli, "build_session", lambda cfg, **kw: seen.append(kw) or "spark")
    assert batch_cli.main("gold", lambda spark, cfg: {"ok": spark}, argparse.Namespace(env="local")) == 0
    assert ops_cli.open_session("local", "shop-batch")[1] == "spark"
    assert [kw.get("batch") for kw in seen] == [True, True]


def test_the_class_archive_of_make_setup_is_used_locally_when_present(tmp_path):
    (tmp_path / "delta-spark_2.13-4.0.0.jar").write_bytes(b"")
    cfg = load_config("local", environ={"SHOP__SPARK__JARS_DIR": str(tmp_path)})
    assert "SharedArchiveFile" not in session_conf(cfg)["spark.driver.extraJavaOptions"]  # none made: as before
    (tmp_path / CLASS_ARCHIVE).write_bytes(b"archive")
    opts = session_conf(cfg)["spark.driver.extraJavaOptions"].split()
    assert f"-XX:SharedArchiveFile={tmp_path / CLASS_ARCHIVE}" in opts
    assert "-Dlog4j2.level=WARN" in opts and "-Xlog:cds=off" in opts  # a JDK that cannot use it stays quiet
    own = session_conf(cfg, java_options="-XX:ArchiveClassesAtExit=/tmp/x.jsa")["spark.driver.extraJavaOptions"]
    assert own.split()[-1] == "-XX:ArchiveClassesAtExit=/tmp/x.jsa" and "SharedArchiveFile" not in own  # the writer's
    gcp = session_conf(load_config("gcp", environ={}))  # Dataproc's JVMs are the cluster's business
    assert "SharedArchiveFile" not in gcp.get("spark.driver.extraJavaOptions", "")


def test_huge_generated_methods_are_compiled_by_the_jit_locally_and_on_a_cluster(tmp_path):
    (tmp_path / "delta-spark_2.13-4.0.0.jar").write_bytes(b"")
    local = session_conf(load_config("local", environ={"SHOP__SPARK__JARS_DIR": str(tmp_path)}))
    assert JIT_OPTIONS in local["spark.driver.extraJavaOptions"].split()  # local: the driver is the executor
    assert JIT_OPTIONS in session_conf(load_config("gcp", environ={}))[EXECUTOR_JAVA_OPTIONS].split()
    # a cluster's own executor options (spark-defaults.conf) are kept, ours follow, none twice
    assert with_java_options("-Dflogger=x -XX:+UseG1GC", JIT_OPTIONS) == f"-Dflogger=x -XX:+UseG1GC {JIT_OPTIONS}"
    assert with_java_options(f"{JIT_OPTIONS} -Da=1", JIT_OPTIONS) == f"{JIT_OPTIONS} -Da=1"
    assert with_java_options("", JIT_OPTIONS) == JIT_OPTIONS


def test_missing_jars_is_a_clear_config_error(tmp_path):
    cfg = load_config("local", environ={"SHOP__SPARK__JARS_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="run 'make setup'"):
        session_conf(cfg)


def test_pubsublite_stops_the_app_at_start_in_one_line():
    """No Spark 4 connector exists: choosing it must not start an app that processes nothing."""
    env = {**os.environ, "SHOP__SOURCE__KIND": "pubsublite", "SHOP__SOURCE__PUBSUBLITE__PROJECT": "p",
           "SHOP__SOURCE__PUBSUBLITE__LOCATION": "europe-west1-b", "SHOP__SOURCE__PUBSUBLITE__SUBSCRIPTION": "s"}
    proc = subprocess.run([sys.executable, "jobs/streaming/app.py"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "source.kind=pubsublite cannot run" in lines[0] and "source.kind=kafka" in lines[0]
    assert "[streaming] started" not in proc.stdout
