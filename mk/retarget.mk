# Abandoned-cart emails (lib/sessions.py, lib/retarget/): SMTP server, subscribers, dispatcher, uplift.
# Included by the main Makefile (`include mk/*.mk`). docs/retarget.md describes the flow.

PY ?= .venv/bin/python

.PHONY: smtp-start smtp-stop smtp-status mail subscribers dispatcher uplift erase-user catalogue rotate-signing-key

smtp-start: setup ## Start the local SMTP server (127.0.0.1:8025; mail stored in var/mail/new)
	@scripts/smtp.sh start

smtp-stop: ## Stop the local SMTP server
	@scripts/smtp.sh stop

smtp-status: ## Is the local SMTP server running?
	@scripts/smtp.sh status

mail: ## List the emails the local SMTP server received (newest last)
	@$(PY) -m jobs.ops.mailbox var/mail

subscribers: setup ## Load newsletter subscribers: make subscribers FILE=<subscribers.csv>
	@test -n "$(FILE)" || { echo "usage: make subscribers FILE=<subscribers.csv>" >&2; exit 2; }
	@$(PY) -m jobs.ops.subscribers $(FILE)

dispatcher: setup ## Run the email dispatcher on its own (the streaming app runs one already)
	@$(PY) -m jobs.streaming.dispatcher

uplift: setup ## Recompute gold/retarget_uplift (mailed vs control, purchase within 7 days)
	@$(PY) jobs/batch/run.py retarget_uplift

erase-user: setup ## Erase one user from retarget/* (rows, then history; writers stopped): make erase-user USER_ID=<id> [EMAIL=<address>]
	@test -n "$$USER_ID" || { echo "usage: make erase-user USER_ID=<id> [EMAIL=<address>] (stop the streaming app and dashboard first)" >&2; exit 2; }
	@$(PY) jobs/ops/erase_user.py --user-id "$$USER_ID" $${EMAIL:+--email "$$EMAIL"}  # from the environment: no quoting trouble

catalogue: setup ## The emails' product catalogue (gold/product_catalogue): make catalogue [FROM=silver|generator|show]
	@case "$${FROM:-show}" in silver) a=build;; generator) a=import-generator;; show) a=show;; \
	  *) echo "make catalogue: FROM must be silver, generator or show (got '$$FROM')" >&2; exit 2;; esac; \
	  $(PY) -m jobs.ops.catalogue $$a

rotate-signing-key: setup ## New unsubscribe-link signing key (old links stay valid): make rotate-signing-key [SECRET=projects/P/secrets/S]
	@$(PY) -m jobs.ops.signing_keys rotate $${SECRET:+--secret "$$SECRET"}
