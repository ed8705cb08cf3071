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
        if "uses" in job:  # a job that calls a reusable workflow has no runner of its own
            continue
        assert job.get("timeout-minutes"), "every job needs a timeout"
        assert job["runs-on"].startswith("ubuntu-")


SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
TAG_COMMENT = re.compile(r"^\s*-?\s*uses:\s*\S+@[0-9a-f]{40}\s+#\s*v\d+(\.\d+)*\s*$")


def unpinned_uses(text: str) -> list[str]:
    """Every `uses:` (step or reusable-workflow job) of a workflow YAML that is not pinned to a full
    40-hex commit SHA with its tag in a trailing comment. Local `./` workflows/actions and
    `docker://...@sha256:<64 hex>` images are pinned by nature."""
    doc = yaml.safe_load(text)
    found: list[str] = []
    for job in (doc.get("jobs") or {}).values():
        refs = [job["uses"]] if "uses" in job else []
        refs += [s["uses"] for s in job.get("steps", []) if "uses" in s]
        for ref in refs:
            if ref.startswith("./"):
                continue
            if ref.startswith("docker://"):
                if not re.search(r"@sha256:[0-9a-f]{64}$", ref):
                    found.append(ref)
                continue
            if not SHA_PIN.match(ref):
                found.append(ref)
    for line in text.splitlines():
        m = re.match(r"^\s*-?\s*uses:\s*(\S+)", line)
        if m and not m.group(1).startswith(("./", "docker://")) and SHA_PIN.match(m.group(1)):
            if not TAG_COMMENT.match(line):
                found.append(f"{m.group(1)} (no '# vX.Y.Z' comment)")
    return found


@pytest.mark.parametrize("name", WORKFLOWS)
def test_actions_are_pinned_to_commit_shas(name):
    assert unpinned_uses((WORKFLOWS_DIR / name).read_text()) == []


PLANTED = """
on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@11d5960a326750d5838078e36cf38b85af677262 # v4.4.0
      - uses: ./.github/actions/local
      - uses: docker://alpine@sha256:%s
      - uses: %s
"""


@pytest.mark.parametrize(
    "bad",
    [
        "actions/checkout@v4",
        "actions/checkout@v4.2.2",
        "actions/checkout@main",
        "actions/checkout@11d5960",  # short SHA
        "docker://alpine:3.20",
    ],
)
def test_pin_check_rejects_a_tag_pinned_action(bad):
    assert unpinned_uses(PLANTED % ("0" * 64, bad)) == [bad]


def test_pin_check_wants_the_tag_comment_and_accepts_a_pinned_workflow():
    sha = "11d5960a326750d5838078e36cf38b85af677262"
    assert unpinned_uses(PLANTED % ("0" * 64, f"actions/cache@{sha} # v4.3.0")) == []
    assert unpinned_uses(PLANTED % ("0" * 64, f"actions/cache@{sha}")) == [f"actions/cache@{sha} (no '# vX.Y.Z' comment)"]


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
    # pull requests, and (through deploy.yml) every push to main
    assert {"pull_request", "workflow_call"} <= set(doc["on"])
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


def deploy_gate_problems(doc: dict) -> list[str]:
    """Why the deploy job of a deploy workflow could start without CI success for its commit."""
    problems = []
    jobs = doc["jobs"]
    ci = jobs.get("ci", {})
    if ci.get("uses") != "./.github/workflows/ci.yml":
        problems.append("job ci does not call ./.github/workflows/ci.yml")
    if ci.get("with") or ci.get("if"):
        problems.append("job ci must run CI unchanged for the workflow's own commit")
    deploy = jobs.get("deploy", {})
    needs = deploy.get("needs", [])
    needs = [needs] if isinstance(needs, str) else needs
    if "ci" not in needs:
        problems.append("deploy does not need ci")
    condition = str(deploy.get("if", ""))
    if re.search(r"always\(\)|failure\(\)|cancelled\(\)|needs\.ci\.result", condition):
        problems.append(f"deploy's if overrides the success of ci: {condition}")
    for step in deploy.get("steps", []):
        ref = (step.get("with") or {}).get("ref")
        if ref:
            problems.append(f"deploy checks out {ref}, not the commit CI tested")
    for name, job in jobs.items():
        if name != "deploy" and (job.get("permissions") or doc.get("permissions", {})).get("id-token") == "write":
            problems.append(f"job {name} can get an OIDC token")
    if doc.get("permissions", {}).get("id-token"):
        problems.append("id-token granted workflow-wide (CI jobs would get it)")
    return problems


def test_deploy_starts_only_after_ci_passed_for_the_same_commit():
    doc = _load("deploy.yml")
    assert deploy_gate_problems(doc) == []
    deploy = doc["jobs"]["deploy"]
    assert deploy["permissions"]["id-token"] == "write"
    assert "refs/heads/main" in deploy["if"]
    # CI's own jobs keep read-only permissions
    assert _load("ci.yml")["permissions"] == {"contents": "read"}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["jobs"]["deploy"].pop("needs"),
        lambda d: d["jobs"]["deploy"].update({"if": "always()"}),
        lambda d: d["jobs"]["deploy"].update({"if": "${{ !cancelled() }}"}),
        lambda d: d["jobs"]["ci"].update({"uses": "./.github/workflows/other.yml"}),
        lambda d: d["jobs"]["deploy"]["steps"][0].setdefault("with", {}).update({"ref": "${{ github.head_ref }}"}),
        lambda d: d.update({"permissions": {"contents": "read", "id-token": "write"}}),
    ],
)
def test_deploy_gate_check_catches_a_bypass(mutate):
    doc = _load("deploy.yml")
    mutate(doc)
    assert deploy_gate_problems(doc)


def test_deploy_uses_workload_identity_and_protected_environments():
    doc = _load("deploy.yml")
    assert doc["jobs"]["deploy"]["permissions"]["id-token"] == "write"
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
