# All buckets: regional, uniform bucket-level access, public access prevention enforced,
# object versioning with a clean-up rule for noncurrent versions, usage logs to the access-log bucket.

resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the usage-log sink itself; logging it into itself would loop.
  name                        = local.bucket_names.access_logs
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# Cloud Storage writes usage logs as this Google group (documented for uniform bucket-level access).
resource "google_storage_bucket_iam_member" "access_logs_writer" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}

# The lake: bronze (raw archive), silver, quarantine, gold, ops — all Delta tables under lake/.
resource "google_storage_bucket" "lake" {
  name                        = local.bucket_names.lake
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  # Delta has its own table versions; object versioning additionally protects the raw archive
  # against an accidental delete/overwrite. Noncurrent versions are dropped after 14 days.
  versioning {
    enabled = true
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  # "Archive raw history": bronze data files get colder as they age. Every class stays online
  # (same API, millisecond reads), so the bronze Delta table remains readable for backfills;
  # reads of old files only cost retrieval fees. Only data files (*.parquet) move; the Delta
  # log (*.json, *.crc) stays STANDARD because every read of the table touches it.
  lifecycle_rule {
    condition {
      age                   = var.bronze_nearline_after_days
      matches_prefix        = ["lake/bronze/"]
      matches_suffix        = [".parquet"]
      matches_storage_class = ["STANDARD"]
      with_state            = "LIVE"
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }
  lifecycle_rule {
    condition {
      age                   = var.bronze_coldline_after_days
      matches_prefix        = ["lake/bronze/"]
      matches_suffix        = [".parquet"]
      matches_storage_class = ["NEARLINE"]
      with_state            = "LIVE"
    }
    action {
      type          = "SetStorageClass"
      storage_class = "COLDLINE"
    }
  }
  lifecycle_rule {
    condition {
      age                   = var.bronze_archive_after_days
      matches_prefix        = ["lake/bronze/"]
      matches_suffix        = [".parquet"]
      matches_storage_class = ["COLDLINE"]
      with_state            = "LIVE"
    }
    action {
      type          = "SetStorageClass"
      storage_class = "ARCHIVE"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 14
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# Streaming checkpoints and state-store snapshots: many small files rewritten constantly.
resource "google_storage_bucket" "checkpoints" {
  name                        = local.bucket_names.checkpoints
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  # Checkpoint files are superseded every micro-batch; keep overwritten/deleted versions 3 days only.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 3
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# Release artifacts uploaded by scripts/submit.sh: code zip, job entry points, jars, Python deps.
resource "google_storage_bucket" "artifacts" {
  name                        = local.bucket_names.artifacts
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# MLflow artifact store (models, metrics plots); served through the tracking server.
resource "google_storage_bucket" "mlflow" {
  name                        = local.bucket_names.mlflow
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# Dataproc staging + temp bucket (job driver output, Spark event logs): our own instead of the
# auto-created shared one, so it is private, labelled and cleaned up.
resource "google_storage_bucket" "dataproc" {
  name                        = local.bucket_names.dataproc
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # only ephemeral job files live here

  versioning {
    enabled = true
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}
