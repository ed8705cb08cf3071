# One service account per workload, each with only what that workload touches.
#   streaming  - Dataproc cluster VMs running the long-lived streaming job (+ e-mail dispatcher)
#   batch      - Serverless for Apache Spark batches (gold tables, training, scoring, maintenance)
#   workflows  - the Workflows execution that submits the nightly batches in order
#   scheduler  - Cloud Scheduler's identity that starts the workflow
#   mlflow     - the MLflow tracking server on Cloud Run
#   bq-reader  - dashboards / Looker Studio data source: read-only BigQuery over gold
#   dashboard  - the business dashboard on Cloud Run (behind IAP): reads gold, ops, quarantine, decisions, offers
#   unsubscribe - the public unsubscribe page on Cloud Run: appends retarget/unsubscribes, reads retarget/offers
#                 (the offer-code check), nothing else
#   deployer   - GitHub Actions (via Workload Identity Federation): terraform apply + submit
locals {
  service_accounts = {
    streaming   = "Streaming job on the Dataproc cluster"
    batch       = "Serverless Spark batch jobs"
    workflows   = "Nightly batch chain (Workflows)"
    scheduler   = "Cloud Scheduler trigger of the nightly chain"
    mlflow      = "MLflow tracking server (Cloud Run)"
    bq-reader   = "Read-only BigQuery access to gold tables (dashboards, Looker Studio)"
    dashboard   = "Business dashboard (Cloud Run, behind IAP): reads the lake"
    unsubscribe = "Public unsubscribe page (Cloud Run): writes retarget/unsubscribes only"
    deployer    = "CI/CD deployer (GitHub Actions via WIF)"
  }
}

resource "google_service_account" "sa" {
  for_each = local.service_accounts

  account_id   = "${local.prefix}-${each.key}"
  display_name = "${local.prefix} ${each.key}"
  description  = each.value

  depends_on = [google_project_service.apis]
}

locals {
  sa_member = { for k, v in google_service_account.sa : k => "serviceAccount:${v.email}" }
}

# ---- project-level roles (only those that have no narrower resource to bind on) --------------
locals {
  project_roles = {
    # Dataproc VM/batch identity (the documented minimum for a Dataproc worker / Serverless SA).
    "streaming-dataproc-worker" = { sa = "streaming", role = "roles/dataproc.worker" }
    "batch-dataproc-worker"     = { sa = "batch", role = "roles/dataproc.worker" }
    # Consume/produce on Managed Kafka (SASL/OAUTHBEARER with the SA's token).
    "streaming-kafka-client" = { sa = "streaming", role = "roles/managedkafka.client" }
    # Submitting Serverless batches.
    "workflows-dataproc-editor" = { sa = "workflows", role = "roles/dataproc.editor" }
    "workflows-log-writer"      = { sa = "workflows", role = "roles/logging.logWriter" }
    # Running BigQuery query jobs (billing) for dashboards.
    "bq-reader-job-user" = { sa = "bq-reader", role = "roles/bigquery.jobUser" }
    # Cloud Run service: logs and metrics.
    "mlflow-log-writer"    = { sa = "mlflow", role = "roles/logging.logWriter" }
    "mlflow-metric-writer" = { sa = "mlflow", role = "roles/monitoring.metricWriter" }
  }
}

resource "google_project_iam_member" "workload" {
  for_each = local.project_roles

  project = var.project_id
  role    = each.value.role
  member  = local.sa_member[each.value.sa]
}

# ---- bucket-level roles ------------------------------------------------------------------------
locals {
  bucket_roles = {
    "streaming-lake"        = { sa = "streaming", bucket = "lake", role = "roles/storage.objectAdmin" }
    "streaming-checkpoints" = { sa = "streaming", bucket = "checkpoints", role = "roles/storage.objectAdmin" }
    "streaming-artifacts"   = { sa = "streaming", bucket = "artifacts", role = "roles/storage.objectViewer" }
    "streaming-dataproc"    = { sa = "streaming", bucket = "dataproc", role = "roles/storage.objectAdmin" }
    "batch-lake"            = { sa = "batch", bucket = "lake", role = "roles/storage.objectAdmin" }
    "batch-artifacts"       = { sa = "batch", bucket = "artifacts", role = "roles/storage.objectViewer" }
    "batch-dataproc"        = { sa = "batch", bucket = "dataproc", role = "roles/storage.objectAdmin" }
    "workflows-artifacts"   = { sa = "workflows", bucket = "artifacts", role = "roles/storage.objectViewer" }
    "mlflow-artifacts"      = { sa = "mlflow", bucket = "mlflow", role = "roles/storage.objectAdmin" }
    "deployer-artifacts"    = { sa = "deployer", bucket = "artifacts", role = "roles/storage.objectAdmin" }
    "deployer-dataproc"     = { sa = "deployer", bucket = "dataproc", role = "roles/storage.objectAdmin" }
  }
  buckets = {
    lake        = google_storage_bucket.lake.name
    checkpoints = google_storage_bucket.checkpoints.name
    artifacts   = google_storage_bucket.artifacts.name
    mlflow      = google_storage_bucket.mlflow.name
    dataproc    = google_storage_bucket.dataproc.name
  }
}

