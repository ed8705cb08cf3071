# The business dashboard and the emails' unsubscribe page on Cloud Run: one image (terraform/dashboard/
# Dockerfile, built by the deploy workflow), two services with two identities.
#
#   dashboard   - live sales, data quality, cart recovery, outlook (python -m jobs.serving.dashboard --role dashboard).
#                 Business users sign in with their Google account through IAP, enabled on the service
#                 itself (no load balancer); only var.dashboard_members get through. Its identity reads
#                 the lake prefixes the page shows, nothing else, and writes nothing.
#   unsubscribe - the link in every email (--role unsubscribe): public by law and by design, it serves
#                 /unsubscribe and the offer-code check /api/offers/{code} (the shop's checkout server
#                 calls it; the answer holds nothing personal) and nothing else; its identity may append
#                 to lake/retarget/unsubscribes/, read lake/retarget/offers/ and read the link-signing
#                 key, nothing else. Its URL reaches the streaming job through
#                 `terraform output unsubscribe_url` (scripts/submit.sh --from-terraform).
# Both are created once var.dashboard_image is set (first apply: empty, like the MLflow image).

locals {
  dashboard_enabled = var.dashboard_image != ""
  # What the dashboard reads (lib/dashboard/tables.py): the gold layer, the ops counts, the recent
  # quarantined messages, the cart-recovery decisions and the offer codes (/api/offers/{code}); never
  # subscribers, attempts or raw events.
  dashboard_prefixes = ["lake/gold/", "lake/ops/", "lake/quarantine/", "lake/retarget/decisions/", "lake/retarget/offers/"]
  lake_objects       = "projects/_/buckets/${google_storage_bucket.lake.name}/objects/"
  # the IAP service agent calls the dashboard after a user passed IAP
  iap_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"
}

resource "google_storage_bucket_iam_member" "dashboard_reader" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectViewer"
  member = local.sa_member["dashboard"]

  condition {
    title       = "dashboard-prefixes"
    description = "Objects under the lake prefixes the dashboard shows, and listings of them"
    expression = join(" || ", concat(
      [for p in local.dashboard_prefixes : "resource.name.startsWith(\"${local.lake_objects}${p}\")"],
      [for p in local.dashboard_prefixes : "api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"${p}\")"],
    ))
  }
}

# Delta appends write new data files and log entries under the table's own prefix, and delta-rs
# rewrites _delta_log/_last_checkpoint every few commits: objectUser, bound to that prefix only.
resource "google_storage_bucket_iam_member" "unsubscribe_writer" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectUser"
  member = local.sa_member["unsubscribe"]

  condition {
    title       = "unsubscribes-only"
    description = "Objects under lake/retarget/unsubscribes/ and listings of that prefix"
    expression  = "resource.name.startsWith(\"${local.lake_objects}lake/retarget/unsubscribes/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"lake/retarget/unsubscribes/\")"
  }
}

# The offer-code check of the public service (lib/dashboard/offers.py) reads retarget/offers: read-only.
resource "google_storage_bucket_iam_member" "unsubscribe_offers_reader" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectViewer"
  member = local.sa_member["unsubscribe"]

  condition {
    title       = "offers-read-only"
    description = "Objects under lake/retarget/offers/ and listings of that prefix"
    expression  = "resource.name.startsWith(\"${local.lake_objects}lake/retarget/offers/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"lake/retarget/offers/\")"
  }
}

resource "google_secret_manager_secret_iam_member" "unsubscribe_signing_key" {
  secret_id = google_secret_manager_secret.app["unsubscribe-signing-key"].id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.sa_member["unsubscribe"]
}

resource "google_cloud_run_v2_service" "dashboard" {
  # IAP enabled on the service itself is a google-beta field.
  provider = google-beta
  count    = local.dashboard_enabled ? 1 : 0

  name                = "${local.prefix}-dashboard"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL" # every request passes IAP first
  iap_enabled         = true
  launch_stage        = "BETA"
  deletion_protection = var.deletion_protection

  template {
    service_account = google_service_account.sa["dashboard"].email

    scaling {
      min_instance_count = 0
      max_instance_count = 3
    }

    containers {
      image = var.dashboard_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
      }

      env {
        name  = "DASHBOARD_ROLE"
        value = "dashboard"
      }
      env {
        name  = "SHOP__LAKE__ROOT"
        value = local.lake_root
      }

      startup_probe {
        http_get {
          path = "/api/health"
        }
        period_seconds    = 5
        failure_threshold = 12
      }
    }
  }

  depends_on = [google_storage_bucket_iam_member.dashboard_reader, google_project_service.apis]
}

resource "google_cloud_run_v2_service_iam_member" "dashboard_iap_invoker" {
  count = local.dashboard_enabled ? 1 : 0

  name     = google_cloud_run_v2_service.dashboard[0].name
  location = var.region
  role     = "roles/run.invoker"
  member   = local.iap_service_agent
}

resource "google_iap_web_cloud_run_service_iam_member" "dashboard_users" {
  for_each = local.dashboard_enabled ? toset(var.dashboard_members) : toset([])

  project                = var.project_id
  location               = var.region
  cloud_run_service_name = google_cloud_run_v2_service.dashboard[0].name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value
}

resource "google_cloud_run_v2_service" "unsubscribe" {
  count = local.dashboard_enabled ? 1 : 0

  name                = "${local.prefix}-unsubscribe"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.sa["unsubscribe"].email
    max_instance_request_concurrency = 40

    scaling {
      min_instance_count = 0
      max_instance_count = var.unsubscribe_max_instances
    }

    containers {
      image = var.dashboard_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
      }

      env {
        name  = "DASHBOARD_ROLE"
        value = "unsubscribe"
      }
      env {
        name  = "SHOP__LAKE__ROOT"
        value = local.lake_root
      }
      env {
        # the key's resource name, not its value: the service reads it with its own identity
        name  = "UNSUBSCRIBE_SIGNING_KEY_SECRET"
        value = local.secret_env.UNSUBSCRIBE_SIGNING_KEY_SECRET
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 5
        failure_threshold = 12
      }
    }
  }

  depends_on = [
    google_storage_bucket_iam_member.unsubscribe_writer,
    google_storage_bucket_iam_member.unsubscribe_offers_reader,
    google_secret_manager_secret_iam_member.unsubscribe_signing_key,
  ]
}

# Anyone holding an email may open its unsubscribe link: the service can do nothing but verify the
# signed token and record the unsubscribe, and check offer codes (lib/dashboard/app.py create_unsubscribe_app).
resource "google_cloud_run_v2_service_iam_member" "unsubscribe_public" {
  count = local.dashboard_enabled ? 1 : 0

  name     = google_cloud_run_v2_service.unsubscribe[0].name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}
