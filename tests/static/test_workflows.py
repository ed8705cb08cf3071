"""GitHub Actions workflows: valid YAML, pinned actions, every `make` target and script they call
exists, and the deploy/destroy safety rails (WIF auth, protected environments, typed confirmation)."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import ROOT, WORKFLOWS_DIR, make_targets

WORKFLOWS = ["ci.yml", "deploy.yml", "destroy.yml"]


def _load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS_DIR / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _steps(doc: dict):
    for job in doc["jobs"].values():
        yield from job.get("steps", [])


def _run_scripts(doc: dict) -> list[str]:
    return [step["run"] for step in _steps(doc) if "run" in step]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_parses(name):
    doc = _load(name)
    assert doc["jobs"] and doc["on"]
    for job in doc["jobs"].values():
        assert job.get("timeout-minutes"), "every job needs a timeout"
        assert job["runs-on"].startswith("ubuntu-")


@pytest.mark.parametrize("name", WORKFLOWS)
def test_actions_are_pinned(name):
    for step in _steps(_load(name)):
        if "uses" in step:
            assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", step["uses"]), step["uses"]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_make_targets_and_scripts_exist(name):
    targets = make_targets()
    for script in _run_scripts(_load(name)):
        for target in re.findall(r"\bmake\s+(?:-\S+\s+)*([a-z][a-z0-9_-]*)", script):
            assert target in targets, f"{name}: make {target} is not a target of Makefile/mk/*.mk"
        for path in re.findall(r"(?<![\w$./-])((?:scripts|\.ci|terraform|requirements)/[\w./-]+)", script):
            path = path.rstrip(".")
            assert (ROOT / path).exists(), f"{name}: {path} does not exist"
    for step in _steps(_load(name)):
        with_ = step.get("with", {}) or {}
        for key in ("cache-dependency-path",):
            if key in with_:
                assert list(ROOT.glob(with_[key])), f"{name}: {with_[key]} matches no file"


def test_ci_runs_the_suite_and_the_infra_checks():
    doc = _load("ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    steps = list(_steps(doc))
    uses = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    java = uses["actions/setup-java"]["with"]
    assert java["distribution"] == "temurin" and str(java["java-version"]) == "17"
    assert "~/.m2/repository" in uses["actions/cache"]["with"]["path"]
    assert uses["actions/setup-python"]["with"].get("cache") == "pip"
    runs = "\n".join(_run_scripts(doc))
    assert "bash .ci/run" in runs
    assert "terraform fmt -check -recursive" in runs
    assert "init -backend=false" in runs and "validate" in runs
    assert "checkov" in runs


def test_deploy_uses_workload_identity_and_protected_environments():
    doc = _load("deploy.yml")
    assert doc["permissions"]["id-token"] == "write"
    assert set(doc["on"]) == {"push", "workflow_dispatch"}
    assert doc["on"]["push"]["branches"] == ["main"]
    assert doc["on"]["workflow_dispatch"]["inputs"]["environment"]["options"] == ["dev", "prod"]
    job = doc["jobs"]["deploy"]
    assert "environment" in job
    uses = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    auth = uses["google-github-actions/auth"]["with"]
    assert auth.keys() >= {"workload_identity_provider", "service_account"}
    assert "credentials_json" not in auth
    assert "google-github-actions/setup-gcloud" in uses and "hashicorp/setup-terraform" in uses
    runs = "\n".join(_run_scripts(doc))
    for needle in (
        "make infra-init",
        "make infra-plan",
        "make infra-apply",
        "make submit-streaming",
        "scripts/fetch_gcp_jars.sh",
    ):
        assert needle in runs


def test_destroy_is_manual_confirmed_and_protected():
    doc = _load("destroy.yml")
    assert set(doc["on"]) == {"workflow_dispatch"}
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert inputs["confirm"]["required"] is True
    job = doc["jobs"]["destroy"]
    assert job["environment"] == "${{ inputs.environment }}"
    first = job["steps"][0]
    assert "CONFIRM" in first.get("env", {}) and "exit 1" in first["run"]
    runs = "\n".join(_run_scripts(doc))
    assert "terraform -chdir=terraform destroy" in runs
    # The CI identity is taken out of the state before the destroy, after the protection is lifted.
    assert runs.index("deletion_protection=false") < runs.index("state rm") < runs.index(" destroy ")


def test_makefile_help_convention():
    text = (ROOT / "mk" / "infra.mk").read_text()
    for target in (
        "infra-init",
        "infra-plan",
        "infra-apply",
        "infra-destroy",
        "package",
        "submit-streaming",
        "submit-batch",
        "check-infra",
    ):
        assert re.search(rf"^{target}:.*## \S", text, flags=re.M), f"{target} needs a '## description'"