resource "google_storage_bucket_iam_member" "workload" {
  for_each = local.bucket_roles

  bucket = local.buckets[each.value.bucket]
  role   = each.value.role
  member = local.sa_member[each.value.sa]
}

# Dashboards read only the gold layer of the lake directly (deltalake package, no Spark).
resource "google_storage_bucket_iam_member" "bq_reader_gold" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectViewer"
  member = local.sa_member["bq-reader"]

  condition {
    title       = "gold-only"
    description = "Objects under lake/gold/ and listings of that prefix"
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.lake.name}/objects/lake/gold/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"lake/gold/\")"
  }
}

# ---- who may act as whom ------------------------------------------------------------------------
locals {
  act_as = {
    # Workflows submits batches that run as the batch SA.
    "workflows-as-batch" = { sa = "batch", member = local.sa_member["workflows"] }
    # The deployer creates the cluster, Cloud Run service, workflow and scheduler job with these identities
    # and submits streaming/batch jobs (scripts/submit.sh).
    "deployer-as-streaming"   = { sa = "streaming", member = local.sa_member["deployer"] }
    "deployer-as-batch"       = { sa = "batch", member = local.sa_member["deployer"] }
    "deployer-as-workflows"   = { sa = "workflows", member = local.sa_member["deployer"] }
    "deployer-as-scheduler"   = { sa = "scheduler", member = local.sa_member["deployer"] }
    "deployer-as-mlflow"      = { sa = "mlflow", member = local.sa_member["deployer"] }
    "deployer-as-dashboard"   = { sa = "dashboard", member = local.sa_member["deployer"] }
    "deployer-as-unsubscribe" = { sa = "unsubscribe", member = local.sa_member["deployer"] }
  }
}

resource "google_service_account_iam_member" "act_as" {
  for_each = local.act_as

  service_account_id = google_service_account.sa[each.value.sa].name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value.member
}

# ---- the CI/CD deployer ---------------------------------------------------------------------------
# Terraform manages every resource above, so the deployer needs admin on those services. It gets
# no basic role (owner/editor) and cannot act as any service account outside this stack.
locals {
  deployer_roles = toset([
    "roles/artifactregistry.admin",
    "roles/bigquery.admin",
    "roles/cloudscheduler.admin",
    "roles/cloudsql.admin",
    "roles/compute.networkAdmin",
    "roles/compute.securityAdmin",
    "roles/dataproc.editor",
    "roles/iam.workloadIdentityPoolAdmin",
    "roles/iap.admin", # who may pass IAP to the dashboard (terraform/dashboard.tf)
    "roles/logging.configWriter",
    "roles/managedkafka.admin",
    "roles/monitoring.editor",
    "roles/pubsub.admin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/run.admin",
    "roles/secretmanager.admin",
    "roles/servicenetworking.networksAdmin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/storage.admin",
    "roles/workflows.admin",
  ])
}

resource "google_project_iam_member" "deployer" {
  #checkov:skip=CKV_GCP_42:The CD deployer applies this Terraform stack and must administer the services it creates; it has no basic role and is only reachable through WIF from the protected GitHub environment.
  for_each = local.deployer_roles

  project = var.project_id
  role    = each.value
  member  = local.sa_member["deployer"]
}

# Creating/deleting the stack's service accounts. The deployer can *act as* only the stack's own
# accounts (per-account serviceAccountUser grants above), not every account of the project.
resource "google_project_iam_member" "deployer_service_account_admin" {
  #checkov:skip=CKV_GCP_49:Terraform creates and deletes this stack's service accounts, which needs iam.serviceAccountAdmin at project level; impersonation is limited to the stack's own accounts.
  #checkov:skip=CKV_GCP_42:Same deployer justification as google_project_iam_member.deployer.
  project = var.project_id
  role    = "roles/iam.serviceAccountAdmin"
  member  = local.sa_member["deployer"]
}
