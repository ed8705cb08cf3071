from __future__ import annotations

import pytest

from lib.config import PROJECT_ROOT, ConfigError, load_config


def test_local_defaults_resolve_paths_under_the_project():
    cfg = load_config("local", environ={})
    assert cfg.env == "local"
    assert cfg.lake.root == str(PROJECT_ROOT / "var" / "lake")
    assert cfg.lake.table("bronze", "events") == str(PROJECT_ROOT / "var" / "lake" / "bronze" / "events")
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert cfg.kafka.auth == "none"


def test_gcp_config_keeps_gs_uris_and_uses_oauth():
    cfg = load_config("gcp", environ={})
    assert cfg.lake.root.startswith("gs://")
    assert cfg.kafka.auth == "gcp_oauth"
    assert cfg.spark.master == ""


def test_shop_env_selects_the_file():
    assert load_config(environ={"SHOP_ENV": "gcp"}).env == "gcp"


def test_env_overrides_are_typed_and_nested():
    cfg = load_config("local", environ={
        "SHOP__KAFKA__PARTITIONS": "8",
        "shop__streaming__trigger_seconds": "0.5",
        "SHOP__SPARK__EXTRA__spark.foo": "bar",
        "SHOP__SPARK__EXTRA__spark.databricks.delta.writeChecksumFile.enabled": "false",
        "SHOP__LAKE__ROOT": "gs://b/lake",
    })
    assert cfg.kafka.partitions == 8
    assert cfg.streaming.trigger_seconds == 0.5
    assert cfg.spark.extra == {"spark.foo": "bar", "spark.databricks.delta.writeChecksumFile.enabled": "false"}
    assert cfg.lake.root == "gs://b/lake"


def test_memory_sizes_in_the_jvm_form_are_taken_in_any_case():
    cfg = load_config("local", environ={"SHOP__SPARK__DRIVER_MEMORY": "1536M", "SHOP__SPARK__BATCH_DRIVER_MEMORY": "12g"})
    assert (cfg.spark.driver_memory, cfg.spark.batch_driver_memory) == ("1536m", "12g")


@pytest.mark.parametrize("master", ["", "local", "local[2]", "local[*]", "local[4,2]", "yarn", "spark://h:7077",
                                    "k8s://https://h:443"])
def test_every_spark_master_form_is_taken(master):
    assert load_config("local", environ={"SHOP__SPARK__MASTER": master}).spark.master == master


@pytest.mark.parametrize("environ, expected", [
    ({"SHOP__KAFKA__PARTITIONS": "abc"}, "kafka.partitions"),
    ({"SHOP__KAFKA__PARTITIONS": "0"}, "kafka.partitions"),
    ({"SHOP__KAFKA__PARTITONS": "3"}, "kafka.partitons: unknown setting"),
    ({"SHOP__KAFKA__BOOTSTRAP_SERVERS": "nohost"}, "kafka.bootstrap_servers"),
    ({"SHOP__KAFKA__AUTH": "kerberos"}, "kafka.auth"),
    ({"SHOP__STREAMING__TRIGGER_SECONDS": "-1"}, "streaming.trigger_seconds"),
    ({"SHOP__KAFKAA__PARTITIONS": "3"}, "kafkaa: unknown setting"),
    ({"SHOP__KAFKA__": "3"}, "malformed override variable"),
    ({"SHOP__SPARK__BATCH_DRIVER_MEMORY": "lots"}, "spark.batch_driver_memory: expected a JVM memory size"),
    ({"SHOP__SPARK__DRIVER_MEMORY": "2gb"}, "spark.driver_memory: expected a JVM memory size"),
    ({"SHOP__SPARK__MASTER": "local[x]"}, "spark.master: expected a Spark master such as local[2]"),
    ({"SHOP__SPARK__MASTER": "locale"}, "spark.master: expected a Spark master such as local[2]"),
])
def test_bad_values_give_one_line_naming_key_and_source(environ, expected):
    with pytest.raises(ConfigError) as err:
        load_config("local", environ=environ)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("config error: ")
    assert expected in msg
    assert next(iter(environ)) in msg  # names the variable it came from


def test_env_wins_over_the_file_which_wins_over_defaults(tmp_path):
    conf = tmp_path / "mine.yaml"
    conf.write_text("kafka:\n  partitions: 3\n  topic: from-file\nml:\n  peers: [TSB]\n")
    cfg = load_config(str(conf), environ={"SHOP__KAFKA__PARTITIONS": "8", "SHOP__ML__PEERS": "[ETS, ADIDA]"})
    assert (cfg.env, cfg.kafka.partitions, cfg.kafka.topic, cfg.kafka.replication_factor) == ("mine", 8, "from-file", 1)
    assert cfg.ml.peers == ("ETS", "ADIDA")  # YAML flow lists, as in the file
    assert load_config(str(conf), environ={}).kafka.partitions == 3


def test_missing_environment_file():
    with pytest.raises(ConfigError, match="no config file .*nope.yaml"):
        load_config("nope", environ={})


def test_invalid_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad), environ={})


def test_unknown_key_in_file(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("kafka:\n  topc: events\n")
    with pytest.raises(ConfigError, match=r"kafka.topc: unknown setting"):
        load_config(str(bad), environ={})


def test_config_is_read_from_the_dataproc_zip(tmp_path):
    """On Dataproc the code arrives as a --py-files zip with conf/ beside lib/."""
    import subprocess
    import sys
    import zipfile

    from lib.config import PROJECT_ROOT

    archive = tmp_path / "shop_platform-test.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for sub in ("lib", "conf"):
            for f in (PROJECT_ROOT / sub).rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts:
                    zf.write(f, f.relative_to(PROJECT_ROOT).as_posix())
    code = "from lib.config import load_config; c = load_config('gcp', environ={}); print(c.env, c.lake.root)"
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(archive), "PATH": "/usr/bin:/bin"},
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "gcp gs://<lake-bucket>/lake"
