#!/bin/sh
# Starts the MLflow server from environment variables set by Terraform (terraform/mlflow.tf):
#   DB_HOST, DB_NAME, DB_USER, DB_PASSWORD (from Secret Manager), ARTIFACTS_DESTINATION,
#   MLFLOW_SERVER_ALLOWED_HOSTS (Host-header allow-list of MLflow >= 3.5), PORT (Cloud Run).
set -eu
: "${DB_HOST:?}" "${DB_NAME:?}" "${DB_USER:?}" "${DB_PASSWORD:?}" "${ARTIFACTS_DESTINATION:?}"
exec mlflow server \
    --host 0.0.0.0 \
    --port "${PORT:-8080}" \
    --backend-store-uri "postgresql+psycopg2://${DB_USER}:${DB_PASSWORD}@${DB_HOST}:5432/${DB_NAME}?sslmode=require" \
    --artifacts-destination "${ARTIFACTS_DESTINATION}" \
    --serve-artifacts \
    --workers "${MLFLOW_WORKERS:-2}"
