# shellcheck shell=bash
# The replicated profile of scripts/stack.sh (STACK_REPLICATED=1; docs/deployment.md): Kafka
# as a KRaft cluster of KAFKA_NODES nodes (default 3), each broker and controller in its own
# JVM, on its own ports, with its own folder; and Redis as a primary (redis-1) and a replica
# (redis-2) watched by a Sentinel that promotes the replica when the primary dies. Each node
# is started, stopped and SIGKILLed on its own. It is what the replication tests
# (internal/e2e/replicated_test.go) lose nodes of under load; they take PostgreSQL and the
# schema registry from the plaintext profile.
#
# stack.sh sources this file after defining its own functions. The single-broker functions
# (kafka_start, kafka_wait, down_kafka) are reused per node: kafka_node N points the
# variables they read (KAFKA_DIR, KAFKA_PORT, ...) at node N.
#
#   STACK_REPLICATED=1 scripts/stack.sh up   [SERVICE ...]   start (everything by default)
#   STACK_REPLICATED=1 scripts/stack.sh down [SERVICE ...]   stop cleanly (SIGTERM, SHUTDOWN)
#   STACK_REPLICATED=1 scripts/stack.sh kill SERVICE ...     SIGKILL, as a crash would
#   STACK_REPLICATED=1 scripts/stack.sh status | env
# SERVICE: kafka (every node), kafka-N, redis (both nodes and the Sentinel), redis-1,
# redis-2, sentinel.
#
# Layout of $STACK_DIR (.local/replicated): kafka/{libs,cluster.id},
# kafka/node-N/{data,logs,probe,server.properties,kafka.pid,ready},
# redis/node-N/{redis.conf,redis.pid,redis.log} and redis/sentinel/{sentinel.conf,...}.

KAFKA_NODES="${KAFKA_NODES:-3}"
[[ "$KAFKA_NODES" =~ ^[1-9]$ ]] || die "KAFKA_NODES must be 1 to 9, not '$KAFKA_NODES'"
REPLICATED_KAFKA_PORT="${REPLICATED_KAFKA_PORT:-29092}"
KAFKA_ROOT="$STACK_DIR/kafka"
KAFKA_LIBS="$KAFKA_ROOT/libs" # shared by the nodes
# Three JVMs beside the plaintext and secure brokers on two cores: small heaps, and more
# time to become ready together.
KAFKA_HEAP_OPTS="${REPLICATED_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT=180
SERVICES=(kafka redis)
ALL_SERVICES=(kafka redis)

# Redis: node 1 starts as the primary, node 2 as its replica; the Sentinel decides after.
REPLICATED_REDIS_PORT="${REPLICATED_REDIS_PORT:-26379}" # node N: + N-1
SENTINEL_PORT="${REPLICATED_SENTINEL_PORT:-26381}"
SENTINEL_MASTER=stock
SENTINEL_DIR="$STACK_DIR/redis/sentinel"
SENTINEL_PIDFILE="$SENTINEL_DIR/sentinel.pid"
REDIS_NODES=2

