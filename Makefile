# Shop data platform — local embedded default. `make help` lists the targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ROWS ?= 1000000
SEED ?= 42
OUT ?= var/data/generated/events.csv
SPEEDUP ?= 1
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup lock demo test test-unit test-integration lint generate replay streaming streaming-start \
        streaming-stop streaming-logs kafka-start kafka-stop kafka-status status stop clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z0-9_-]+:.*?## / {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install everything (virtualenv, pinned deps, JVM jars, Spark's class archive); idempotent and quick when done
	@scripts/setup.sh

lock: ## Re-resolve requirements/lock/*.txt (every transitive package pinned) after changing a pin in requirements/
	@scripts/lock.sh

demo: ## Run the pipeline end to end locally: Kafka, data, streaming app, replay; prints where to look
	@scripts/demo.sh

test: setup lint ## Run the whole test suite: lint first (a finding fails it), then unit, integration, static checks
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-unit: setup ## Unit tests only (no services)
	@$(PY) -m pytest tests/unit -m "not integration" $(PYTEST_ARGS)

test-integration: setup ## Integration tests only (start a real Kafka broker etc.)
	@$(PY) -m pytest -m integration $(PYTEST_ARGS)

LINT_PATHS := lib ml jobs bench scripts tests tools

lint: setup ## Lint: ruff (rules incl. flake8-bandit S), import-linter's layer contract and mypy, all in pyproject.toml
	@$(VENV)/bin/ruff check $(LINT_PATHS)
	@$(VENV)/bin/lint-imports --no-cache
	@$(VENV)/bin/mypy

generate: setup ## Write a realistic event CSV: make generate ROWS=1000000 OUT=var/data/x.csv [SEED=42]
	@$(PY) -m tools.generate --rows $(ROWS) --seed $(SEED) --out $(OUT)

replay: setup ## Publish a CSV to Kafka: make replay FILE=<csv> [SPEEDUP=1|60|0 (as fast as possible)]
	@test -n "$(FILE)" || { echo "usage: make replay FILE=<events.csv> [SPEEDUP=1]" >&2; exit 2; }
	@$(PY) -m tools.replay $(FILE) --speedup $(SPEEDUP)

streaming: setup ## Run the streaming app in the foreground (Ctrl-C stops it cleanly)
	@$(PY) jobs/streaming/app.py

streaming-start: setup ## Start the streaming app in the background
	@scripts/streaming.sh start

streaming-stop: ## Stop the background streaming app
	@scripts/streaming.sh stop

streaming-logs: ## Tail the streaming app's log
	@scripts/streaming.sh logs

kafka-start: setup ## Start the local Kafka broker (KRaft, 127.0.0.1:9092) and create the topic
	@scripts/kafka.sh start && scripts/kafka.sh create-topic

kafka-stop: ## Stop the local Kafka broker
	@scripts/kafka.sh stop

kafka-status: ## Is the local Kafka broker running?
	@scripts/kafka.sh status

status: ## Row counts of the Delta tables in the lake
	@$(PY) -m jobs.ops.status

stop: ## Stop every local service started by the project (dashboard, streaming app, SMTP, Kafka, MLflow)
	@scripts/dashboard.sh stop; scripts/streaming.sh stop; scripts/smtp.sh stop; scripts/kafka.sh stop; \
	  MLFLOW_PORT=$(MLFLOW_PORT) scripts/mlflow.sh stop

clean: stop ## Stop services and delete local state (var/: lake, checkpoints, broker data, logs, mail, MLflow store)
	rm -rf var/lake var/checkpoints var/kafka var/log var/run var/mail var/mlflow

