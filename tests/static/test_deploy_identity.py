"""The deploy identity (terraform/wif.tf, terraform/iam.tf): GitHub is trusted by repository id and the
protected branch, and the deployer can neither grant itself owner nor read the application secrets."""

from __future__ import annotations

import re

from .conftest import TF_DIR, unquote


def _resource(parsed, rtype, name):
    for doc in parsed.values():
        for block in doc.get("resource", []):
            for key, body in block.items():
                if unquote(key) == rtype:
                    for rname, conf in body.items():
                        if unquote(rname) == name:
                            return conf
    raise AssertionError(f"{rtype}.{name} not found")


def _locals(parsed) -> dict:
    out = {}
    for doc in parsed.values():
        for block in doc.get("locals", []):
            out.update(block)
    return out


def test_wif_trusts_the_repository_id_and_the_protected_branch(parsed):
    provider = _resource(parsed, "google_iam_workload_identity_pool_provider", "github")
    condition = unquote(str(provider["attribute_condition"]))
    assert 'assertion.repository_id == \\"${var.github_repository_id}\\"' in condition or (
        'assertion.repository_id == "${var.github_repository_id}"' in condition
    )
    assert re.search(r"assertion\.ref == \\?\"refs/heads/main\\?\"", condition)
    assert "assertion.environment" in condition
    assert "assertion.repository ==" not in condition and "assertion.sub" not in condition
    assert " && " in condition and "||" not in condition
    mapping = provider["attribute_mapping"]
    mapping = mapping[0] if isinstance(mapping, list) else mapping
    assert unquote(str(mapping['"attribute.repository_id"' if '"attribute.repository_id"' in mapping else "attribute.repository_id"])) == "assertion.repository_id"
    binding = _resource(parsed, "google_service_account_iam_member", "deployer_wif")
    assert "/attribute.repository_id/${var.github_repository_id}" in str(binding["member"])
    assert "attribute.repository/" not in str(binding["member"])


def test_repository_id_variable_is_numeric():
    text = (TF_DIR / "variables.tf").read_text()
    block = text[text.index('variable "github_repository_id"') :]
    block = block[: block.index("\n}\n")]
    assert "^[0-9]*$" in block


FORBIDDEN = {
    "roles/owner",
    "roles/editor",
    "roles/resourcemanager.projectIamAdmin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountKeyAdmin",
    "roles/iam.roleAdmin",
    "roles/iam.securityAdmin",
    "roles/iam.workloadIdentityPoolAdmin",
    "roles/secretmanager.admin",
    "roles/secretmanager.secretAccessor",
}


def test_deployer_has_no_role_to_escalate_or_read_secrets(parsed):
    roles = _locals(parsed)["deployer_roles"]
    roles = {unquote(k) for k in roles}
    assert roles and not roles & FORBIDDEN, roles & FORBIDDEN
    for name in roles:
        assert not name.startswith("roles/secretmanager."), name
    # the reason for every role sits next to it
    assert all(str(v).strip() for v in _locals(parsed)["deployer_roles"].values())
    # no other unconditional project grant to the deployer
    text = "\n".join(p.read_text() for p in TF_DIR.glob("*.tf"))
    for m in re.finditer(r'resource "google_project_iam_member" "(\w+)" \{(.*?)\n\}', text, re.S):
        name, body = m.groups()
        if 'local.sa_member["deployer"]' not in body or name == "deployer":
            continue
        role = re.search(r'role\s*=\s*"?([^"\n]+)', body).group(1)
        if role == "roles/resourcemanager.projectIamAdmin":
            assert "condition {" in body and "modifiedGrantsByRole" in body, name
        else:
            assert "deployer_secrets" in role, f"{name}: {role}"


def test_deployer_may_grant_only_the_stacks_workload_roles(parsed):
    grantable = set(_locals(parsed)["deployer_grantable_project_roles"])
    assert not grantable & FORBIDDEN
    assert not any(r.startswith(("roles/iam.", "roles/secretmanager.", "roles/resourcemanager.")) for r in grantable)
    limited = _resource(parsed, "google_project_iam_member", "deployer_project_iam_limited")
    expression = str(limited["condition"][0]["expression"])
    assert "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly(" in expression
    assert "local.deployer_grantable_project_roles" in expression
    # every project role the stack grants (to anyone but the deployer) is grantable
    text = "\n".join(p.read_text() for p in TF_DIR.glob("*.tf"))
    stack_roles = {r["role"] for r in _locals(parsed)["project_roles"].values()}
    for m in re.finditer(r'resource "google_project_iam_member" "(\w+)" \{(.*?)\n\}', text, re.S):
        if "deployer" not in m.group(1):
            stack_roles |= set(re.findall(r'role\s*=\s*"(roles/[^"]+)"', m.group(2)))
    assert stack_roles <= grantable, stack_roles - grantable


def test_deployer_secrets_role_cannot_read_values_or_change_access(parsed):
    role = _resource(parsed, "google_project_iam_custom_role", "deployer_secrets")
    permissions = set(role["permissions"])
    assert "secretmanager.versions.access" not in permissions
    assert "secretmanager.secrets.setIamPolicy" not in permissions
    assert all(p.startswith("secretmanager.") for p in permissions)
    # the only secret it may read: the MLflow DB password Terraform generates (and holds in state)
    text = "\n".join(p.read_text() for p in TF_DIR.glob("*.tf"))
    readers = re.findall(r'resource "google_secret_manager_secret_iam_member" "\w+" \{[^}]*?local\.sa_member\["deployer"\]', text, re.S)
    assert len(readers) == 1 and "mlflow_db_password" in readers[0]


def test_deployer_administers_only_the_workload_accounts(parsed):
    managed = _resource(parsed, "google_service_account_iam_member", "deployer_manages")
    assert unquote(str(managed["role"])) == "roles/iam.serviceAccountAdmin"
    expr = str(_locals(parsed)["deployer_managed_accounts"])
    assert 'k != "deployer"' in expr or "k != \\\"deployer\\\"" in expr