# kafka_node N: the single-broker variables, for node N.
kafka_node() {
  NODE=$1
  KAFKA_DIR="$KAFKA_ROOT/node-$1"
  KAFKA_DATA="$KAFKA_DIR/data"
  KAFKA_LOGS="$KAFKA_DIR/logs"
  KAFKA_PID="$KAFKA_DIR/kafka.pid"
  KAFKA_READY="$KAFKA_DIR/ready"
  KAFKA_PORT="$(node_port "$1")"
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

# select_services: SELECTED gets the node names the arguments stand for, in start order.
select_services() {
  local s n
  shift
  (($# > 0)) || set -- kafka redis
  for s in "$@"; do
    case "$s" in
      kafka) for ((n = 1; n <= KAFKA_NODES; n++)); do SELECTED+=("kafka-$n"); done ;;
      kafka-[1-9])
        ((${s#kafka-} <= KAFKA_NODES)) || die "there is no $s in a cluster of $KAFKA_NODES nodes"
        SELECTED+=("$s")
        ;;
      redis) SELECTED+=(redis-1 redis-2 sentinel) ;;
      redis-1 | redis-2 | sentinel) SELECTED+=("$s") ;;
      *) die "unknown service '$s' in the replicated profile (expected kafka, kafka-1 to kafka-$KAFKA_NODES, redis, redis-1, redis-2 or sentinel)" ;;
    esac
  done
}

cmd_up() {
  select_services SERVICES "$@"
  lock
  local want=" ${SELECTED[*]} " n s
  [[ "$want" == *" kafka-"* ]] && ensure_packages kafka
  [[ "$want" == *" redis-"* || "$want" == *" sentinel "* ]] && ensure_packages redis
  mkdir -p "$KAFKA_ROOT"
  # Every node's JVM boots at once: a node cannot become ready (the internal topics want
  # three replicas) before the others run. Redis starts while they boot.
  declare -A launched=()
  for s in "${SELECTED[@]}"; do
    [[ "$s" == kafka-* ]] || continue
    n="${s#kafka-}"
    kafka_node "$n"
    KAFKA_LAUNCHED=""
    kafka_start
    launched[$n]="$KAFKA_LAUNCHED"
  done
  for s in "${SELECTED[@]}"; do
    case "$s" in
      redis-*) up_redis_node "${s#redis-}" ;;
      sentinel) up_sentinel ;;
    esac
  done
  for s in "${SELECTED[@]}"; do
    [[ "$s" == kafka-* ]] || continue
    n="${s#kafka-}"
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
  local s i
  declare -A signalled=()
  # The brokers get SIGTERM together: stopped one after the other, the last ones wait for
  # a controller quorum that has already gone, and their controlled shutdown never ends.
  # Together, one of them may still wait for it: when the whole cluster stops it gets 15 s
  # before SIGKILL (its logs are recovered at the next start, as after a crash).
  local nodes=0
  for s in "${SELECTED[@]}"; do [[ "$s" == kafka-* ]] && nodes=$((nodes + 1)); done
  ((nodes < KAFKA_NODES)) || KAFKA_STOP_TIMEOUT=15
  for s in "${SELECTED[@]}"; do
    [[ "$s" == kafka-* ]] || continue
    kafka_node "${s#kafka-}"
    if kafka_running; then
      kill -TERM "$(kafka_pid)"
      signalled[$s]=1
    fi
  done
  for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do
    s="${SELECTED[i]}"
    case "$s" in
      kafka-*)
        kafka_node "${s#kafka-}"
        if [[ -n "${signalled[$s]:-}" ]] && ! kafka_running; then # already gone
          rm -f "$KAFKA_PID" "$KAFKA_READY"
          say "$s" "$HOST:$KAFKA_PORT" stopped
        else
          down_kafka | sed "s/^kafka     /$s   /"
        fi
        ;;
      redis-*)
        redis_node "${s#redis-}"
        down_redis | sed "s/^redis     /$s   /"
        ;;
      sentinel) down_sentinel ;;
    esac
  done
}

# cmd_kill: SIGKILL, no controlled shutdown: the node's leaderships and its coordinators
# move only when the controller misses its heartbeats, as when a machine dies.
cmd_kill() {
  (($# > 0)) || die "kill wants services: kill kafka-N | redis-N | sentinel ..."
  select_services ALL_SERVICES "$@"
  local s pid pattern
  for s in "${SELECTED[@]}"; do
    case "$s" in
      kafka-*) kafka_node "${s#kafka-}" && pid="$(kafka_pid)" && pattern=kafka.Kafka ;;
      redis-*) redis_node "${s#redis-}" && pid="$(redis_pid)" && pattern=redis-server ;;
      sentinel) pid="$(read_pid "$SENTINEL_PIDFILE")" && pattern=redis-server ;;
    esac
    if ! alive "$pid" "$pattern"; then
      say "$s" "" "not running"
      continue
    fi
    kill -KILL "$pid"
    wait_gone "$pid" 10 || die "$s (pid $pid) did not die"
    [[ "$s" == kafka-* ]] && rm -f "$KAFKA_PID" "$KAFKA_READY"
    say "$s" "" "killed (pid $pid)"
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
  for ((n = 1; n <= REDIS_NODES; n++)); do
    redis_node "$n"
    if redis_running && redis_ready; then
      say "redis-$n" "$HOST:$REDIS_PORT" "up (pid $(redis_pid)), $(redis_cli role 2>/dev/null | head -n 1)"
    else
      say "redis-$n" "$HOST:$REDIS_PORT" down
      all_up=1
    fi
  done
  if sentinel_running; then
    say sentinel "$HOST:$SENTINEL_PORT" "up (pid $(read_pid "$SENTINEL_PIDFILE")), primary $(sentinel_master)"
  else
    say sentinel "$HOST:$SENTINEL_PORT" down
    all_up=1
  fi
  return "$all_up"
}

# cmd_env: where the tests find the cluster.
cmd_env() {
  local n brokers=""
  for ((n = 1; n <= KAFKA_NODES; n++)); do brokers+="${brokers:+,}$HOST:$(node_port "$n")"; done
  printf 'export STOCK_REPLICATED_KAFKA_BROKERS=%q\n' "$brokers"
  local nodes=""
  for ((n = 1; n <= REDIS_NODES; n++)); do nodes+="${nodes:+,}$HOST:$((REPLICATED_REDIS_PORT + n - 1))"; done
  printf 'export STOCK_REPLICATED_REDIS_NODES=%q\n' "$nodes"
  printf 'export STOCK_REPLICATED_REDIS_SENTINELS=%q\n' "$HOST:$SENTINEL_PORT"
  printf 'export STOCK_REPLICATED_REDIS_MASTER=%q\n' "$SENTINEL_MASTER"
}

# --- Redis: a primary, a replica and a Sentinel ----------------------------------------------

