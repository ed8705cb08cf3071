#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x broker in KRaft mode (combined broker + controller), run from
# the Maven Central jars fetched by `make setup` — no Docker. Binds 127.0.0.1 only.
#
#   scripts/kafka.sh start | stop | status | create-topic [TOPIC] [PARTITIONS] | logs
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_DIR (var/kafka —
# data, config, pid and log live here), KAFKA_HEAP (512m). Topic and partitions default to the
# config (kafka.topic / kafka.partitions, SHOP__KAFKA__... overrides apply); create-topic goes through
# lib.kafka_admin.ensure_topic: max.message.bytes 16 MiB (lib/limits.py TOPIC_MAX_MESSAGE_BYTES) and
# message.timestamp.type=LogAppendTime (message timestamps are the broker's receive time, never a
# producer's clock: the sessions query clamps event times to it). An existing topic is altered in place.
# A second `start` is a no-op when the broker already runs; `stop` is a no-op when it does not.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${KAFKA_PORT:-9092}
CPORT=${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
DIR=${KAFKA_DIR:-var/kafka}
[[ "$DIR" = /* ]] || DIR="$ROOT/$DIR"
HEAP=${KAFKA_HEAP:-512m}
JARS="$ROOT/var/jars/kafka"
PIDFILE="$DIR/broker.pid"
PY="$ROOT/.venv/bin/python"

say() { printf '[kafka] %s\n' "$*"; }
die() { printf '[kafka] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

write_config() {
  mkdir -p "$DIR/data" "$DIR/logs"
  cat > "$DIR/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
log.segment.bytes=268435456
CONF
}

java_args() {
  JAVA_ARGS=(-Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
    -Dkafka.logs.dir="$DIR/logs" -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties"
    -cp "$JARS/*")
}

start() {
  [[ -d "$JARS" ]] || die "broker jars missing in $JARS — run 'make setup' first"
  if running; then say "already running (pid $(cat "$PIDFILE"), 127.0.0.1:$PORT)"; return 0; fi
  port_open "$PORT" && die "port $PORT is already in use by another process (set KAFKA_PORT)"
  write_config
  java_args
  if [[ ! -f "$DIR/data/meta.properties" ]]; then
    local cid; cid=$(java "${JAVA_ARGS[@]}" kafka.tools.StorageTool random-uuid | tail -n 1)
    java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format -t "$cid" -c "$DIR/server.properties" >"$DIR/logs/format.log" 2>&1 \
      || die "formatting the log dir failed, see $DIR/logs/format.log"
    say "formatted new KRaft log dir $DIR/data (cluster $cid)"
  fi
  nohup java "${JAVA_ARGS[@]}" kafka.Kafka "$DIR/server.properties" >"$DIR/logs/stdout.log" 2>&1 </dev/null &
  echo $! > "$PIDFILE"
  local waited=0
  until port_open "$PORT" && "$PY" -m jobs.ops.kafka_admin --bootstrap "127.0.0.1:$PORT" ping >/dev/null 2>&1; do
    if ! running; then die "broker exited during start-up, see $DIR/logs/server.log"; fi
    sleep 0.5; waited=$((waited + 1))
    (( waited < 180 )) || die "broker did not accept connections within 90 s, see $DIR/logs/server.log"
  done
  say "started (pid $(cat "$PIDFILE")), accepting connections on 127.0.0.1:$PORT"
}

stop() {
  if ! running; then say "not running"; rm -f "$PIDFILE"; return 0; fi
  local pid; pid=$(cat "$PIDFILE")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then say "did not stop in 30 s, killing"; kill -KILL "$pid"; fi
  rm -f "$PIDFILE"
  say "stopped"
}

status() {
  if running; then say "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT, data in $DIR/data"
  else say "not running"; return 3; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  create-topic)
    running || die "broker not running — 'scripts/kafka.sh start' first"
    args=(--bootstrap "127.0.0.1:$PORT" ensure-topic)
    [[ -n "${2:-}" ]] && args+=(--topic "$2")
    [[ -n "${3:-}" ]] && args+=(--partitions "$3")
    "$PY" -m jobs.ops.kafka_admin "${args[@]}" ;;
  logs) tail -n 50 "$DIR/logs/server.log" ;;
  *) echo "usage: $0 start|stop|restart|status|create-topic [TOPIC] [PARTITIONS]|logs" >&2; exit 2 ;;
esac
