# Workload Identity Federation for GitHub Actions: the deploy/destroy workflows of the repository
# with the numeric id var.github_repository_id, running on the protected branch main in the GitHub
# environment named like var.env (dev/prod, each with protection rules), exchange their OIDC token
# for the deployer service account. No keys.
#
# Bound to the repository *id*, not its name: a name can be freed (rename, transfer, deletion) and
# registered again by someone else, whose workflows would then carry the same `repository` claim;
# the id is never reused. var.github_repository (owner/name) only labels the pool.
#
# The deployer cannot change this file's resources (it holds only workloadIdentityPoolViewer and no
# IAM rights on its own service account, terraform/iam.tf): a person with owner rights applies them.
#
# The first `terraform apply` (which creates this pool) is run by a person with owner rights;
# every later apply runs from GitHub Actions. destroy.yml keeps this pool, the deployer account
# and its roles (it removes them from the state first) so CI can deploy again afterwards.

resource "google_iam_workload_identity_pool" "github" {
  count = var.github_repository_id == "" ? 0 : 1

  workload_identity_pool_id = "${local.prefix}-github"
  display_name              = "GitHub Actions (${var.env})"
  description               = "Deploy workflows of GitHub repository ${var.github_repository_id} (${var.github_repository}), environment ${var.env}"

  depends_on = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:The condition pins assertion.repository_id (numeric, never reused), assertion.ref == refs/heads/main and assertion.environment; checkov only understands conditions on assertion.sub, whose owner/name can be re-registered by someone else.
  count = var.github_repository_id == "" ? 0 : 1

  workload_identity_pool_id          = google_iam_workload_identity_pool.github[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github-actions"
  display_name                       = "GitHub Actions OIDC"

  attribute_mapping = {
    "google.subject"          = "assertion.sub"
    "attribute.repository_id" = "assertion.repository_id"
    "attribute.repository"    = "assertion.repository"
    "attribute.environment"   = "assertion.environment"
    "attribute.ref"           = "assertion.ref"
    "attribute.actor"         = "assertion.actor"
  }
  # Only jobs of this repository (by id), on the protected branch main, bound to this project's
  # GitHub environment (whose protection rules — required reviewers, allowed branches — GitHub
  # enforces before it issues the token). A workflow run from any other branch, a fork or a
  # pull request gets a token Google rejects.
  attribute_condition = "assertion.repository_id == \"${var.github_repository_id}\" && assertion.ref == \"refs/heads/main\" && assertion.environment == \"${var.env}\""

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "deployer_wif" {
  count = var.github_repository_id == "" ? 0 : 1

  service_account_id = google_service_account.sa["deployer"].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github[0].name}/attribute.repository_id/${var.github_repository_id}"
}
