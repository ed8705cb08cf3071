#!/usr/bin/env bash
# `make demo`: the whole local pipeline end to end, on the embedded default.
#   setup -> Kafka broker -> data (real files in var/data, else generated) -> streaming app ->
#   replay into Kafka -> wait until bronze holds every event -> tell the user where to look.
# Knobs: DEMO_EVENTS (60000), DEMO_RATE events/s (2000), DEMO_SEED (42); ports KAFKA_PORT (9092),
# SMTP_PORT (8025), DASHBOARD_PORT (8050) when the defaults are taken (the app's config follows them
# unless SHOP__KAFKA__BOOTSTRAP_SERVERS / SHOP__RETARGET__SMTP_PORT / ..._UNSUBSCRIBE_URL are set).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
EVENTS=${DEMO_EVENTS:-60000}
RATE=${DEMO_RATE:-2000}
SEED=${DEMO_SEED:-42}
DASHBOARD_PORT=${DASHBOARD_PORT:-8050}
export KAFKA_PORT=${KAFKA_PORT:-9092} SMTP_PORT=${SMTP_PORT:-8025}
export SHOP__KAFKA__BOOTSTRAP_SERVERS=${SHOP__KAFKA__BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}
export SHOP__RETARGET__SMTP_PORT=${SHOP__RETARGET__SMTP_PORT:-$SMTP_PORT}
export SHOP__RETARGET__UNSUBSCRIBE_URL=${SHOP__RETARGET__UNSUBSCRIBE_URL:-http://127.0.0.1:$DASHBOARD_PORT/unsubscribe}
say() { printf '\n== %s\n' "$*"; }

say "1/5 setup (virtualenv, JVM jars; quick when already done)"
scripts/setup.sh
LAKE=$("$PY" -c 'from lib.config import load_config; print(load_config().lake.root)')

say "2/5 local Kafka broker on 127.0.0.1:$KAFKA_PORT"
scripts/kafka.sh start
scripts/kafka.sh create-topic

say "3/5 data"
mapfile -t REAL < <("$PY" -c 'from lib.data.files import find_real_files; from lib.config import load_config; [print(p) for p in find_real_files(load_config().paths.data_dir)]')
if (( ${#REAL[@]} > 0 )); then
  INPUT=("${REAL[@]}"); echo "using the real dataset files: ${REAL[*]}"
else
  INPUT=(var/data/generated/events-${EVENTS}-seed${SEED}.csv)
  if [[ ! -f "${INPUT[0]}" ]]; then
    mkdir -p var/data/generated
    "$PY" -m tools.generate --rows "$EVENTS" --seed "$SEED" --out "${INPUT[0]}"
  fi
  echo "using generated data ${INPUT[0]} (drop the real Kaggle CSVs into var/data/ to use them instead)"
fi

say "4/5 SMTP server, subscribers, streaming app (Kafka -> bronze, silver, quarantine, gold, ops, cart sessions -> emails) and the dashboard"
scripts/smtp.sh start
SUBS=${INPUT[0]%.csv}_subscribers.csv
if [[ -f "$SUBS" ]]; then "$PY" -m jobs.ops.subscribers "$SUBS"
else echo "no subscribers file beside the data ($SUBS): abandoned carts are recorded, nobody is mailed"; fi
# What the emails say about a product comes from the shop's catalogue (gold/product_catalogue), never
# from the events: for generated data the generator's catalogue is the shop's export (~1 s, no Spark).
# Real files: the nightly gold stage builds it from silver (make batch); until then items are generic lines.
if (( ${#REAL[@]} == 0 )); then "$PY" -m jobs.ops.catalogue import-generator
else echo "real data: the product catalogue of the emails is built by make batch (gold stage); until then the emails list generic items"; fi
# The replay below compresses hours of shop time into seconds: give late events of the fast replay
# a generous watermark (the live default is 20 s) so that no cart action is dropped.
WATERMARK_DELAY=${SHOP__SESSIONS__WATERMARK_DELAY_SECONDS:-600}
SHOP__SESSIONS__WATERMARK_DELAY_SECONDS=$WATERMARK_DELAY scripts/streaming.sh start
scripts/dashboard.sh start --port "$DASHBOARD_PORT"

say "5/5 replaying $EVENTS events into Kafka (times shifted to end now, at most $RATE events/s)"
count() { "$PY" -m jobs.ops.status --records "$1"; }  # bronze rows | records the lakehouse accounted for
before=$(count bronze); before_ops=$(count cleaned)
replay_end=$(date +%s)  # --shift-to-now: the replay's last event happens now
"$PY" -m tools.replay "${INPUT[@]}" --speedup 0 --shift-to-now --max-rate "$RATE" --limit "$EVENTS"
want=$((before + EVENTS))
echo "waiting for the streaming app to land all $EVENTS events in bronze and to clean them into silver/gold ..."
for _ in $(seq 1 120); do
  have=$(count bronze); done_ops=$(count cleaned)
  printf '\r  bronze %s/%s, cleaned %s/%s ' "$((have - before))" "$EVENTS" "$((done_ops - before_ops))" "$EVENTS"
  (( have >= want && done_ops >= before_ops + EVENTS )) && break
  sleep 5
done
echo
(( have >= want )) || { echo "bronze has $((have - before)) of $EVENTS new rows after 10 min; see var/log/streaming.log" >&2; exit 1; }
(( done_ops >= before_ops + EVENTS )) || echo "the lakehouse query is still catching up (see var/log/streaming.log); the dashboard fills in as it does"
# The carts that expired during the replay are mailed by the sessions query (its own micro-batches) and
# the dispatcher: wait until the sessions watermark has reached the replay's end and every expired cart
# has its decision, so that var/mail/new holds their emails when the user looks (at most 3 min, the
# emails' latency target).
echo "waiting for the sessions query to reach the replay's end and the dispatcher to decide every expired cart ..."
watermark=0 awaiting=0 sent=0 deadline=$((SECONDS + 180))
caught_up() { (( watermark >= replay_end - WATERMARK_DELAY && awaiting == 0 )); }
while (( SECONDS < deadline )); do
  read -r watermark awaiting sent < <("$PY" -m jobs.ops.status --carts || echo 0 0 0) || true
  printf '\r  sessions query at %s of %s (event time), carts awaiting a decision %s, emails sent %s ' \
    "$(if (( watermark > 0 )); then date -u -d "@$((watermark + WATERMARK_DELAY))" +%T; else echo "-"; fi)" \
    "$(date -u -d "@$replay_end" +%T)" "$awaiting" "$sent"
  caught_up && break
  sleep 2
done
echo
caught_up || echo "the sessions query is still catching up after 3 min (see var/log/streaming.log); the emails follow as it does"

say "done: the lake now holds"
"$PY" -m jobs.ops.status
cat <<TXT

Where to look
  dashboard:        http://127.0.0.1:$DASHBOARD_PORT   (live sales, top products, data quality, cart recovery; JSON API at /api, /openapi.json)
  cart emails:      $sent so far in var/mail/new (Maildir of the local SMTP server on 127.0.0.1:$SMTP_PORT; make mail lists them)
                    sessions expire 30 min (event time) after their last event: the latest carts are mailed 30 min after the replay
  Delta tables:     $LAKE/<layer>/<table>   (make status lists them, make sql SQL="select ..." queries them)
  streaming app:    running in the background, log var/log/streaming.log  (make streaming-logs)
  Kafka broker:     127.0.0.1:$KAFKA_PORT, topic 'events', log var/kafka/logs/server.log
  dashboard log:    var/log/dashboard.log
  replay more:      make replay FILE=<csv> SPEEDUP=60
  stop everything:  make stop
TXT
