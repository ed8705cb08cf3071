locals {
  services = toset([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "bigqueryconnection.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "dataproc.googleapis.com",
    # Serverless for Apache Spark runtime 3.0 requires the Dataproc resource manager API.
    "dataproc-rm.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "iap.googleapis.com",
    "logging.googleapis.com",
    "managedkafka.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "sts.googleapis.com",
    "storage.googleapis.com",
    "workflowexecutions.googleapis.com",
    "workflows.googleapis.com",
  ])
}

resource "google_project_service" "apis" {
  for_each = local.services

  project = var.project_id
  service = each.value
  # Never switch an API off on destroy: other tooling in the project may depend on it, and
  # disabling e.g. compute.googleapis.com would delete unrelated resources.
  disable_on_destroy         = false
  disable_dependent_services = false
}

# The Managed Kafka service agent must exist before it can be granted Pub/Sub access for the
# Pub/Sub source connector (google_project_service_identity is only in google-beta).
resource "google_project_service_identity" "managedkafka" {
  provider = google-beta

  project = var.project_id
  service = "managedkafka.googleapis.com"

  depends_on = [google_project_service.apis]
}
