terraform {
  # 1.9+: variable validation blocks may refer to other variables.
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.7"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.7"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # Partial configuration: the bucket and prefix are given at init time, e.g.
  #   terraform -chdir=terraform init -backend-config=bucket=<project>-tfstate -backend-config=prefix=shop/dev
  # (see docs/deploy.md "Bootstrap"; `make infra-init TF_ENV=dev` does it for you).
  backend "gcs" {}
}
