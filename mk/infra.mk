# Google Cloud infrastructure (terraform/) and deployment (scripts/submit.sh). Included by the main
# Makefile (`include mk/*.mk`). Environment: TF_ENV=dev|prod, one GCP project each, settings in
# terraform/envs/$(TF_ENV).tfvars (copy the .example). docs/deploy.md walks through it end to end.

PY ?= .venv/bin/python
TF_ENV ?= dev
TF_DIR := terraform
TF := terraform -chdir=$(TF_DIR)
TF_VARS := -var-file=envs/$(TF_ENV).tfvars
# State bucket created once by hand (docs/deploy.md "Bootstrap"): <project_id>-tfstate by default.
TF_PROJECT = $(shell sed -n 's/^[[:space:]]*project_id[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' $(TF_DIR)/envs/$(TF_ENV).tfvars 2>/dev/null)
TF_STATE_BUCKET ?= $(TF_PROJECT)-tfstate
TF_STATE_PREFIX ?= shop/$(TF_ENV)
TF_EXTRA_ARGS ?=
JOB ?=
SUBMIT := scripts/submit.sh --from-terraform --deploy-env $(TF_ENV)

.PHONY: infra-check-env infra-init infra-plan infra-apply infra-destroy package submit-streaming submit-batch check-infra tools

infra-check-env:
	@case "$(TF_ENV)" in dev|prod) ;; *) echo "TF_ENV must be dev or prod (got '$(TF_ENV)')" >&2; exit 2 ;; esac
	@test -f $(TF_DIR)/envs/$(TF_ENV).tfvars || { echo "missing $(TF_DIR)/envs/$(TF_ENV).tfvars: copy envs/$(TF_ENV).tfvars.example and fill it in" >&2; exit 2; }

infra-init: infra-check-env ## Initialise Terraform with the GCS state backend (TF_ENV=dev|prod; TF_STATE_BUCKET=<project>-tfstate)
	$(TF) init -reconfigure -input=false -backend-config="bucket=$(TF_STATE_BUCKET)" -backend-config="prefix=$(TF_STATE_PREFIX)"

infra-plan: infra-check-env ## Plan the GCP infrastructure (needs TF_ENV=dev|prod); writes terraform/$(TF_ENV).tfplan
	$(TF) plan -input=false $(TF_VARS) $(TF_EXTRA_ARGS) -out=$(TF_ENV).tfplan

infra-apply: infra-check-env ## Apply the plan saved by infra-plan (TF_ENV=dev|prod)
	@test -f $(TF_DIR)/$(TF_ENV).tfplan || { echo "no terraform/$(TF_ENV).tfplan: run make infra-plan TF_ENV=$(TF_ENV) first" >&2; exit 2; }
	$(TF) apply -input=false $(TF_ENV).tfplan
	rm -f $(TF_DIR)/$(TF_ENV).tfplan

infra-destroy: infra-check-env ## Destroy the environment (asks to confirm); the state bucket and enabled APIs are kept
	$(TF) destroy -input=true $(TF_VARS) $(TF_EXTRA_ARGS)

package: ## Build dist/shop_platform-<version>.zip (lib, ml, conf) and the Serverless Python deps archive
	scripts/submit.sh package

submit-streaming: ## Upload a release, publish it for the nightly chain and (re)submit the streaming job (TF_ENV=dev|prod)
	$(SUBMIT) --promote streaming

submit-batch: ## Upload a release and run stage JOB (jobs/batch/run.py $$JOB) on Serverless Spark (JOB=<stage>, TF_ENV=dev|prod)
	@test -n "$(JOB)" || { echo "usage: make submit-batch JOB=<stage>   (runs jobs/batch/run.py <stage>; stages in conf/batch_chain.yaml)" >&2; exit 2; }
	$(SUBMIT) batch $(JOB)

check-infra: tools ## Static checks of terraform/ (HCL, references, fmt, checkov), workflows and scripts/submit.sh
	$(PY) -m pytest -q tests/static

tools: ## Create or refresh .venv-tools (checkov, pinned in requirements/tools.txt)
	scripts/setup_tools.sh

# Operations on the running environment (jobs/ops/cloud_status.py, google-cloud-dataproc; docs/deploy.md "Is it
# running?"). Settings come from Terraform's outputs of $(TF_ENV); CLOUD_ARGS adds flags (e.g. --json,
# --max-batch-age 30m), CHAIN_JOBS picks jobs of the chain (comma-separated, in order).
CLOUD_STATUS := $(PY) jobs/ops/cloud_status.py
CLOUD_ARGS ?=
CHAIN_JOBS ?=

.PHONY: cloud-status cloud-chain

cloud-status: ## Streaming job + last micro-batch, last nightly batches per job; exits 1 when unhealthy (TF_ENV=dev|prod; CLOUD_ARGS=--json)
	@$(CLOUD_STATUS) status --from-terraform --deploy-env $(TF_ENV) $(CLOUD_ARGS)

cloud-chain: ## Run the nightly batch chain now from here, batch by batch with progress (TF_ENV=dev|prod; CHAIN_JOBS=gold,score)
	@$(CLOUD_STATUS) run-chain --from-terraform --deploy-env $(TF_ENV) $(if $(CHAIN_JOBS),--jobs $(CHAIN_JOBS),) $(CLOUD_ARGS)
