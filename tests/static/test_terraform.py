"""Static checks of terraform/: HCL parses, every reference resolves, variables are declared and used,
providers are pinned, examples and the Workflows template are consistent, `terraform fmt` and
checkov pass. `terraform init/validate` need the providers from the registry, so they run in CI
(.github/workflows/ci.yml, job `infra`), not here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, TF_DIR, clean, strip_hcl_comments, tf_files, unquote

NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
REF_VAR = re.compile(rf"\bvar\.({NAME})")
REF_LOCAL = re.compile(rf"\blocal\.({NAME})")
REF_DATA = re.compile(rf"\bdata\.([a-z0-9_]+)\.({NAME})")
REF_MODULE = re.compile(rf"\bmodule\.({NAME})")
# google_*/random_* resource references; "data." ones are handled by REF_DATA.
REF_RESOURCE = re.compile(rf"(?<![\w.-])((?:google|random)_[a-z0-9_]+)\.({NAME})")


def _blocks(parsed: dict[str, dict], kind: str) -> list[dict]:
    return [block for doc in parsed.values() for block in doc.get(kind, [])]


def _declared(parsed):
    variables = {unquote(k) for b in _blocks(parsed, "variable") for k in b}
    locals_ = {unquote(k) for b in _blocks(parsed, "locals") for k in b}
    resources = {(unquote(t), unquote(n)) for b in _blocks(parsed, "resource") for t, v in b.items() for n in v}
    data = {(unquote(t), unquote(n)) for b in _blocks(parsed, "data") for t, v in b.items() for n in v}
    modules = {unquote(k) for b in _blocks(parsed, "module") for k in b}
    outputs = {unquote(k) for b in _blocks(parsed, "output") for k in b}
    return variables, locals_, resources, data, modules, outputs


def _sources(exclude: tuple[str, ...] = ()) -> dict[str, str]:
    return {p.name: strip_hcl_comments(p.read_text()) for p in tf_files() if p.name not in exclude}


def test_there_is_terraform():
    names = {p.name for p in tf_files()}
    for required in ("versions.tf", "variables.tf", "outputs.tf", "providers.tf"):
        assert required in names


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: p.name)
def test_every_tf_file_parses(hcl2, path: Path):
    with path.open() as fh:
        doc = hcl2.load(fh)
    assert isinstance(doc, dict)


def test_every_variable_is_declared_and_used(parsed):
    variables = _declared(parsed)[0]
    # Uses outside variables.tf: a validation block referring to a variable is not a use.
    used = {m for text in _sources(exclude=("variables.tf",)).values() for m in REF_VAR.findall(text)}
    all_refs = {m for text in _sources().values() for m in REF_VAR.findall(text)}
    assert sorted(all_refs - variables) == [], "var.* used but not declared"
    assert sorted(variables - used) == [], "variables declared but never used"


def test_every_reference_resolves(parsed):
    _, locals_, resources, data, modules, _ = _declared(parsed)
    problems = []
    for name, text in _sources().items():
        for ref in REF_LOCAL.findall(text):
            if ref not in locals_:
                problems.append(f"{name}: local.{ref}")
        for ref in REF_DATA.findall(text):
            if ref not in data:
                problems.append(f"{name}: data.{ref[0]}.{ref[1]}")
        for ref in REF_MODULE.findall(text):
            if ref not in modules:
                problems.append(f"{name}: module.{ref}")
        for rtype, rname in REF_RESOURCE.findall(text):
            if (rtype, rname) not in resources:
                problems.append(f"{name}: {rtype}.{rname}")
    assert problems == [], f"unresolved references: {problems}"


def test_every_local_is_used(parsed):
    locals_ = _declared(parsed)[1]
    text = "\n".join(_sources().values())
    unused = sorted(name for name in locals_ if not re.search(rf"\blocal\.{re.escape(name)}\b", text))
    assert unused == []


def test_variables_and_outputs_are_documented(parsed):
    for block in _blocks(parsed, "variable"):
        for name, body in block.items():
            assert body.get("description"), f"variable {unquote(name)} has no description"
            assert body.get("type"), f"variable {unquote(name)} has no type"
    for block in _blocks(parsed, "output"):
        for name, body in block.items():
            assert body.get("description"), f"output {unquote(name)} has no description"
    with_validation = [
        unquote(n) for b in _blocks(parsed, "variable") for n, body in b.items() if body.get("validation")
    ]
    assert len(with_validation) >= 20


def test_providers_are_pinned_and_backend_is_partial_gcs(parsed):
    terraform_blocks = _blocks(parsed, "terraform")
    assert terraform_blocks
    tf = terraform_blocks[0]
    assert tf.get("required_version")
    providers = {unquote(k): v for d in tf["required_providers"] for k, v in d.items()}
    assert {"google", "google-beta"} <= providers.keys()
    for name, spec in providers.items():
        version = unquote(spec["version"])
        assert re.match(r"^(~>|=)\s*\d+\.\d+", version), f"provider {name} is not pinned: {version}"
    assert unquote(providers["google"]["version"]) == unquote(providers["google-beta"]["version"])
    backend = {unquote(k): v for d in tf["backend"] for k, v in d.items()}
    assert set(backend) == {"gcs"}
    assert not {k for k in backend["gcs"] if not k.startswith("__")}, "backend config must be partial (-backend-config)"
    text = (TF_DIR / "providers.tf").read_text() + (TF_DIR / "apis.tf").read_text()
    assert "google-beta" in text  # both providers configured and used


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_tfvars_examples_set_only_declared_variables(hcl2, parsed, env):
    variables = _declared(parsed)[0]
    required = {unquote(n) for b in _blocks(parsed, "variable") for n, body in b.items() if "default" not in body}
    path = TF_DIR / "envs" / f"{env}.tfvars.example"
    with path.open() as fh:
        values = {unquote(k): v for k, v in clean(hcl2.load(fh)).items()}
    assert set(values) <= variables, f"unknown variables in {path.name}: {set(values) - variables}"
    assert required <= set(values), f"{path.name} misses required variables {required - set(values)}"
    assert unquote(str(values["env"])) == env


def test_bronze_history_moves_to_colder_storage(parsed):
    lake = next(
        body
        for b in _blocks(parsed, "resource")
        for rtype, named in b.items()
        if unquote(rtype) == "google_storage_bucket"
        for name, body in named.items()
        if unquote(name) == "lake"
    )
    lake = lake if isinstance(lake, dict) else lake[0]
    classes = []
    for rule in lake["lifecycle_rule"]:
        action, condition = rule["action"][0], rule["condition"][0]
        if unquote(str(action["type"])) == "SetStorageClass":
            assert [unquote(p) for p in condition["matches_prefix"]] == ["lake/bronze/"]
            classes.append(unquote(str(action["storage_class"])))
    assert classes == ["NEARLINE", "COLDLINE", "ARCHIVE"]


def test_workflow_template_matches_templatefile_call_and_renders_to_yaml():
    template = (TF_DIR / "workflows" / "nightly.yaml.tftpl").read_text()
    placeholders = set(re.findall(r"(?<!\$)\$\{([a-z_]+)\}", template))
    call = (TF_DIR / "scheduler.tf").read_text()
    body = call[call.index("templatefile(") :]
    body = body[: body.index("})") + 2]
    keys = set(re.findall(r"^\s+([a-z_]+)\s+=", body, flags=re.M))
    assert placeholders == keys
    rendered = template.replace("$${", "${")
    for key in keys:
        value = (
            '["gold", "score"]'
            if key == "jobs_json"
            else '{"a.b": "c"}'
            if key == "properties_json"
            else "600"
            if key == "connector_timeout_seconds"
            else "x"
        )
        rendered = rendered.replace("${" + key + "}", value)
    doc = yaml.safe_load(rendered)
    steps = [next(iter(s)) for s in doc["main"]["steps"]]
    assert steps[0] == "init" and "run_chain" in steps
    chain = next(s["run_chain"] for s in doc["main"]["steps"] if "run_chain" in s)
    submit = chain["for"]["steps"][0]["submit_batch"]
    assert submit["call"] == "googleapis.dataproc.v1.projects.locations.batches.create"
    exec_cfg = submit["args"]["body"]["environmentConfig"]["executionConfig"]
    assert exec_cfg["authenticationConfig"]["userWorkloadAuthenticationType"] == "SERVICE_ACCOUNT"
    batch = submit["args"]["body"]["pysparkBatch"]  # one entry point, the stage as its first argument
    assert batch["mainPythonFileUri"] == '${release.base + "/jobs/batch/run.py"}'
    assert batch["args"] == ["${job}", "--env", "gcp"]


def test_checkov_skips_are_inline_with_reasons():
    skips = []
    for path in tf_files():
        for line in path.read_text().splitlines():
            m = re.search(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+)(?::(.*))?$", line)
            if m:
                skips.append((path.name, m.group(1), (m.group(2) or "").strip()))
    assert skips, "expected the documented skips"
    for name, check, reason in skips:
        assert len(reason) >= 30, f"{name}: skip of {check} needs a real reason"
    config = yaml.safe_load((TF_DIR / ".checkov.yaml").read_text())
    assert not config.get("skip-check"), "skips belong inline, next to the resource, with a reason"


def test_terraform_fmt():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform binary not on PATH (CI installs it with hashicorp/setup-terraform)")
    proc = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-list=true", str(TF_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"terraform fmt would change: {proc.stdout.strip()}"


def test_checkov_passes():
    checkov = ROOT / ".venv-tools" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip("checkov not installed: run scripts/setup_tools.sh (make setup does)")
    proc = subprocess.run(
        [str(checkov), "-d", str(TF_DIR), "--config-file", str(TF_DIR / ".checkov.yaml"), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.stdout.strip(), f"checkov printed nothing: {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
    failed = []
    for r in reports:
        for key in summary:
            summary[key] += r["summary"][key]
        failed += [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in r["results"]["failed_checks"]]
    print(
        f"checkov: passed={summary['passed']} skipped={summary['skipped']} failed={summary['failed']} "
        f"parsing_errors={summary['parsing_errors']}"
    )
    assert summary["parsing_errors"] == 0
    assert failed == [] and summary["failed"] == 0, failed
    assert summary["passed"] > 100


def test_kafka_topics_take_the_local_topic_config(parsed):
    """The Managed Kafka topics carry lib.kafka_admin.TOPIC_CONFIG where it applies: broker time
    (LogAppendTime) on both, the 16 MiB message limit on the events topic."""
    from lib.kafka_admin import TOPIC_CONFIG

    topics = {unquote(name): (body if isinstance(body, dict) else body[0])["configs"]
              for b in _blocks(parsed, "resource") for rtype, named in b.items()
              if unquote(rtype) == "google_managed_kafka_topic" for name, body in named.items()}
    configs = {name: {unquote(k): unquote(str(v)) for k, v in c.items()}
               for name, c in ((n, c if isinstance(c, dict) else c[0]) for n, c in topics.items())}
    assert set(configs) == {"events", "clock"}
    assert configs["events"]["max.message.bytes"] == TOPIC_CONFIG["max.message.bytes"]
    for name, c in configs.items():
        assert c.get("message.timestamp.type") == TOPIC_CONFIG["message.timestamp.type"] == "LogAppendTime", name
