# Workload Identity Federation for GitHub Actions: the deploy/destroy workflows of
# var.github_repository, running in the GitHub environment named like var.env (dev/prod, each
# with protection rules), exchange their OIDC token for the deployer service account. No keys.
#
# The first `terraform apply` (which creates this pool) is run by a person with owner rights;
# every later apply runs from GitHub Actions. destroy.yml keeps this pool, the deployer account
# and its roles (it removes them from the state first) so CI can deploy again afterwards.

resource "google_iam_workload_identity_pool" "github" {
  count = var.github_repository == "" ? 0 : 1

  workload_identity_pool_id = "${local.prefix}-github"
  display_name              = "GitHub Actions (${var.env})"
  description               = "Deploy workflows of ${var.github_repository}, environment ${var.env}"

  depends_on = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:The condition is assertion.sub == "repo:OWNER/REPO:environment:ENV" (exact repository and environment), but checkov cannot resolve var.github_repository (validated as owner/name) statically.
  count = var.github_repository == "" ? 0 : 1

  workload_identity_pool_id          = google_iam_workload_identity_pool.github[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github-actions"
  display_name                       = "GitHub Actions OIDC"

  attribute_mapping = {
    "google.subject"        = "assertion.sub"
    "attribute.repository"  = "assertion.repository"
    "attribute.environment" = "assertion.environment"
    "attribute.ref"         = "assertion.ref"
    "attribute.actor"       = "assertion.actor"
  }
  # Only jobs of this repository bound to this project's GitHub environment (whose protection
  # rules — required reviewers, allowed branches — GitHub enforces before it issues the token).
  # GitHub sets sub = "repo:OWNER/REPO:environment:NAME" for such jobs.
  attribute_condition = "assertion.sub == \"repo:${var.github_repository}:environment:${var.env}\""

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "deployer_wif" {
  count = var.github_repository == "" ? 0 : 1

  service_account_id = google_service_account.sa["deployer"].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github[0].name}/attribute.repository/${var.github_repository}"
}
