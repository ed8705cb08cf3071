"""scripts/submit.sh: input validation and the exact commands of --dry-run, run with a PATH that has
no gcloud (dry runs must not need it and must not run anything)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

SUBMIT = ROOT / "scripts" / "submit.sh"
TOOLS = [
    "bash",
    "env",
    "git",
    "sha256sum",
    "cut",
    "date",
    "find",
    "sort",
    "tr",
    "sed",
    "dirname",
    "basename",
    "cat",
    "mkdir",
    "rm",
]
# every stage jobs/batch/run.py runs (its first argument)
BATCH_JOBS = yaml.safe_load((ROOT / "conf" / "batch_chain.yaml").read_text())["stages"]

PROJECT = "my-shop-dev"
REGION = "europe-west1"
VERSION = "v9.9.9-test"
BOOTSTRAP = f"bootstrap.shop-dev-kafka.{REGION}.managedkafka.{PROJECT}.cloud.goog:9092"
COMMON = [
    "--project",
    PROJECT,
    "--region",
    REGION,
    "--artifacts-bucket",
    "gs://my-shop-dev-art",
    "--lake-root",
    "gs://my-shop-dev-lake/lake",
    "--kafka-bootstrap",
    BOOTSTRAP,
    "--version",
    VERSION,
]
STREAMING = [
    "--cluster",
    "shop-dev-streaming",
    "--checkpoints-root",
    "gs://my-shop-dev-ckpt/checkpoints",
    "--sendgrid-secret",
    f"projects/{PROJECT}/secrets/shop-dev-sendgrid-api-key/versions/latest",
    "--unsubscribe-url",
    "https://shop-dev-unsubscribe-abc123-ew.a.run.app/unsubscribe",
]
BATCH = [
    "--deps-bucket",
    "my-shop-dev-dataproc",
    "--subnet",
    f"projects/{PROJECT}/regions/{REGION}/subnetworks/d",
    "--service-account",
    f"shop-dev-batch@{PROJECT}.iam.gserviceaccount.com",
    "--mlflow-uri",
    "https://shop-dev-mlflow-abc-ew.a.run.app",
]


@pytest.fixture(scope="module")
def no_gcloud_path(tmp_path_factory) -> str:
    """A PATH with the few tools the script needs and no gcloud."""
    bindir = tmp_path_factory.mktemp("bin")
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} missing on this machine"
        (bindir / tool).symlink_to(found)
    (bindir / "python3").symlink_to(sys.executable)
    return str(bindir)


@pytest.fixture(scope="module")
def jars(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("jars")
    names = [
        ("spark", "delta-spark_2.13-4.0.0.jar"),
        ("spark", "spark-sql-kafka-0-10_2.13-4.0.1.jar"),
        ("gcp", "managed-kafka-auth-login-handler-1.0.6.jar"),
    ]
    for folder, name in names:
        (root / folder).mkdir(exist_ok=True)
        (root / folder / name).write_bytes(b"PK")
    return [root / "spark", root / "gcp"]


def run(args, path, jars=None, extra_env=None):
    jar_args = [a for d in (jars or []) for a in ("--jars-dir", str(d))]
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), "LC_ALL": "C.UTF-8", **(extra_env or {})}
    return subprocess.run(
        ["bash", str(SUBMIT), *jar_args, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )


def commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if line and not line.startswith("#")]


def flag(cmd: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in cmd if a.startswith(name + "=")]
    assert len(values) == 1, f"{name} given {len(values)} times in {cmd}"
    return values[0]


def properties(cmd: list[str]) -> dict[str, str]:
    raw = flag(cmd, "--properties")
    sep = ","
    if raw.startswith("^"):
        sep, raw = raw[1], raw[3:]
    return dict(p.split("=", 1) for p in raw.split(sep))


def test_help(no_gcloud_path):
    proc = run(["--help"], no_gcloud_path)
    assert proc.returncode == 0
    for needle in ("SHOP_PROJECT", "SHOP_ARTIFACTS_BUCKET", "--dry-run", "streaming", "batch NAME"):
        assert needle in proc.stdout


def test_dry_run_streaming(no_gcloud_path, jars):
    proc = run(["--dry-run", *COMMON, *STREAMING, "streaming"], no_gcloud_path, jars)
    assert proc.returncode == 0, proc.stderr
    cmds = commands(proc.stdout)
    assert all(c[0] in {"mkdir", "python3", "rm", "gcloud"} for c in cmds)
    release = f"gs://my-shop-dev-art/releases/{VERSION}"
    code_zip = f"{release}/shop_platform-{VERSION}.zip"

    zip_cmd = next(c for c in cmds if c[:2] == ["python3", "-c"] and f"dist/shop_platform-{VERSION}.zip" in c)
    assert zip_cmd[-3:] == ["lib", "ml", "conf"]
    assert ["gcloud", "storage", "cp", f"dist/shop_platform-{VERSION}.zip", code_zip] == next(
        c[:5] for c in cmds if c[:3] == ["gcloud", "storage", "cp"]
    )

    submit = next(c for c in cmds if c[:5] == ["gcloud", "dataproc", "jobs", "submit", "pyspark"])
    assert submit[5] == f"{release}/jobs/streaming/app.py"
    assert flag(submit, "--cluster") == "shop-dev-streaming"
    assert flag(submit, "--region") == REGION and flag(submit, "--project") == PROJECT
    assert flag(submit, "--py-files") == code_zip
    jar_uris = flag(submit, "--jars").split(",")
    assert jar_uris == [
        "gs://my-shop-dev-art/jars/spark/delta-spark_2.13-4.0.0.jar",
        "gs://my-shop-dev-art/jars/spark/spark-sql-kafka-0-10_2.13-4.0.1.jar",
        "gs://my-shop-dev-art/jars/gcp/managed-kafka-auth-login-handler-1.0.6.jar",
    ]
    props = properties(submit)
    assert props["spark.submit.deployMode"] == "cluster"
    assert props["spark.yarn.appMasterEnv.SHOP__LAKE__ROOT"] == "gs://my-shop-dev-lake/lake"
    assert props["spark.yarn.appMasterEnv.SHOP__LAKE__CHECKPOINTS"] == "gs://my-shop-dev-ckpt/checkpoints"
    assert props["spark.yarn.appMasterEnv.SHOP__KAFKA__BOOTSTRAP_SERVERS"] == BOOTSTRAP
    assert props["spark.executorEnv.SHOP__KAFKA__BOOTSTRAP_SERVERS"] == BOOTSTRAP
    assert props["spark.yarn.appMasterEnv.SENDGRID_API_KEY_SECRET"].endswith("/versions/latest")
    assert props["spark.yarn.appMasterEnv.SHOP__RETARGET__UNSUBSCRIBE_URL"] == STREAMING[-1]
    assert int(flag(submit, "--max-failures-per-hour")) >= 1
    labels = dict(kv.split("=") for kv in flag(submit, "--labels").split(","))
    assert labels["component"] == "streaming" and labels["app"] == "shop-platform"
    assert "--async" in submit
    assert submit[submit.index("--") + 1 :] == ["--env", "gcp"]
    # The running streaming job is looked up (and stopped) before the new one starts.
    listing = next(i for i, c in enumerate(cmds) if c[:4] == ["gcloud", "dataproc", "jobs", "list"])
    assert listing < cmds.index(submit)
    # Dry run: nothing was built.
    assert not (ROOT / "dist" / f"shop_platform-{VERSION}.zip").exists()


def _batch(no_gcloud_path, jars, name, jobs_dir=None, extra=()):
    args = ["--dry-run", *COMMON, *BATCH, *extra]
    if jobs_dir:
        args += ["--jobs-dir", str(jobs_dir)]
    proc = run([*args, "batch", name], no_gcloud_path, jars)
    assert proc.returncode == 0, proc.stderr
    cmds = commands(proc.stdout)
    return next(c for c in cmds if c[:5] == ["gcloud", "dataproc", "batches", "submit", "pyspark"]), cmds


def _check_batch(submit, name):
    assert submit[5] == f"gs://my-shop-dev-art/releases/{VERSION}/jobs/batch/run.py"
    assert flag(submit, "--version") == "3.0"
    assert flag(submit, "--region") == REGION
    assert flag(submit, "--subnet").endswith("/subnetworks/d")
    assert flag(submit, "--service-account") == f"shop-dev-batch@{PROJECT}.iam.gserviceaccount.com"
    assert flag(submit, "--user-workload-authentication-type") == "SERVICE_ACCOUNT"
    assert flag(submit, "--deps-bucket") == "gs://my-shop-dev-dataproc"
    assert flag(submit, "--py-files").endswith(f"shop_platform-{VERSION}.zip")
    assert len(flag(submit, "--jars").split(",")) == 3
    assert flag(submit, "--archives").endswith(".zip#pydeps")
    batch_id = flag(submit, "--batch")
    assert 4 <= len(batch_id) <= 63 and batch_id.startswith(name.replace("_", "-"))
    props = properties(submit)
    assert props["spark.dataproc.driverEnv.SHOP__LAKE__ROOT"] == "gs://my-shop-dev-lake/lake"
    assert props["spark.executorEnv.SHOP__KAFKA__BOOTSTRAP_SERVERS"] == BOOTSTRAP
    assert props["spark.dataproc.driverEnv.PYTHONPATH"] == "./pydeps"
    assert props["spark.dataproc.driverEnv.MLFLOW_TRACKING_URI"].startswith("https://")
    assert not any(k.startswith("spark.yarn.") for k in props), "Serverless has no YARN"
    assert submit[submit.index("--") + 1 :] == [name, "--env", "gcp"]


@pytest.mark.parametrize("name", BATCH_JOBS)
def test_dry_run_each_batch_job(no_gcloud_path, jars, name):
    submit, _ = _batch(no_gcloud_path, jars, name)
    _check_batch(submit, name)


def test_dry_run_batch_with_a_jobs_dir(no_gcloud_path, jars, tmp_path):
    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "run.py").write_text("print('x')\n")
    submit, cmds = _batch(no_gcloud_path, jars, "train_demand", jobs_dir=tmp_path, extra=["--promote"])
    _check_batch(submit, "train_demand")
    pip = next(c for c in cmds if c[:4] == ["python3", "-m", "pip", "install"])
    assert pip[pip.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in pip
    cps = [c for c in cmds if c[:3] == ["gcloud", "storage", "cp"]]
    assert any(c[4] == "gs://my-shop-dev-art/releases/CURRENT.json" for c in cps), "--promote publishes the release"


def test_properties_switch_delimiter_when_a_value_has_a_comma(no_gcloud_path, jars):
    two = "b1.example:9092,b2.example:9092"
    args = ["--dry-run", *[a if a != BOOTSTRAP else two for a in COMMON], *STREAMING, "streaming"]
    proc = run(args, no_gcloud_path, jars)
    assert proc.returncode == 0, proc.stderr
    submit = next(c for c in commands(proc.stdout) if c[:4] == ["gcloud", "dataproc", "jobs", "submit"])
    assert flag(submit, "--properties").startswith("^|^")
    assert properties(submit)["spark.yarn.appMasterEnv.SHOP__KAFKA__BOOTSTRAP_SERVERS"] == two


def test_settings_from_environment_variables(no_gcloud_path, jars):
    env = {
        "SHOP_PROJECT": PROJECT,
        "SHOP_REGION": REGION,
        "SHOP_ARTIFACTS_BUCKET": "my-shop-dev-art",
        "SHOP_DATAPROC_CLUSTER": "c-from-env",
        "SHOP_LAKE_ROOT": "gs://my-shop-dev-lake/lake",
        "SHOP_CHECKPOINTS_ROOT": "gs://my-shop-dev-ckpt/c",
        "SHOP_KAFKA_BOOTSTRAP": BOOTSTRAP,
        "SHOP_VERSION": VERSION,
        "SHOP_DEPLOY_ENV": "prod",
        "SHOP_UNSUBSCRIBE_URL": "https://u.example/unsubscribe",
    }
    proc = run(["--dry-run", "streaming"], no_gcloud_path, jars, extra_env=env)
    assert proc.returncode == 0, proc.stderr
    submit = next(c for c in commands(proc.stdout) if c[:4] == ["gcloud", "dataproc", "jobs", "submit"])
    assert flag(submit, "--cluster") == "c-from-env"
    assert properties(submit)["spark.yarn.appMasterEnv.SHOP__RETARGET__UNSUBSCRIBE_URL"] == "https://u.example/unsubscribe"
    assert "env=prod" in flag(submit, "--labels")


def test_package_dry_run_needs_no_cloud_settings(no_gcloud_path):
    proc = run(["--dry-run", "--version", VERSION, "package"], no_gcloud_path)
    assert proc.returncode == 0, proc.stderr
    cmds = commands(proc.stdout)
    assert not any(c[0] == "gcloud" for c in cmds)
    assert any(f"dist/shop_platform-{VERSION}.zip" in c for c in cmds)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no command given"),
        (["deploy"], "unknown command"),
        (["batch"], "batch needs a job name"),
        (["batch", "no_such_job"], "no batch job"),
        (["batch", "Bad-Name"], "invalid batch job name"),
        (["--frobnicate", "streaming"], "unknown option --frobnicate"),
        (["--project", "X", "streaming"], "invalid project id"),
        (["--region", "europe-west1-b", "streaming"], "invalid region"),
        (["--artifacts-bucket", "Bad_Bucket!", "streaming"], "invalid bucket name"),
        (["--lake-root", "/tmp/lake", "streaming"], "lake root must be a gs:// URI"),
        (["--kafka-bootstrap", "nohostport", "streaming"], "invalid Kafka bootstrap"),
        (["--max-failures-per-hour", "99", "streaming"], "--max-failures-per-hour"),
        (["--version", "bad version", "package"], "invalid version"),
        (["--project"], "option --project needs a value"),
        (["streaming"], "no unsubscribe URL"),
        (["--unsubscribe-url", "http://127.0.0.1:8050/unsubscribe", "streaming"], "must be an https:// URL"),
    ],
)
def test_invalid_input_exits_2_with_one_line(no_gcloud_path, jars, args, message):
    base = {
        "--project": PROJECT,
        "--region": REGION,
        "--artifacts-bucket": "my-shop-dev-art",
        "--lake-root": "gs://my-shop-dev-lake/lake",
        "--kafka-bootstrap": BOOTSTRAP,
        "--version": VERSION,
        "--cluster": "shop-dev-streaming",
        "--checkpoints-root": "gs://my-shop-dev-ckpt/c",
    }
    given = {a for a in args if a.startswith("--")}
    defaults = [x for k, v in base.items() if k not in given for x in (k, v)] if args[-1:] != ["--project"] else []
    proc = run(["--dry-run", *defaults, *args], no_gcloud_path, jars)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert proc.stdout == ""


def test_missing_jars_is_an_input_error(no_gcloud_path, tmp_path):
    proc = run(["--dry-run", *COMMON, *STREAMING, "streaming"], no_gcloud_path, [tmp_path])
    assert proc.returncode == 2 and "no jars found" in proc.stderr


def test_real_run_without_gcloud_is_refused(no_gcloud_path, jars):
    proc = run([*COMMON, *STREAMING, "streaming"], no_gcloud_path, jars)
    assert proc.returncode == 2 and "gcloud not found" in proc.stderr


@pytest.mark.parametrize("script", ["submit.sh", "fetch_gcp_jars.sh", "setup_tools.sh"])
def test_scripts_are_strict_bash(script):
    path = ROOT / "scripts" / script
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert os.access(path, os.X_OK), f"{script} is not executable"
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True, timeout=30).returncode == 0


def test_gcp_pom_lists_the_managed_kafka_handler_without_spark_provided_jars():
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(ROOT / "scripts" / "jvm" / "gcp.pom.xml").getroot()
    deps = pom.findall("m:dependencies/m:dependency", ns)
    coords = [(d.findtext("m:groupId", namespaces=ns), d.findtext("m:artifactId", namespaces=ns)) for d in deps]
    assert coords == [("com.google.cloud.hosted.kafka", "managed-kafka-auth-login-handler")]
    excluded = {e.findtext("m:groupId", namespaces=ns) for e in deps[0].findall("m:exclusions/m:exclusion", ns)}
    assert {"org.apache.kafka", "com.fasterxml.jackson.core", "org.slf4j"} <= excluded
    fetch = (ROOT / "scripts" / "fetch_gcp_jars.sh").read_text()
    assert "dependency:copy-dependencies" in fetch and "-DincludeScope=runtime" in fetch and "var/jars/gcp" in fetch


def test_gcloud_accepts_every_flag(no_gcloud_path, jars, tmp_path):
    """Where the real Google Cloud CLI is installed, let it parse each printed command: with an empty
    configuration it stops at "no active account" *after* argument parsing, so an unknown flag or a
    bad value would show up as a parse error. Offline: metadata-server probing, usage reporting and
    update checks are switched off."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        pytest.skip("gcloud not installed here; flags are checked against `gcloud ... --help` by hand")
    (tmp_path / "jobs" / "batch").mkdir(parents=True)
    (tmp_path / "jobs" / "batch" / "run.py").write_text("")
    (tmp_path / "jobs" / "streaming").mkdir()
    (tmp_path / "jobs" / "streaming" / "app.py").write_text("")
    lines = []
    for args in ([*COMMON, *STREAMING, "streaming"], [*COMMON, *BATCH, "--promote", "batch", "gold"]):
        proc = run(["--dry-run", "--jobs-dir", str(tmp_path / "jobs"), *args], no_gcloud_path, jars)
        assert proc.returncode == 0, proc.stderr
        lines += [c for c in commands(proc.stdout) if c[0] == "gcloud"]
    wanted = {("jobs", "submit"), ("batches", "submit"), ("jobs", "list"), ("storage", "rsync"), ("storage", "cp")}
    seen = set()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }
    for cmd in lines:
        kind = (cmd[1], cmd[2]) if cmd[1] == "storage" else (cmd[2], cmd[3])
        if kind in seen or kind not in wanted:
            continue
        seen.add(kind)
        proc = subprocess.run([gcloud, *cmd[1:]], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode != 0
        assert "active account" in proc.stderr, f"{' '.join(cmd[:5])}: {proc.stderr.strip()[:300]}"
    assert seen == wanted


def test_from_terraform_the_streaming_job_links_to_the_deployed_unsubscribe_service(no_gcloud_path, jars, tmp_path):
    """The unsubscribe URL in the deployed config is the unsubscribe service's URL from Terraform
    (output unsubscribe_url = <Cloud Run uri>/unsubscribe), not conf/gcp.yaml's value (which has none)."""
    import json

    service = "https://shop-dev-unsubscribe-q7x2-ew.a.run.app"
    outputs = {"project_id": PROJECT, "region": REGION, "env": "dev", "artifacts_bucket": "my-shop-dev-art",
               "dataproc_cluster": "shop-dev-streaming", "lake_root": "gs://my-shop-dev-lake/lake",
               "checkpoints_root": "gs://my-shop-dev-ckpt/checkpoints", "kafka_bootstrap_servers": BOOTSTRAP,
               "unsubscribe_url": f"{service}/unsubscribe",
               "secret_env": {"UNSUBSCRIBE_SIGNING_KEY_SECRET": f"projects/{PROJECT}/secrets/k/versions/latest"}}
    bindir = tmp_path / "tfbin"
    bindir.mkdir()
    (bindir / "terraform").write_text("#!/bin/bash\ncat <<'JSON'\n" + json.dumps(
        {k: {"value": v, "sensitive": False} for k, v in outputs.items()}) + "\nJSON\n")
    (bindir / "terraform").chmod(0o755)
    (bindir / "python3").symlink_to(os.path.realpath(sys.executable))  # a real interpreter, not a shim
    proc = run(["--dry-run", "--from-terraform", "--version", VERSION, "streaming"], f"{bindir}:{no_gcloud_path}", jars)
    assert proc.returncode == 0, proc.stderr
    submit = next(c for c in commands(proc.stdout) if c[:5] == ["gcloud", "dataproc", "jobs", "submit", "pyspark"])
    props = properties(submit)
    assert props["spark.yarn.appMasterEnv.SHOP__RETARGET__UNSUBSCRIBE_URL"] == f"{service}/unsubscribe"
    assert props["spark.yarn.appMasterEnv.UNSUBSCRIBE_SIGNING_KEY_SECRET"].startswith(f"projects/{PROJECT}/secrets/")
    # without the output (image not deployed yet) the job is not submitted at all
    del outputs["unsubscribe_url"]
    (bindir / "terraform").write_text("#!/bin/bash\ncat <<'JSON'\n" + json.dumps(
        {k: {"value": v, "sensitive": False} for k, v in outputs.items()}) + "\nJSON\n")
    proc = run(["--dry-run", "--from-terraform", "--version", VERSION, "streaming"], f"{bindir}:{no_gcloud_path}", jars)
    assert proc.returncode == 2 and "no unsubscribe URL" in proc.stderr and proc.stdout == ""