include mk/*.mk

.PHONY: bench-freshness
bench-freshness: setup ## Benchmark: publish -> visible in the dashboard API under 500 events/s; last line JSON
	@$(PY) -m bench.freshness $(BENCH_ARGS)

.PHONY: bench-kafka
bench-kafka: setup ## Benchmark: raw consume rate of a local broker (confluent-kafka, Spark's Kafka source), 1M events; last line JSON
	@$(PY) -m bench.kafka_consume $(BENCH_ARGS)

.PHONY: bench-duckdb
bench-duckdb: setup ## Benchmark: the backfill's cleaning of the 1M CSV in DuckDB, the single-machine reference; last line JSON
	@$(PY) -m bench.duckdb_clean $(BENCH_ARGS)

.PHONY: bench-backfill
bench-backfill: setup ## Benchmark: where the Spark backfill's time goes (1M CSV, cold and warm run, per Spark job) vs DuckDB; last line JSON
	@$(PY) -m bench.backfill_profile $(BENCH_ARGS)

.PHONY: bench-gold
bench-gold: setup ## Benchmark: where the gold stage's time goes, per table it writes, over a lake's silver (BENCH_ARGS="--lake var/bench/batch_1000000/lake"); last line JSON
	@$(PY) -m bench.gold_profile $(if $(BENCH_ARGS),$(BENCH_ARGS),--lake var/bench/batch_1000000/lake)

.PHONY: bench-state
bench-state: setup ## Benchmark: the session state's Python cost per micro-batch (2,000 events/s, 30-min gap); BENCH_ARGS="--sample-buckets 2"; last line JSON
	@test -f var/bench/eps2000_40min.csv || $(PY) -m tools.generate --rows 4800000 --minutes 40 --seed 42 --out var/bench/eps2000_40min.csv --no-subscribers --quiet
	@$(PY) -m bench.session_state $(BENCH_ARGS)

.PHONY: bench-state-io
bench-state-io: setup ## Benchmark: session state I/O in Spark, one JSON value per bucket vs a MapState entry per session (transformWithStateInPandas); last line JSON
	@$(PY) -m bench.state_io $(BENCH_ARGS)

.PHONY: bench-session-window
bench-session-window: setup ## Benchmark: Spark's native session_window over bench-state's input (2,000 events/s, 30-min gap), the reference for the app's sessions; last line JSON
	@test -f var/bench/eps2000_40min.csv || $(PY) -m tools.generate --rows 4800000 --minutes 40 --seed 42 --out var/bench/eps2000_40min.csv --no-subscribers --quiet
	@$(PY) -m bench.session_window $(BENCH_ARGS)

.PHONY: bench bench-batch bench-report
bench: setup mlflow-start ## All benchmarks (kafka, backfill, state, streaming, batch at 1M and 5M): JSON + PNG in bench/results/; BENCH_PARTS=kafka,state BENCH_ROWS=1000000,5000000,20700000 BENCH_BACKFILL_ROWS=1000000,20700000; last line JSON
	@$(PY) -m bench.run_all $(if $(BENCH_PARTS),--parts $(BENCH_PARTS),) $(if $(BENCH_ROWS),--batch-rows $(BENCH_ROWS),) $(if $(BENCH_BACKFILL_ROWS),--backfill-rows $(BENCH_BACKFILL_ROWS),)

bench-batch: setup mlflow-start ## Benchmark: make batch on a fresh lake per size (BENCH_ROWS=1000000,5000000; 20700000 = five months) into bench/results/; last line JSON
	@$(PY) -m bench.run_all --parts batch $(if $(BENCH_ROWS),--batch-rows $(BENCH_ROWS),)

bench-report: setup ## Redraw bench/results/summary.json (figures, targets, Dataproc sizing) and its plots from the kept results
	@$(PY) -m bench.run_all --report-only

.PHONY: bench-streaming
bench-streaming: setup ## Benchmark: step load on the full app with the 30-min gap (warm-up, 1:1 steps) until freshness p95 passes 10 s or the sessions fall 60 s behind (email p99 judged after); BENCH_ARGS="--steps 1000,2000"; last line JSON
	@$(PY) -m bench.step_load $(BENCH_ARGS)

.PHONY: run-once
run-once: setup ## One-shot: make run-once INPUT=<events.csv> SUBSCRIBERS=<subs.csv> OUT=<fresh dir> [RUN_ONCE_ARGS="--timeout 600"]; emails land in OUT/mail
	@test -n "$(INPUT)" -a -n "$(SUBSCRIBERS)" -a -n "$(OUT)" || { echo "usage: make run-once INPUT=<events.csv> SUBSCRIBERS=<subscribers.csv> OUT=<dir>" >&2; exit 2; }
	@$(PY) -m tools.run_once --input $(INPUT) --subscribers $(SUBSCRIBERS) --out $(OUT) $(RUN_ONCE_ARGS)

.PHONY: bench-abandonment
bench-abandonment: setup ## Benchmark: session expiry -> email accepted by SMTP under 500 events/s; last line JSON
	@$(PY) -m bench.abandonment $(BENCH_ARGS)

.PHONY: chaos
chaos: setup ## Chaos run: app SIGKILLs (some mid-send), broker kill, SMTP down/slow, maintain, under 500 events/s; oracle checks; last line JSON
	@$(PY) -m bench.chaos $(CHAOS_ARGS)
