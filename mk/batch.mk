# Batch lakehouse and ML (jobs/batch/run.py, lib/batch/, ml/): backfill, gold analyst + feature tables,
# demand / sale probability / CLV models in MLflow, scoring, maintenance. docs/batch.md describes it.
# Included by the main Makefile (`include mk/*.mk`).

PY ?= .venv/bin/python
# make batch: INPUT=<csv or folder> (default: generate BATCH_ROWS events over BATCH_DAYS days)
INPUT ?=
BATCH_ROWS ?= $(ROWS)
BATCH_DAYS ?= 152
# default: every stage of conf/batch_chain.yaml, in order
BATCH_STAGES ?=
BATCH_INPUT = $(if $(INPUT),$(INPUT),var/data/generated/batch_$(BATCH_ROWS)_$(BATCH_DAYS)d.csv)
MLFLOW_PORT ?= 5000
# the jobs talk to the server mlflow-start started (MLFLOW_PORT), unless MLFLOW_TRACKING_URI says otherwise
WITH_MLFLOW = MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:$(MLFLOW_PORT)}

.PHONY: batch batch-data sql mlflow-start mlflow-stop mlflow-status mlflow-ui backfill gold train-demand train-clv score maintain

batch: setup mlflow-start batch-data ## Whole batch chain locally; last line JSON (INPUT=<csv|dir>, else ROWS= events over BATCH_DAYS=152 days are generated; BATCH_STAGES=gold,score runs a subset)
	@$(WITH_MLFLOW) $(PY) -m jobs.ops.batch_chain --input $(BATCH_INPUT) $(if $(BATCH_STAGES),--stages $(BATCH_STAGES),)

batch-data: setup
	@if [ -z "$(INPUT)" ] && [ ! -f "$(BATCH_INPUT)" ]; then \
	  $(PY) -m tools.generate --rows $(BATCH_ROWS) --days $(BATCH_DAYS) --seed $(SEED) --out $(BATCH_INPUT) --quiet; fi

backfill: setup ## Backfill CSVs into bronze/silver/quarantine (INPUT=<csv|dir>, default paths.data_dir)
	@$(PY) jobs/batch/run.py backfill $(if $(INPUT),--input $(INPUT),)

gold: setup ## Gold analyst tables + feature tables from silver
	@$(PY) jobs/batch/run.py gold

train-demand: setup mlflow-start ## Train + backtest demand and sale-probability models (MLflow)
	@$(WITH_MLFLOW) $(PY) jobs/batch/run.py train_demand

train-clv: setup mlflow-start ## Train CLV models: MLlib GBT and BG/NBD + Gamma-Gamma (MLflow)
	@$(WITH_MLFLOW) $(PY) jobs/batch/run.py train_clv

score: setup mlflow-start ## Score with the champions into the gold score tables
	@$(WITH_MLFLOW) $(PY) jobs/batch/run.py score

maintain: setup ## Compact and VACUUM every Delta table of the lake
	@$(PY) jobs/batch/run.py maintain

sql: setup ## Spark SQL shell over the lake (tables as <layer>.<name>, e.g. gold.funnel_daily); SQL="..." runs one statement
	@$(PY) -m jobs.ops.sql $(if $(SQL),-e "$(SQL)",)

mlflow-start: setup ## Start the local MLflow tracking server (127.0.0.1:5000, SQLite + artifacts in var/mlflow)
	@MLFLOW_PORT=$(MLFLOW_PORT) scripts/mlflow.sh start

mlflow-stop: ## Stop the local MLflow tracking server
	@MLFLOW_PORT=$(MLFLOW_PORT) scripts/mlflow.sh stop

mlflow-status: ## Is the local MLflow tracking server running?
	@MLFLOW_PORT=$(MLFLOW_PORT) scripts/mlflow.sh status

mlflow-ui: setup ## Start the MLflow server if needed and print the UI address (http://127.0.0.1:5000)
	@MLFLOW_PORT=$(MLFLOW_PORT) scripts/mlflow.sh ui
