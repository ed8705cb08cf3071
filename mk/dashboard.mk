# The business dashboard (jobs/serving/dashboard.py over lib/dashboard: JSON API + self-refreshing page over the gold Delta tables).
# Included by the main Makefile (`include mk/*.mk`). docs/dashboard.md describes it.

PY ?= .venv/bin/python
DASHBOARD_ARGS ?=

.PHONY: dashboard dashboard-start dashboard-stop dashboard-status dashboard-logs browser

dashboard: setup ## Start the dashboard on http://127.0.0.1:8050 (foreground)
	@$(PY) -m jobs.serving.dashboard $(DASHBOARD_ARGS)

dashboard-start: setup ## Start the dashboard in the background (http://127.0.0.1:8050, log var/log/dashboard.log)
	@scripts/dashboard.sh start $(DASHBOARD_ARGS)

dashboard-stop: ## Stop the background dashboard
	@scripts/dashboard.sh stop

dashboard-status: ## Is the background dashboard running?
	@scripts/dashboard.sh status

dashboard-logs: ## Tail the dashboard's log
	@scripts/dashboard.sh logs

browser: ## Install Debian's chromium for the browser tests (idempotent; needs root)
	@scripts/setup_browser.sh
