# Secrets are created here; their VALUES are never in code or Terraform state. Add them with
#   printf '%s' "$SENDGRID_API_KEY" | gcloud secrets versions add <prefix>-sendgrid-api-key --data-file=-
# (docs/deploy.md "Secrets"). Jobs get only the secret *resource name* (env *_SECRET) and read the
# value at run time with their own service account.
# The unsubscribe-signing-key secret holds a JSON list of keys (oldest first, the last signs, all verify),
# so one version is the whole list and a rotation is one new version that keeps the old keys:
#   python -m jobs.ops.signing_keys rotate --secret projects/<project>/secrets/<prefix>-unsubscribe-signing-key
# (docs/deploy.md "Rotating the link-signing key"). A plain single key (first deployments) still works.
locals {
  app_secrets = {
    "sendgrid-api-key"        = "SendGrid API key used by the cart-recovery e-mail dispatcher"
    "unsubscribe-signing-key" = "HMAC key that signs unsubscribe-link tokens in recovery e-mails"
  }
}

resource "google_secret_manager_secret" "app" {
  for_each = local.app_secrets

  secret_id = "${local.prefix}-${each.key}"
  annotations = {
    purpose = each.value
  }

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# The streaming job (which runs the dispatcher) is the only reader.
resource "google_secret_manager_secret_iam_member" "streaming_reader" {
  for_each = google_secret_manager_secret.app

  secret_id = each.value.id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.sa_member["streaming"]
}
