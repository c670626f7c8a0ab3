# shellcheck shell=bash
# The replicated profile of scripts/stack.sh (STACK_REPLICATED=1; docs/deployment.md): Kafka
# as a KRaft cluster of KAFKA_NODES nodes (default 3), each broker and controller in its own
# JVM, on its own ports, with its own folder, started, stopped and SIGKILLed on its own. It
# is what the replication tests (internal/replicatedtest) lose nodes of under load. The
# tests take PostgreSQL, Redis and the schema registry from the plaintext profile.
#
# stack.sh sources this file after defining its own functions. The single-broker functions
# (kafka_start, kafka_wait, down_kafka) are reused per node: kafka_node N points the
# variables they read (KAFKA_DIR, KAFKA_PORT, ...) at node N.
#
#   STACK_REPLICATED=1 scripts/stack.sh up   [kafka | kafka-N ...]   start (all nodes by default)
#   STACK_REPLICATED=1 scripts/stack.sh down [kafka | kafka-N ...]   stop cleanly (SIGTERM)
#   STACK_REPLICATED=1 scripts/stack.sh kill kafka-N ...             SIGKILL, as a crash would
#   STACK_REPLICATED=1 scripts/stack.sh status | env
#
# Layout of $STACK_DIR (.local/replicated): kafka/{libs,cluster.id,.lock} and
# kafka/node-N/{data,logs,probe,server.properties,kafka.pid,ready}.

KAFKA_NODES="${KAFKA_NODES:-3}"
[[ "$KAFKA_NODES" =~ ^[1-9]$ ]] || die "KAFKA_NODES must be 1 to 9, not '$KAFKA_NODES'"
REPLICATED_KAFKA_PORT="${REPLICATED_KAFKA_PORT:-29092}"
KAFKA_ROOT="$STACK_DIR/kafka"
KAFKA_LIBS="$KAFKA_ROOT/libs" # shared by the nodes
# Three JVMs beside the plaintext and secure brokers on two cores: small heaps, and more
# time to become ready together.
KAFKA_HEAP_OPTS="${REPLICATED_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT=180
SERVICES=(kafka)
ALL_SERVICES=(kafka)

# kafka_node N: the single-broker variables, for node N.
kafka_node() {
  NODE=$1
  KAFKA_DIR="$KAFKA_ROOT/node-$1"
  KAFKA_DATA="$KAFKA_DIR/data"
  KAFKA_LOGS="$KAFKA_DIR/logs"
  KAFKA_PID="$KAFKA_DIR/kafka.pid"
  KAFKA_READY="$KAFKA_DIR/ready"
  KAFKA_PORT=$((REPLICATED_KAFKA_PORT + 100 * ($1 - 1)))
  KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
}

node_port() { echo $((REPLICATED_KAFKA_PORT + 100 * ($1 - 1))); }

# All nodes share one cluster id, made once beside them (the storage of every node is
# formatted with it).
kafka_cluster_id() {
  local f="$KAFKA_ROOT/cluster.id"
  [[ -s "$f" ]] || head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' >"$f"
  cat "$f"
}

kafka_write_config() {
  local tmpl voters="" n
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    voters+="${voters:+,}$n@$HOST:$(($(node_port "$n") + 1))"
  done
  tmpl="$(<"$ROOT/scripts/replicated/kafka-server.properties.tmpl")"
  tmpl="${tmpl//@NODE_ID@/"$NODE"}"
  tmpl="${tmpl//@VOTERS@/"$voters"}"
  tmpl="${tmpl//@KAFKA_PORT@/"$KAFKA_PORT"}"
  tmpl="${tmpl//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}"
  tmpl="${tmpl//@KAFKA_DATA_DIR@/"$KAFKA_DATA"}"
  printf '%s\n' "$tmpl" >"$KAFKA_DIR/server.properties"
}

# select_services: "kafka" is every node; "kafka-N" is node N. SELECTED holds node numbers.
select_services() {
  local s n
  shift
  (($# > 0)) || set -- kafka
  for s in "$@"; do
    case "$s" in
      kafka) for ((n = 1; n <= KAFKA_NODES; n++)); do SELECTED+=("$n"); done ;;
      kafka-[1-9])
        n="${s#kafka-}"
        ((n <= KAFKA_NODES)) || die "there is no $s in a cluster of $KAFKA_NODES nodes"
        SELECTED+=("$n")
        ;;
      *) die "unknown service '$s' in the replicated profile (expected kafka or kafka-1 to kafka-$KAFKA_NODES)" ;;
    esac
  done
}

cmd_up() {
  select_services SERVICES "$@"
  lock
  ensure_packages kafka
  mkdir -p "$KAFKA_ROOT"
  # Every node's JVM boots at once: a node cannot become ready (the internal topics want
  # three replicas) before the others run.
  local n
  declare -A launched=()
  for n in "${SELECTED[@]}"; do
    kafka_node "$n"
    KAFKA_LAUNCHED=""
    kafka_start
    launched[$n]="$KAFKA_LAUNCHED"
  done
  for n in "${SELECTED[@]}"; do
    kafka_node "$n"
    KAFKA_LAUNCHED="${launched[$n]}"
    kafka_wait_node
  done
}

# kafka_wait_node: kafka_wait, naming the node.
kafka_wait_node() { kafka_wait | sed "s/^kafka     /kafka-$NODE   /"; }

cmd_down() {
  select_services ALL_SERVICES "$@"
  lock
  local n
  for n in "${SELECTED[@]}"; do
    kafka_node "$n"
    down_kafka | sed "s/^kafka     /kafka-$n   /"
  done
}

# cmd_kill: SIGKILL, no controlled shutdown: the node's leaderships and its coordinators
# move only when the controller misses its heartbeats, as when a machine dies.
cmd_kill() {
  (($# > 0)) || die "kill wants nodes: kill kafka-N ..."
  select_services ALL_SERVICES "$@"
  local n pid
  for n in "${SELECTED[@]}"; do
    kafka_node "$n"
    pid="$(kafka_pid)"
    if ! kafka_running; then
      say "kafka-$n" "$HOST:$KAFKA_PORT" "not running"
      continue
    fi
    kill -KILL "$pid"
    wait_gone "$pid" 10 || die "kafka-$n (pid $pid) did not die"
    rm -f "$KAFKA_PID" "$KAFKA_READY"
    say "kafka-$n" "$HOST:$KAFKA_PORT" "killed (pid $pid)"
  done
}

cmd_status() {
  local all_up=0 n
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    kafka_node "$n"
    if kafka_running && port_open "$KAFKA_PORT" && kafka_accepted; then
      say "kafka-$n" "$HOST:$KAFKA_PORT" "up (pid $(kafka_pid))"
    else
      say "kafka-$n" "$HOST:$KAFKA_PORT" down
      all_up=1
    fi
  done
  return "$all_up"
}

# cmd_env: where the tests find the cluster.
cmd_env() {
  local n brokers=""
  for ((n = 1; n <= KAFKA_NODES; n++)); do brokers+="${brokers:+,}$HOST:$(node_port "$n")"; done
  printf 'export STOCK_REPLICATED_KAFKA_BROKERS=%q\n' "$brokers"
}
