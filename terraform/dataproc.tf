# Dataproc on Compute Engine cluster for the long-running streaming job (scripts/submit.sh
# `streaming` submits jobs/streaming/app.py to it as a restartable job). Image 3.0:
# Spark 4.0, Scala 2.13, Java 17, Python 3.11. Batch jobs do not use it: they run on
# Serverless for Apache Spark (runtime 3.0), submitted by scripts/submit.sh or the nightly workflow.
resource "google_dataproc_cluster" "streaming" {
  #checkov:skip=CKV_GCP_91:Disks are encrypted at rest with Google-managed keys; a customer-managed KMS key (ring, rotation, IAM for the Dataproc and Compute agents) is not warranted for transient worker disks that hold no data of record.
  name   = "${local.prefix}-streaming"
  region = var.region
  # Only labels and worker counts are updatable; everything else recreates the cluster (and so
  # stops the streaming job: re-run `scripts/submit.sh streaming` after such an apply).
  graceful_decommission_timeout = "300s"

  cluster_config {
    staging_bucket = google_storage_bucket.dataproc.name
    temp_bucket    = google_storage_bucket.dataproc.name

    master_config {
      num_instances = 1
      machine_type  = var.dataproc_master_machine_type
      disk_config {
        boot_disk_type    = "pd-balanced"
        boot_disk_size_gb = 100
      }
    }

    worker_config {
      num_instances = var.dataproc_worker_count
      machine_type  = var.dataproc_worker_machine_type
      disk_config {
        boot_disk_type    = "pd-balanced"
        boot_disk_size_gb = 100
      }
    }

    software_config {
      image_version = var.dataproc_image_version
      override_properties = merge(
        {
          # Python dependencies of lib/ (pydantic, PyYAML, ...) installed from PyPI at cluster
          # creation (through Cloud NAT); Serverless batches get them from the pydeps archive.
          "dataproc:pip.packages" = join(",", local.dataproc_pip_packages)
          # Driver (cluster deploy mode => YARN container) and executor logs to Cloud Logging;
          # the streaming alerts below are built on these logs.
          "dataproc:dataproc.logging.stackdriver.enable"                    = "true"
          "dataproc:dataproc.logging.stackdriver.job.driver.enable"         = "true"
          "dataproc:dataproc.logging.stackdriver.job.yarn.container.enable" = "true"
          # Structured streaming does not work well with dynamic allocation.
          "spark:spark.dynamicAllocation.enabled" = "false"
        },
        var.dataproc_worker_count == 0 ? { "dataproc:dataproc.allow.zero.workers" = "true" } : {},
      )
    }

    gce_cluster_config {
      subnetwork       = google_compute_subnetwork.main.id
      internal_ip_only = true
      service_account  = google_service_account.sa["streaming"].email
      # Access is governed by the service account's IAM roles, not by scopes.
      service_account_scopes = ["cloud-platform"]
      tags                   = ["${local.prefix}-dataproc"]

      shielded_instance_config {
        enable_secure_boot          = true
        enable_vtpm                 = true
        enable_integrity_monitoring = true
      }
    }

    # Component Gateway: Spark/YARN UIs through the console, authenticated with IAM.
    endpoint_config {
      enable_http_port_access = true
    }
  }

  depends_on = [
    google_project_iam_member.workload,
    google_storage_bucket_iam_member.workload,
    google_compute_router_nat.main,
    google_compute_firewall.internal,
  ]
}