# redis_node N: the single-node Redis variables (stack.sh), for node N.
redis_node() {
  REDIS_DIR="$STACK_DIR/redis/node-$1"
  REDIS_PIDFILE="$REDIS_DIR/redis.pid"
  REDIS_PORT=$((REPLICATED_REDIS_PORT + $1 - 1))
}

sentinel_cli() { redis-cli -h "$HOST" -p "$SENTINEL_PORT" "$@"; }
sentinel_running() { alive "$(read_pid "$SENTINEL_PIDFILE")" redis-server; }
# sentinel_master: host:port of the primary as the Sentinel knows it (empty if it does not).
sentinel_master() { sentinel_cli sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null | paste -sd: -; }

# redis_write_config: as the plaintext profile's (no persistence: the cache is rebuilt from
# Kafka), plus the replication. A node starts as the replica of the primary the Sentinel
# knows, if it knows one that is not this node; else node 1 is the primary. A restarted
# node is empty: it must never be the primary the others copy (they would copy nothing),
# which the Sentinel ensures once it has promoted another node.
redis_write_config() {
  local primary
  primary="$( (sentinel_running && sentinel_master) || true)"
  [[ -n "$primary" ]] || primary="$HOST:$REPLICATED_REDIS_PORT"
  mkdir -p "$REDIS_DIR"
  cat >"$REDIS_DIR/redis.conf" <<CONF
# Written by scripts/replicated/stack-replicated.sh on every start; edits are lost.
bind $HOST
port $REDIS_PORT
protected-mode no
daemonize yes
dir "$REDIS_DIR"
pidfile "$REDIS_PIDFILE"
logfile "$REDIS_DIR/redis.log"
save ""
appendonly no
# A replica serves reads only and keeps serving what it has while its primary is away.
replica-read-only yes
replica-serve-stale-data yes
CONF
  if [[ "$primary" != "$HOST:$REDIS_PORT" ]]; then
    echo "replicaof ${primary%:*} ${primary#*:}" >>"$REDIS_DIR/redis.conf"
  fi
}

up_redis_node() {
  redis_node "$1"
  up_redis | sed "s/^redis     /redis-$1   /"
}

# up_sentinel: one Sentinel with a quorum of one, enough to promote the replica on this
# machine (production runs three or more, on separate hosts). Its file is written when it
# starts without a primary known to it, and kept otherwise: the Sentinel rewrites it with
# what it learns (the current primary after a failover).
up_sentinel() {
  local addr="$HOST:$SENTINEL_PORT" i
  mkdir -p "$SENTINEL_DIR"
  if sentinel_running; then
    say sentinel "$addr" "already running"
    return
  fi
  port_open "$SENTINEL_PORT" && die "port $SENTINEL_PORT is taken by another process; stop it or set REPLICATED_SENTINEL_PORT
$(port_owner "$SENTINEL_PORT")"
  cat >"$SENTINEL_DIR/sentinel.conf" <<CONF
# Written by scripts/replicated/stack-replicated.sh; the Sentinel rewrites it as it learns.
bind $HOST
port $SENTINEL_PORT
daemonize yes
dir "$SENTINEL_DIR"
pidfile "$SENTINEL_PIDFILE"
logfile "$SENTINEL_DIR/sentinel.log"
sentinel monitor $SENTINEL_MASTER $HOST $(current_primary_port) 1
# A primary silent this long is down; the replica is promoted right after.
sentinel down-after-milliseconds $SENTINEL_MASTER 2000
sentinel failover-timeout $SENTINEL_MASTER 10000
sentinel parallel-syncs $SENTINEL_MASTER 1
CONF
  redis-server "$SENTINEL_DIR/sentinel.conf" --sentinel 9>&- || die_with_log "the sentinel failed to start on $addr" "$SENTINEL_DIR/sentinel.log"
  for ((i = 0; i < 100; i++)); do
    [[ -n "$(sentinel_master)" ]] && break
    sleep 0.1
  done
  [[ -n "$(sentinel_master)" ]] || die_with_log "the sentinel does not answer on $addr" "$SENTINEL_DIR/sentinel.log"
  say sentinel "$addr" "started, primary $(sentinel_master)"
}

# current_primary_port: the port of the node that says it is a primary (node 1 if none does).
current_primary_port() {
  local n
  for ((n = 1; n <= REDIS_NODES; n++)); do
    redis_node "$n"
    if redis_running && [[ "$(redis_cli role 2>/dev/null | head -n 1)" == master ]]; then
      echo "$REDIS_PORT"
      return
    fi
  done
  echo "$REPLICATED_REDIS_PORT"
}

down_sentinel() {
  local pid
  pid="$(read_pid "$SENTINEL_PIDFILE")"
  if ! sentinel_running; then
    say sentinel "$HOST:$SENTINEL_PORT" "not running"
    return
  fi
  kill -TERM "$pid"
  wait_gone "$pid" 20 || die "the sentinel (pid $pid) did not stop"
  say sentinel "$HOST:$SENTINEL_PORT" stopped
}
