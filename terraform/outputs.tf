# Consumed by scripts/submit.sh (`terraform -chdir=terraform output -json` or the SHOP_* environment
# variables listed in docs/deploy.md) and by the GitHub deploy workflow.

output "project_id" {
  description = "Project of this environment."
  value       = var.project_id
}

output "region" {
  description = "Region of every regional resource."
  value       = var.region
}

output "env" {
  description = "Environment name."
  value       = var.env
}

output "lake_bucket" {
  description = "Bucket of the Delta lake."
  value       = google_storage_bucket.lake.name
}

output "lake_root" {
  description = "Lake root (SHOP__LAKE__ROOT)."
  value       = local.lake_root
}

output "checkpoints_root" {
  description = "Streaming checkpoints root (SHOP__LAKE__CHECKPOINTS)."
  value       = local.checkpoints_root
}

output "landing_root" {
  description = "Landing folder for dropped data files (SHOP__PATHS__DATA_DIR)."
  value       = local.landing_root
}

output "artifacts_bucket" {
  description = "Bucket of release artifacts uploaded by scripts/submit.sh."
  value       = google_storage_bucket.artifacts.name
}

output "dataproc_bucket" {
  description = "Dataproc staging/temp bucket, also the Serverless --deps-bucket."
  value       = google_storage_bucket.dataproc.name
}

output "dataproc_cluster" {
  description = "Dataproc cluster that runs the streaming job."
  value       = google_dataproc_cluster.streaming.name
}

output "subnetwork" {
  description = "Subnetwork (with Private Google Access) for Serverless batches."
  value       = google_compute_subnetwork.main.id
}

output "streaming_service_account" {
  description = "Identity of the streaming cluster."
  value       = google_service_account.sa["streaming"].email
}

output "batch_service_account" {
  description = "Identity of Serverless batches."
  value       = google_service_account.sa["batch"].email
}

output "deployer_service_account" {
  description = "Service account GitHub Actions impersonates (GitHub environment variable GCP_SERVICE_ACCOUNT)."
  value       = google_service_account.sa["deployer"].email
}

output "workload_identity_provider" {
  description = "Full provider name for google-github-actions/auth (GitHub environment variable GCP_WORKLOAD_IDENTITY_PROVIDER)."
  value       = var.github_repository_id == "" ? "" : google_iam_workload_identity_pool_provider.github[0].name
}

output "kafka_bootstrap_servers" {
  description = "Managed Kafka bootstrap address (SHOP__KAFKA__BOOTSTRAP_SERVERS)."
  value       = local.kafka_bootstrap
}

output "kafka_topic" {
  description = "Event topic."
  value       = google_managed_kafka_topic.events.topic_id
}

output "pubsub_ingest_topic" {
  description = "Pub/Sub topic forwarded into Kafka by the Connect source connector (empty when disabled)."
  value       = var.enable_pubsub_ingest ? google_pubsub_topic.ingest[0].id : ""
}

output "secret_ids" {
  description = "Secret Manager secrets whose values must be added by hand (gcloud secrets versions add)."
  value       = { for k, s in google_secret_manager_secret.app : k => s.secret_id }
}

output "secret_env" {
  description = "Environment variables naming the secrets' latest versions, passed to the jobs."
  value       = local.secret_env
}

output "mlflow_url" {
  description = "MLflow tracking URI (IAM-protected; empty until mlflow_image is set)."
  value       = var.mlflow_image == "" ? "" : google_cloud_run_v2_service.mlflow[0].uri
}

output "mlflow_image_repository" {
  description = "Artifact Registry path to push the MLflow image to."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "bigquery_dataset" {
  description = "BigQuery dataset with the BigLake gold tables (Looker Studio data source)."
  value       = "${var.project_id}.${google_bigquery_dataset.gold.dataset_id}"
}

output "nightly_workflow" {
  description = "Workflow running the nightly batch chain."
  value       = google_workflows_workflow.nightly.name
}

output "batch_runtime_version" {
  description = "Serverless runtime version of the batch jobs."
  value       = var.batch_runtime_version
}

output "mlflow_image" {
  description = "MLflow server image currently deployed (empty before the first image build)."
  value       = var.mlflow_image
}

output "dashboard_url" {
  description = "The business dashboard (IAP: dashboard_members sign in with their Google account; empty until dashboard_image is set)."
  value       = local.dashboard_enabled ? google_cloud_run_v2_service.dashboard[0].uri : ""
}

output "unsubscribe_url" {
  description = "The emails' unsubscribe link (public service), handed to the streaming job by scripts/submit.sh --from-terraform; empty until dashboard_image is set."
  value       = local.dashboard_enabled ? "${google_cloud_run_v2_service.unsubscribe[0].uri}/unsubscribe" : ""
}

output "dashboard_image" {
  description = "Dashboard/unsubscribe image currently deployed (empty before the first image build)."
  value       = var.dashboard_image
}
