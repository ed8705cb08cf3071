#!/bin/sh
# Container entry point of the dashboard image (terraform/dashboard/Dockerfile), the Cloud Run contract:
# listen on 0.0.0.0:$PORT. Environment:
#   DASHBOARD_ROLE   dashboard (page + API, read-only; behind IAP) | unsubscribe (public: /unsubscribe and
#                    the offer-code check /api/offers/{code} only)
#   SHOP_ENV         config environment (gcp); SHOP__LAKE__ROOT=gs://<lake-bucket>/lake from Terraform
#   UNSUBSCRIBE_SIGNING_KEY_SECRET  Secret Manager version of the link-signing key (unsubscribe role)
#   PYTHON           the interpreter (default python; the tests run this script with the project's own)
set -eu
exec "${PYTHON:-python}" -m jobs.serving.dashboard --env "${SHOP_ENV:-gcp}" --role "${DASHBOARD_ROLE:-dashboard}" \
  --host 0.0.0.0 --port "${PORT:-8080}" --log-level "${LOG_LEVEL:-warning}" "$@"
