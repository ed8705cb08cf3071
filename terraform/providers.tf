provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}

# Only used where a field is still beta-only; kept pinned next to `google` so both move together.
provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}

data "google_project" "this" {
  project_id = var.project_id
}
