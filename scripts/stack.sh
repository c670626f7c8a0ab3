#!/usr/bin/env bash
# Local service stack without Docker: PostgreSQL, Redis and a single-node Kafka, all bound
# to 127.0.0.1, with every data file, log and PID file under one git-ignored folder; and,
# on request, Prometheus scraping the programs of `make run`.
#
#   scripts/stack.sh up     [postgres|redis|kafka|prometheus ...]  install what is missing, start, wait until ready
#   scripts/stack.sh down   [postgres|redis|kafka|prometheus ...]  stop cleanly, by PID file
#   scripts/stack.sh status            one line per service; exit 1 if postgres, redis or kafka is down
#   STACK_SECURE=1 scripts/stack.sh up|down|status|env   the secure profile (below); env prints
#                                      the variables the tests read it through, as export lines
#   STACK_REPLICATED=1 scripts/stack.sh up|down|status|env|kill [kafka-N ...]   a Kafka cluster
#                                      of 3 nodes, each started, stopped or SIGKILLed on its own
#
# `up` without names starts postgres, redis and kafka, what the tests need. Prometheus starts
# only when named (`make run` does): it is for watching the programs, which only `make run`
# runs on the ports it scrapes. `down` without names stops everything, Prometheus too.
#
# The secure profile (STACK_SECURE=1; docs/security.md) is a second, separate set of the
# same three services beside the plaintext one, with its own ports and folder: PostgreSQL
# with TLS, scram-sha-256 and least-privilege roles, Redis with TLS and ACL users, Kafka on
# SASL_SSL with SCRAM users and ACLs, certificates from a local CA made with openssl, every
# password generated into a file. scripts/secure/stack-secure.sh holds what differs.
#
# Environment:
#   STACK_DIR               folder for data, logs and PID files (default: <repo>/.local)
#   PG_PORT                 PostgreSQL port        (default 5432)
#   REDIS_PORT              Redis port             (default 6379)
#   KAFKA_PORT              Kafka broker port      (default 9092)
#   KAFKA_CONTROLLER_PORT   Kafka controller port  (default 9093)
#   PROMETHEUS_PORT         Prometheus port        (default 9090)
#   REDIS_EXPORTER_PORT     Redis exporter port    (default 9121), scraped by Prometheus
#   POSTGRES_EXPORTER_PORT  PostgreSQL exporter port (default 9187), scraped by Prometheus
#   PROMETHEUS_PRODUCER     producer metrics address    (default 127.0.0.1:9101)
#   PROMETHEUS_PROJECTORS   projector metrics addresses, space-separated (default 127.0.0.1:9102)
#   PROMETHEUS_API          query API address            (default: $STOCK_API_ADDR or 127.0.0.1:8080)
#   PROMETHEUS_SWEEPER      reservation sweeper metrics address (default 127.0.0.1:9103)
#   KAFKA_HEAP_OPTS         the broker's heap (default -Xms512m -Xmx1g)
# With STACK_SECURE=1 the ports and folder come from these instead, so that both profiles
# can run at once whatever the plaintext variables say:
#   SECURE_STACK_DIR        (default $STACK_DIR/secure, that is <repo>/.local/secure)
#   SECURE_PG_PORT (15432), SECURE_REDIS_PORT (16379), SECURE_KAFKA_PORT (19092),
#   SECURE_KAFKA_CONTROLLER_PORT (19093), SECURE_KAFKA_MTLS_PORT (19094, clients by certificate)
# STACK_REPLICATED=1 is a third profile: Kafka only, as a KRaft cluster of KAFKA_NODES
# (default 3) nodes for the replication tests (scripts/replicated/stack-replicated.sh):
#   REPLICATED_STACK_DIR    (default $STACK_DIR/replicated)
#   REPLICATED_KAFKA_PORT   node 1's broker port (default 29092); node N listens on that
#                           plus 100*(N-1), its controller on the port after its broker's
#
# Layout of $STACK_DIR:
#   postgres/{data,run,postgres.log}   cluster (postmaster.pid is in data/), socket dir, log
#   redis/{redis.conf,redis.pid,redis.log}
#   kafka/{libs,data,logs,probe,server.properties,kafka.pid,ready}
#   prometheus/{prometheus.yml,data,prometheus.log,prometheus.pid,redis-exporter.pid,redis-exporter.log,
#               postgres-exporter.pid,postgres-exporter.log}
# and of the secure profile's folder: the same postgres/, redis/ and kafka/, plus
#   tls/{ca.crt,ca.key,server.crt,server.key,server.pem}   scripts/secure/certs.sh
#   secrets/{<service>-<user>.password,kafka-admin.properties}   mode 600
#
# PostgreSQL refuses to run as root. When this script runs as root, the cluster belongs to
# the unprivileged "postgres" system user (created by the Debian package): postgres/ is
# chowned to it, initdb and pg_ctl run through `runuser -u postgres`, and every folder on
# the way to $STACK_DIR gets the o+x bit (traverse only, not list) if that user could not
# reach it otherwise (for example a clone under /root). Run as any other user, everything
# simply belongs to that user.
#
# PostgreSQL, Redis and Prometheus (with its Redis and PostgreSQL exporters) come from Debian packages, Kafka from jars resolved off Maven
# Central by scripts/kafka/pom.xml. Debian's own PostgreSQL cluster and Redis service are
# never used; if one of them holds our port it is stopped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.local}"
[[ "$STACK_DIR" = /* ]] || STACK_DIR="$PWD/$STACK_DIR"

PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
REDIS_EXPORTER_PORT="${REDIS_EXPORTER_PORT:-9121}"
POSTGRES_EXPORTER_PORT="${POSTGRES_EXPORTER_PORT:-9187}"
PROMETHEUS_PRODUCER="${PROMETHEUS_PRODUCER:-127.0.0.1:9101}"
PROMETHEUS_PROJECTORS="${PROMETHEUS_PROJECTORS:-127.0.0.1:9102}"
PROMETHEUS_API="${PROMETHEUS_API:-${STOCK_API_ADDR:-127.0.0.1:8080}}"
PROMETHEUS_SWEEPER="${PROMETHEUS_SWEEPER:-127.0.0.1:9103}"
HOST=127.0.0.1

SECURE=""
if [[ -n "${STACK_SECURE:-}" && "${STACK_SECURE}" != 0 ]]; then
  SECURE=1
  STACK_DIR="${SECURE_STACK_DIR:-$STACK_DIR/secure}"
  [[ "$STACK_DIR" = /* ]] || STACK_DIR="$PWD/$STACK_DIR"
  PG_PORT="${SECURE_PG_PORT:-15432}"
  REDIS_PORT="${SECURE_REDIS_PORT:-16379}"
  KAFKA_PORT="${SECURE_KAFKA_PORT:-19092}"
  KAFKA_CONTROLLER_PORT="${SECURE_KAFKA_CONTROLLER_PORT:-19093}"
fi

REPLICATED=""
if [[ -n "${STACK_REPLICATED:-}" && "${STACK_REPLICATED}" != 0 ]]; then
  [[ -z "$SECURE" ]] || { echo "stack: STACK_SECURE and STACK_REPLICATED are separate profiles; set one" >&2; exit 1; }
  REPLICATED=1
  STACK_DIR="${REPLICATED_STACK_DIR:-$STACK_DIR/replicated}"
  [[ "$STACK_DIR" = /* ]] || STACK_DIR="$PWD/$STACK_DIR"
fi

# The application role and database: postgres://stock:stock@127.0.0.1:$PG_PORT/stock
PG_APP_USER=stock
PG_APP_PASSWORD=stock
PG_APP_DB=stock
PG_OS_USER=postgres # only used when running as root
# The cluster's superuser has the name of the OS user owning it, so that local "peer"
# authentication over the unix socket lets this script in without a password.
if [[ $EUID -eq 0 ]]; then PG_SUPERUSER="$PG_OS_USER"; else PG_SUPERUSER="$(id -un)"; fi

# Collector of the broker's JVM. G1 (kafka-server-start's choice) paused the broker for
# 26 ms per young collection on average here (486 collections, 12.8 s, measured with
# jstat during benchmarks; 16 ms with MaxGCPauseMillis=5): on two shared cores its
# parallel phases wait for CPU, and every pause is a stall of every produce and fetch,
# the commit-to-Kafka tail. ZGC does that work concurrently (57 cycles paused 1 ms in
# total over a comparable run).
KAFKA_GC_OPTS="${KAFKA_GC_OPTS:--XX:+UseZGC}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
KAFKA_FORMAT_ARGS=() # more arguments for the storage format (the secure profile's SCRAM users)
KAFKA_PROBE_PROPS="" # client properties file of the readiness probe (the secure profile's admin)
KAFKA_START_TIMEOUT=90 # seconds until the broker must be ready for topics and transactions
KAFKA_STOP_TIMEOUT=60  # seconds the broker has to stop after SIGTERM, before SIGKILL

PG_DIR="$STACK_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
PG_LOG="$PG_DIR/postgres.log"
REDIS_DIR="$STACK_DIR/redis"
KAFKA_DIR="$STACK_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_READY="$KAFKA_DIR/ready" # holds the PID of the broker the readiness probe accepted
KAFKA_SRC="$ROOT/scripts/kafka"

SERVICES=(postgres redis kafka)                # started by `up` without names
ALL_SERVICES=(postgres redis kafka prometheus) # stopped by `down` without names

# --- small helpers ------------------------------------------------------------------------

say() { printf '%-10s %-16s %s\n' "$1" "$2" "$3"; }
die() { echo "stack: $*" >&2; exit 1; }

# die_with_log MESSAGE LOGFILE: fail, showing the end of the log that explains why.
die_with_log() {
  echo "stack: $1" >&2
  if [[ -f "$2" ]]; then
    echo "--- last lines of $2 ---" >&2
    tail -n 40 "$2" >&2
    echo "---" >&2
  fi
  exit 1
}

is_root() { [[ $EUID -eq 0 ]]; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { timeout 2 bash -c ": </dev/tcp/$HOST/$1" 2>/dev/null; }

# port_owner PORT: best-effort description of the process listening on PORT.
port_owner() {
  if command -v ss >/dev/null; then ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/    /'; fi
}

# alive PID PATTERN: PID runs and its command line mentions PATTERN (guards against a
# stale PID file whose number now belongs to an unrelated process).
alive() {
  [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && grep -qaF -- "$2" "/proc/$1/cmdline" 2>/dev/null
}

# read_pid FILE: the PID on the first line of FILE, or nothing.
read_pid() {
  if [[ -f "$1" ]]; then head -n 1 "$1" | tr -dc '0-9'; fi
}

# wait_gone PID SECONDS: wait until PID has exited; fails when it is still there.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# --- installing what is missing -------------------------------------------------------------

APT_UPDATED=""
apt_install() {
  local log="$STACK_DIR/apt.log"
  # No prompts (CI has no stdin); the lock timeout queues us behind another apt run
  # instead of failing at once.
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
  if ! is_root; then
    if ! { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; then
      die "missing packages: $*; install them (apt-get install $*) or run as root"
    fi
    apt=(sudo -n "${apt[@]}")
  fi
  echo "stack: installing $* (log: $log)"
  if [[ -z "$APT_UPDATED" ]]; then
    "${apt[@]}" update >"$log" 2>&1 9>&- || die_with_log "apt-get update failed" "$log"
    APT_UPDATED=1
  fi
  "${apt[@]}" install -y --no-install-recommends "$@" >>"$log" 2>&1 9>&- ||
    die_with_log "apt-get install $* failed" "$log"
}

# ensure_packages SERVICE...: install the Debian packages the given services need.
ensure_packages() {
  local pkgs=() s
  for s in "$@"; do
    case "$s" in
      postgres) compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || pkgs+=(postgresql) ;;
      redis)
        command -v redis-server >/dev/null || pkgs+=(redis-server)
        command -v redis-cli >/dev/null || pkgs+=(redis-tools)
        ;;
      kafka)
        command -v javac >/dev/null || pkgs+=(default-jdk-headless) # javac: readiness probe
        command -v mvn >/dev/null || pkgs+=(maven)
        ;;
      prometheus)
        # promtool (rule checks and tests in `make test`) comes with the prometheus package.
        command -v prometheus >/dev/null || pkgs+=(prometheus)
        command -v prometheus-redis-exporter >/dev/null || pkgs+=(prometheus-redis-exporter)
        command -v prometheus-postgres-exporter >/dev/null || pkgs+=(prometheus-postgres-exporter)
        command -v curl >/dev/null || pkgs+=(curl) # readiness probe
        ;;
    esac
  done
  if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; fi
}

# --- PostgreSQL ---------------------------------------------------------------------------

# pg_bin: the bin folder of the PostgreSQL major version to use: the one the existing
# cluster was created with, else the newest installed.
pg_bin() {
  local v
  if [[ -f "$PG_DATA/PG_VERSION" ]]; then
    v="$(cat "$PG_DATA/PG_VERSION")"
    [[ -x "/usr/lib/postgresql/$v/bin/postgres" ]] ||
      die "$PG_DATA was created by PostgreSQL $v, which is not installed; remove $PG_DIR to start over"
    echo "/usr/lib/postgresql/$v/bin"
    return
  fi
  v="$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)"
  [[ -x "$v" ]] || die "no PostgreSQL server found under /usr/lib/postgresql"
  dirname "$v"
}

# as_pg CMD...: run CMD as the user owning the cluster.
as_pg() {
  if is_root; then
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

pg_pid() { read_pid "$PG_DATA/postmaster.pid"; }
pg_running() { alive "$(pg_pid)" postgres; }
pg_ready() { "$(pg_bin)/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2; }

# pg_make_reachable: as root, let the postgres user reach $PG_DIR (see the header).
pg_make_reachable() {
  is_root || return 0
  id -u "$PG_OS_USER" >/dev/null 2>&1 || die "user $PG_OS_USER missing (it comes with the postgresql package)"
  local d="" part
  local -a parts
  IFS=/ read -ra parts <<<"${STACK_DIR#/}"
  for part in "${parts[@]}"; do
    [[ -n "$part" ]] || continue
    d="$d/$part"
    if ! runuser -u "$PG_OS_USER" -- test -x "$d"; then
      chmod o+x "$d"
      echo "stack: added o+x to $d so user $PG_OS_USER can reach its data"
    fi
  done
  chown "$PG_OS_USER:" "$PG_DIR"
}

# pg_free_port: a Debian-managed cluster (pg_ctlcluster) on our port is stopped; anything
# else holding the port is an error we cannot fix.
pg_free_port() {
  port_open "$PG_PORT" || return 0
  if command -v pg_lsclusters >/dev/null; then
    local ver name port status
    while read -r ver name port status _; do
      if [[ "$port" == "$PG_PORT" && "$status" == online* ]]; then
        echo "stack: stopping Debian's PostgreSQL cluster $ver/$name, which holds port $PG_PORT"
        pg_ctlcluster "$ver" "$name" stop
      fi
    done < <(pg_lsclusters -h 2>/dev/null)
  fi
  if port_open "$PG_PORT"; then
    die "port $PG_PORT is taken by another process; stop it or set PG_PORT
$(port_owner "$PG_PORT")"
  fi
}

pg_write_config() {
  # Unix sockets have a ~107 byte path limit.
  local sock="$PG_RUN/.s.PGSQL.$PG_PORT"
  ((${#sock} < 100)) || die "socket path $sock is too long for a unix socket; set a shorter STACK_DIR"

  # Rewritten on every start so that a changed PG_PORT takes effect.
  as_pg tee "$PG_DATA/stack.conf" >/dev/null <<EOF
# Written by scripts/stack.sh on every start; edits are lost.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
# Logical decoding (pgoutput) for the CDC producer; tests create many slots.
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 200
# A slot left behind by a killed test must not fill the disk with WAL.
max_slot_wal_keep_size = 4GB
EOF
  # Local socket: the cluster owner only (peer). TCP on loopback: password (SCRAM), for
  # normal and for replication connections.
  as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/stack.sh on every start; edits are lost.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 peer
local   replication  all                 peer
host    all          all   127.0.0.1/32  scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
EOF
  pg_config_hook
}

# pg_config_hook: the secure profile's TLS settings and pg_hba.conf; nothing here.
pg_config_hook() { :; }

# pg_status_note: what `status` adds to a running PostgreSQL's line.
pg_status_note() { echo "postgres://$PG_APP_USER:$PG_APP_PASSWORD@$HOST:$PG_PORT/$PG_APP_DB?sslmode=disable"; }

# CREATEDB lets tests that must own a whole table (TRUNCATE, key changes) use a
# database of their own instead of the shared one.
pg_ensure_app_role() {
  as_pg "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres >/dev/null <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_APP_USER') THEN
    CREATE ROLE $PG_APP_USER LOGIN REPLICATION CREATEDB PASSWORD '$PG_APP_PASSWORD';
  ELSE
    ALTER ROLE $PG_APP_USER LOGIN REPLICATION CREATEDB PASSWORD '$PG_APP_PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $PG_APP_DB OWNER $PG_APP_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_APP_DB')
\gexec
EOF
}

up_postgres() {
  local addr="$HOST:$PG_PORT" bin
  mkdir -p "$PG_DIR"
  if [[ -f "$PG_DATA/PG_VERSION" && ! -O "$PG_DATA" ]] && ! is_root; then
    die "$PG_DATA belongs to another user (created as root?); run as root or remove $PG_DIR"
  fi
  if pg_running; then
    pg_ready || die "postgres is running (pid $(pg_pid)) but not answering on $addr; run 'down' first if PG_PORT changed"
    pg_ensure_app_role
    say postgres "$addr" "already running"
    return
  fi

  bin="$(pg_bin)"
  pg_make_reachable
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    # C collation: byte order, identical on every machine; UTF-8 text.
    as_pg "$bin/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --encoding=UTF8 --locale=C \
      --auth-local=peer --auth-host=scram-sha-256 >"$STACK_DIR/initdb.log" 2>&1 ||
      die_with_log "initdb failed" "$STACK_DIR/initdb.log"
    echo "include = 'stack.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
  fi
  as_pg mkdir -p "$PG_RUN"
  pg_write_config
  pg_free_port

  as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null 9>&- ||
    die_with_log "postgres failed to start on $addr" "$PG_LOG"
  pg_ready || die_with_log "postgres started but does not answer on $addr" "$PG_LOG"
  pg_ensure_app_role
  say postgres "$addr" started
}

down_postgres() {
  if ! pg_running; then
    say postgres "$HOST:$PG_PORT" "not running"
    return
  fi
  as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null ||
    die_with_log "postgres did not stop" "$PG_LOG"
  say postgres "$HOST:$PG_PORT" stopped
}

# --- Redis ----------------------------------------------------------------------------------

REDIS_PIDFILE="$REDIS_DIR/redis.pid"
redis_pid() { read_pid "$REDIS_PIDFILE"; }
redis_running() { alive "$(redis_pid)" redis-server; }
redis_cli() { redis-cli -h "$HOST" -p "$REDIS_PORT" "$@"; }
redis_ready() { [[ "$(redis_cli ping 2>/dev/null)" == PONG ]]; }

# redis_free_port: the Debian redis-server service (started by the package's install
# script on machines that allow it) is stopped if it holds our port.
redis_free_port() {
  port_open "$REDIS_PORT" || return 0
  local debian_pid
  debian_pid="$(read_pid /run/redis/redis-server.pid)"
  if alive "$debian_pid" redis-server; then
    echo "stack: stopping Debian's redis-server service (pid $debian_pid), which holds port $REDIS_PORT"
    kill -TERM "$debian_pid"
    wait_gone "$debian_pid" 10 || die "Debian's redis-server (pid $debian_pid) did not stop"
  fi
  if port_open "$REDIS_PORT"; then
    die "port $REDIS_PORT is taken by another process; stop it or set REDIS_PORT
$(port_owner "$REDIS_PORT")"
  fi
}

up_redis() {
  local addr="$HOST:$REDIS_PORT" i
  mkdir -p "$REDIS_DIR"
  if redis_running; then
    redis_ready || die "redis is running (pid $(redis_pid)) but not answering on $addr; run 'down' first if REDIS_PORT changed"
    say redis "$addr" "already running"
    return
  fi
  redis_free_port
  redis_write_config
  redis-server "$REDIS_DIR/redis.conf" 9>&- || die_with_log "redis failed to start on $addr" "$REDIS_DIR/redis.log"
  for ((i = 0; i < 100; i++)); do
    redis_ready && break
    sleep 0.1
  done
  redis_ready || die_with_log "redis does not answer on $addr" "$REDIS_DIR/redis.log"
  say redis "$addr" started
}

redis_write_config() {
  # A cache rebuilt from Kafka: no persistence at all. Protected mode is off because the
  # bind address already limits clients to this machine.
  cat >"$REDIS_DIR/redis.conf" <<EOF
# Written by scripts/stack.sh on every start; edits are lost.
bind $HOST
port $REDIS_PORT
protected-mode no
daemonize yes
supervised no
dir "$REDIS_DIR"
pidfile "$REDIS_PIDFILE"
logfile "$REDIS_DIR/redis.log"
save ""
appendonly no
EOF
}

down_redis() {
  local pid
  pid="$(redis_pid)"
  if ! redis_running; then
    say redis "$HOST:$REDIS_PORT" "not running"
    return
  fi
  redis_cli shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid"
  wait_gone "$pid" 20 || die_with_log "redis (pid $pid) did not stop" "$REDIS_DIR/redis.log"
  say redis "$HOST:$REDIS_PORT" stopped
}

# --- Kafka ----------------------------------------------------------------------------------

kafka_pid() { read_pid "$KAFKA_PID"; }
kafka_running() { alive "$(kafka_pid)" kafka.Kafka; }
kafka_accepted() { [[ -n "$(kafka_pid)" && "$(read_pid "$KAFKA_READY")" == "$(kafka_pid)" ]]; }

# kafka_libs: resolve the broker jars with Maven, again only when the POM changed.
kafka_libs() {
  local stamp="$KAFKA_LIBS/.pom.sha256" want
  want="$(sha256sum "$KAFKA_SRC/pom.xml" | cut -d' ' -f1)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
  echo "stack: resolving Kafka jars with Maven (log: $KAFKA_DIR/mvn.log)"
  rm -rf "$KAFKA_LIBS"
  mvn -B -q -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$KAFKA_DIR/mvn.log" 2>&1 ||
    die_with_log "resolving Kafka jars with Maven failed" "$KAFKA_DIR/mvn.log"
  echo "$want" >"$stamp"
}

# The readiness probe. An open port is not enough: the listener opens before the broker is
# unfenced (until then topic creation fails for lack of brokers), and the first
# transaction or consumer group has to create __transaction_state and __consumer_offsets. The probe waits for an unfenced broker (KRaft leaves fenced brokers
# out of metadata answers), then creates both internal topics by looking up a group
# coordinator and initialising a transactional producer, so that the first test does not
# pay for them (or time out on them).
KAFKA_PROBE_SRC='import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Exits 0 once the broker at args[0] serves metadata, groups and transactions (args[1] s
 * budget), connecting with the client properties in the file args[2] when given.
 */
public class StackProbe {
  public static void main(String[] args) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
    Properties p = new Properties();
    if (args.length > 2) {
      try (java.io.Reader in = new java.io.FileReader(args[2])) {
        p.load(in);
      }
    }
    p.put("bootstrap.servers", args[0]);
    p.put("request.timeout.ms", "5000");
    try (Admin admin = Admin.create(p)) {
      while (true) {
        try {
          if (!admin.describeCluster().nodes().get(5, TimeUnit.SECONDS).isEmpty()) break;
        } catch (Exception e) {
          if (System.nanoTime() > deadline) throw e;
        }
        if (System.nanoTime() > deadline) throw new IllegalStateException("no unfenced broker");
        Thread.sleep(200);
      }
      admin.listConsumerGroupOffsets("stack-readiness-probe").partitionsToOffsetAndMetadata()
          .get(remainingMs(deadline), TimeUnit.MILLISECONDS);
    }
    p.put("transactional.id", "stack-readiness-probe");
    p.put("max.block.ms", Long.toString(remainingMs(deadline)));
    try (KafkaProducer<byte[], byte[]> producer =
        new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      producer.initTransactions();
    }
  }

  static long remainingMs(long deadline) {
    return Math.max(1000, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
  }
}'

kafka_compile_probe() {
  local dir="$KAFKA_DIR/probe"
  mkdir -p "$dir"
  if [[ -f "$dir/StackProbe.class" && "$(cat "$dir/StackProbe.java" 2>/dev/null)" == "$KAFKA_PROBE_SRC" ]]; then
    return 0
  fi
  printf '%s\n' "$KAFKA_PROBE_SRC" >"$dir/StackProbe.java"
  javac -nowarn -cp "$KAFKA_LIBS/*" -d "$dir" "$dir/StackProbe.java" >"$dir/javac.log" 2>&1 ||
    die_with_log "compiling the Kafka readiness probe failed" "$dir/javac.log"
}

# kafka_free_ports: our ports must be free before a new broker starts.
kafka_free_ports() {
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$port"; then
      die "port $port is taken by another process; stop it or set KAFKA_PORT / KAFKA_CONTROLLER_PORT
$(port_owner "$port")"
    fi
  done
}

# kafka_start: launch the broker in the background without waiting (kafka_wait waits), so
# that PostgreSQL and Redis start while the JVM boots.
KAFKA_LAUNCHED=""
kafka_start() {
  mkdir -p "$KAFKA_DIR" "$KAFKA_DATA" "$KAFKA_LOGS"
  if kafka_running; then return 0; fi
  rm -f "$KAFKA_PID" "$KAFKA_READY"
  kafka_libs
  kafka_compile_probe
  kafka_free_ports

  kafka_write_config

  # Format the storage once, with the cluster id kafka_cluster_id gives.
  if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(kafka_cluster_id)"
    java -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" \
      -Dkafka.logs.dir="$KAFKA_LOGS" -Dkafka.log.name=storage-format \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" \
      "${KAFKA_FORMAT_ARGS[@]}" >"$KAFKA_LOGS/format.out" 2>&1 ||
      die_with_log "formatting Kafka storage failed" "$KAFKA_LOGS/format.out"
  fi

  # setsid: a session of its own, so a Ctrl-C in the terminal that ran `up` (or `make
  # run`) does not reach the broker. The shell writes its own PID before exec'ing java,
  # so the PID file is right however setsid forks. KAFKA_HEAP_OPTS and KAFKA_GC_OPTS are
  # split into words.
  # shellcheck disable=SC2016,SC2086 # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KAFKA_PID" \
    java $KAFKA_HEAP_OPTS $KAFKA_GC_OPTS \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" -Dkafka.logs.dir="$KAFKA_LOGS" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    </dev/null >"$KAFKA_LOGS/kafka.out" 2>&1 9>&- &
  KAFKA_LAUNCHED=$SECONDS
}

# kafka_cluster_id: a new random cluster id (22 chars of URL-safe base64 of 16 random
# bytes, the format Kafka's Uuid uses). The replicated profile shares one between its nodes.
kafka_cluster_id() { head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='; }

# kafka_write_config: server.properties from the template, on every start.
kafka_write_config() {
  local tmpl
  tmpl="$(<"$KAFKA_SRC/server.properties.tmpl")"
  tmpl="${tmpl//@KAFKA_PORT@/"$KAFKA_PORT"}"
  tmpl="${tmpl//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}"
  tmpl="${tmpl//@KAFKA_DATA_DIR@/"$KAFKA_DATA"}"
  printf '%s\n' "$tmpl" >"$KAFKA_DIR/server.properties"
}

# kafka_setup: after the broker is ready, the secure profile's topics and ACLs; nothing here.
kafka_setup() { :; }

# kafka_fail MESSAGE: fail with the broker's log (stdout holds JVM-level errors).
kafka_fail() {
  [[ -s "$KAFKA_LOGS/kafka.out" ]] && { echo "--- $KAFKA_LOGS/kafka.out ---" >&2; tail -n 20 "$KAFKA_LOGS/kafka.out" >&2; }
  die_with_log "$1" "$KAFKA_LOGS/server.log"
}

kafka_wait() {
  local addr="$HOST:$KAFKA_PORT" start=$SECONDS pid left i
  # The PID file appears a moment after the launch.
  for ((i = 0; i < 50; i++)); do
    [[ -n "$(kafka_pid)" ]] && break
    sleep 0.1
  done
  pid="$(kafka_pid)"

  if [[ -z "$KAFKA_LAUNCHED" ]] && kafka_accepted; then
    port_open "$KAFKA_PORT" || die "kafka is running (pid $pid) but not on $addr; run 'down' first if KAFKA_PORT changed"
    say kafka "$addr" "already running"
    return
  fi

  # Cheap wait for the listener (and for a quick death) before starting the probe's JVM.
  until port_open "$KAFKA_PORT"; do
    alive "$pid" kafka.Kafka || kafka_fail "kafka exited during startup"
    ((SECONDS - start < KAFKA_START_TIMEOUT)) || kafka_fail "kafka did not open $addr within ${KAFKA_START_TIMEOUT}s"
    sleep 0.25
  done
  left=$((KAFKA_START_TIMEOUT - (SECONDS - start)))
  ((left > 5)) || left=5
  java -Xmx128m -XX:TieredStopAtLevel=1 -cp "$KAFKA_DIR/probe:$KAFKA_LIBS/*" \
    -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" -Dkafka.logs.dir="$KAFKA_LOGS" \
    -Dkafka.log.name=probe StackProbe "$addr" "$left" ${KAFKA_PROBE_PROPS:+"$KAFKA_PROBE_PROPS"} \
    >"$KAFKA_LOGS/probe.out" 2>&1 || {
    alive "$pid" kafka.Kafka || kafka_fail "kafka exited during startup"
    echo "--- $KAFKA_LOGS/probe.out ---" >&2
    tail -n 20 "$KAFKA_LOGS/probe.out" >&2
    kafka_fail "kafka on $addr is not ready for topics and transactions after ${KAFKA_START_TIMEOUT}s"
  }
  echo "$pid" >"$KAFKA_READY"
  if [[ -n "$KAFKA_LAUNCHED" ]]; then
    say kafka "$addr" "started ($((SECONDS - KAFKA_LAUNCHED))s to ready)"
  else
    say kafka "$addr" "already running (now ready)"
  fi
}

up_kafka() {
  kafka_start
  kafka_wait
  kafka_setup
}

down_kafka() {
  local pid
  pid="$(kafka_pid)"
  if ! kafka_running; then
    rm -f "$KAFKA_PID" "$KAFKA_READY"
    say kafka "$HOST:$KAFKA_PORT" "not running"
    return
  fi
  # SIGTERM runs the broker's controlled shutdown (flushes and closes logs cleanly, so the
  # next start skips log recovery).
  kill -TERM "$pid"
  if ! wait_gone "$pid" "$KAFKA_STOP_TIMEOUT"; then
    echo "stack: kafka (pid $pid) ignored SIGTERM for ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "kafka (pid $pid) did not exit"
  fi
  rm -f "$KAFKA_PID" "$KAFKA_READY"
  say kafka "$HOST:$KAFKA_PORT" stopped
}

# --- Prometheus -----------------------------------------------------------------------------

# Prometheus scrapes the ports `make run` gives the programs (a program that is not running
# is simply a target that is down), a Redis exporter for memory and clients and a PostgreSQL
# exporter for connections, transactions and size of the stack's database; it loads
# scripts/prometheus/rules.yml, the same rules compose and production load.
PROM_DIR="$STACK_DIR/prometheus"
PROM_PIDFILE="$PROM_DIR/prometheus.pid"
REXP_PIDFILE="$PROM_DIR/redis-exporter.pid"
PEXP_PIDFILE="$PROM_DIR/postgres-exporter.pid"
PROM_SRC="$ROOT/scripts/prometheus"

prom_pid() { read_pid "$PROM_PIDFILE"; }
prom_running() { alive "$(prom_pid)" prometheus; }
prom_ready() { curl -fsS -o /dev/null --max-time 2 "http://$HOST:$PROMETHEUS_PORT/-/ready" 2>/dev/null; }
rexp_pid() { read_pid "$REXP_PIDFILE"; }
rexp_running() { alive "$(rexp_pid)" redis-exporter; }
pexp_pid() { read_pid "$PEXP_PIDFILE"; }
pexp_running() { alive "$(pexp_pid)" postgres-exporter; }

# quoted_list ADDR...: "a", "b" for a YAML flow list.
quoted_list() {
  local out="" a
  for a in "$@"; do out+="${out:+, }\"$a\""; done
  printf '%s' "$out"
}

# prom_write_config: rewritten on every `up`, so changed ports and targets take effect.
prom_write_config() {
  local t
  t="$(<"$PROM_SRC/prometheus.yml.tmpl")"
  t="${t//@RULES@/"$PROM_SRC/rules.yml"}"
  t="${t//@PRODUCER@/"$(quoted_list "$PROMETHEUS_PRODUCER")"}"
  # shellcheck disable=SC2086 # a space-separated list, split on purpose
  t="${t//@PROJECTORS@/"$(quoted_list $PROMETHEUS_PROJECTORS)"}"
  t="${t//@API@/"$(quoted_list "$PROMETHEUS_API")"}"
  t="${t//@SWEEPER@/"$(quoted_list "$PROMETHEUS_SWEEPER")"}"
  t="${t//@REDIS_EXPORTER@/"$(quoted_list "$HOST:$REDIS_EXPORTER_PORT")"}"
  t="${t//@POSTGRES_EXPORTER@/"$(quoted_list "$HOST:$POSTGRES_EXPORTER_PORT")"}"
  t="${t//@PROMETHEUS@/"$(quoted_list "$HOST:$PROMETHEUS_PORT")"}"
  printf '# Written by scripts/stack.sh on every start; edits are lost.\n%s\n' "$t" >"$PROM_DIR/prometheus.yml"
  promtool check config "$PROM_DIR/prometheus.yml" >"$PROM_DIR/check.log" 2>&1 ||
    die_with_log "the generated Prometheus configuration is invalid" "$PROM_DIR/check.log"
}

# daemon PIDFILE LOG CMD...: start CMD in a session of its own (Ctrl-C in the terminal that
# ran `up` must not reach it), recording its PID (see kafka_start).
daemon() {
  local pidfile=$1 log=$2
  shift 2
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" "$@" </dev/null >"$log" 2>&1 9>&- &
}

up_redis_exporter() {
  local addr="$HOST:$REDIS_EXPORTER_PORT" i
  if rexp_running; then
    say redis-exp "$addr" "already running"
    return
  fi
  port_open "$REDIS_EXPORTER_PORT" && die "port $REDIS_EXPORTER_PORT is taken by another process; stop it or set REDIS_EXPORTER_PORT
$(port_owner "$REDIS_EXPORTER_PORT")"
  daemon "$REXP_PIDFILE" "$PROM_DIR/redis-exporter.log" prometheus-redis-exporter \
    -redis.addr "redis://$HOST:$REDIS_PORT" -web.listen-address "$addr"
  for ((i = 0; i < 100; i++)); do
    port_open "$REDIS_EXPORTER_PORT" && break
    sleep 0.1
  done
  port_open "$REDIS_EXPORTER_PORT" || die_with_log "the redis exporter does not listen on $addr" "$PROM_DIR/redis-exporter.log"
  say redis-exp "$addr" started
}

# The PostgreSQL exporter (0.11 reads its connection from DATA_SOURCE_NAME; the URL stays
# out of its command line) watches the stack's database as the application role: pg_up,
# connections against max_connections, transactions and database sizes. A PostgreSQL that
# is down is not an error here: the exporter then reports pg_up 0 (StockPostgresDown).
up_postgres_exporter() {
  local addr="$HOST:$POSTGRES_EXPORTER_PORT" i
  if pexp_running; then
    say pg-exp "$addr" "already running"
    return
  fi
  # Debian's package ships a service of its own on the same default port (started where
  # systemd runs): stop it (systemctl stop prometheus-postgres-exporter) or set the port.
  port_open "$POSTGRES_EXPORTER_PORT" && die "port $POSTGRES_EXPORTER_PORT is taken by another process (Debian's prometheus-postgres-exporter service?); stop it or set POSTGRES_EXPORTER_PORT
$(port_owner "$POSTGRES_EXPORTER_PORT")"
  DATA_SOURCE_NAME="postgres://$PG_APP_USER:$PG_APP_PASSWORD@$HOST:$PG_PORT/$PG_APP_DB?sslmode=disable" \
    daemon "$PEXP_PIDFILE" "$PROM_DIR/postgres-exporter.log" prometheus-postgres-exporter \
    --web.listen-address="$addr"
  for ((i = 0; i < 100; i++)); do
    port_open "$POSTGRES_EXPORTER_PORT" && break
    sleep 0.1
  done
  port_open "$POSTGRES_EXPORTER_PORT" || die_with_log "the postgres exporter does not listen on $addr" "$PROM_DIR/postgres-exporter.log"
  say pg-exp "$addr" started
}

up_prometheus() {
  local addr="$HOST:$PROMETHEUS_PORT" i
  mkdir -p "$PROM_DIR/data"
  prom_write_config
  up_redis_exporter
  up_postgres_exporter
  if prom_running; then
    # A running server rereads the configuration (targets may have changed) on SIGHUP.
    kill -HUP "$(prom_pid)"
    prom_ready || die "prometheus is running (pid $(prom_pid)) but not answering on $addr; run 'down prometheus' first if PROMETHEUS_PORT changed"
    say prometheus "$addr" "already running (configuration reloaded)"
    return
  fi
  # Debian's package ships a service of its own on the same default port; it is never used.
  local debian_pid
  debian_pid="$(pgrep -x -u prometheus prometheus 2>/dev/null | head -n 1 || true)"
  if port_open "$PROMETHEUS_PORT" && alive "$debian_pid" prometheus; then
    echo "stack: stopping Debian's prometheus service (pid $debian_pid), which holds port $PROMETHEUS_PORT"
    kill -TERM "$debian_pid"
    wait_gone "$debian_pid" 20 || die "Debian's prometheus (pid $debian_pid) did not stop"
  fi
  port_open "$PROMETHEUS_PORT" && die "port $PROMETHEUS_PORT is taken by another process; stop it or set PROMETHEUS_PORT
$(port_owner "$PROMETHEUS_PORT")"
  daemon "$PROM_PIDFILE" "$PROM_DIR/prometheus.log" prometheus \
    --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
    --storage.tsdb.retention.time=7d --web.listen-address="$addr"
  for ((i = 0; i < 300; i++)); do
    prom_ready && break
    sleep 0.1
  done
  prom_ready || die_with_log "prometheus does not answer on $addr" "$PROM_DIR/prometheus.log"
  say prometheus "$addr" "started (http://$addr)"
}

down_prometheus() {
  local pid was=""
  # Prometheus first (it scrapes the exporters), then the exporters.
  for pid in "$(prom_pid)" "$(rexp_pid)" "$(pexp_pid)"; do
    alive "$pid" prometheus || continue
    was=1
    kill -TERM "$pid"
    wait_gone "$pid" 30 || die "pid $pid did not stop"
  done
  rm -f "$PROM_PIDFILE" "$REXP_PIDFILE" "$PEXP_PIDFILE"
  if [[ -n "$was" ]]; then
    say prometheus "$HOST:$PROMETHEUS_PORT" stopped
  else
    say prometheus "$HOST:$PROMETHEUS_PORT" "not running"
  fi
}

# --- commands -----------------------------------------------------------------------------

# select_services SERVICE...: sets SELECTED to the requested services (default: all).
# select_services DEFAULTS SERVICE...: sets SELECTED to the requested services, else to
# the array named DEFAULTS.
SELECTED=()
select_services() {
  local -n defaults=$1
  local s
  shift
  if (($# == 0)); then set -- "${defaults[@]}"; fi
  for s in "$@"; do
    case "$s" in
      postgres | redis | kafka | prometheus) SELECTED+=("$s") ;;
      *) die "unknown service '$s' (expected postgres, redis, kafka or prometheus)" ;;
    esac
  done
}

# lock: one up/down at a time (two test runs starting the stack together would race).
# The lock lives on file descriptor 9, which every daemon we launch must close (9>&-):
# an inherited copy would hold the lock for the daemon's whole life.
lock() {
  mkdir -p "$STACK_DIR"
  exec 9>"$STACK_DIR/.lock"
  flock -w 300 9 || die "another stack.sh up/down holds $STACK_DIR/.lock"
}

cmd_up() {
  select_services SERVICES "$@"
  lock
  ensure_packages "${SELECTED[@]}"
  prepare_up
  local want=" ${SELECTED[*]} "
  # Kafka's JVM boots while PostgreSQL and Redis start.
  [[ "$want" == *" kafka "* ]] && kafka_start
  [[ "$want" == *" postgres "* ]] && up_postgres
  [[ "$want" == *" redis "* ]] && up_redis
  if [[ "$want" == *" kafka "* ]]; then
    kafka_wait
    kafka_setup
  fi
  [[ "$want" == *" prometheus "* ]] && up_prometheus
  return 0
}

# prepare_up: the secure profile's certificates and secrets; nothing here.
prepare_up() { :; }

# cmd_kill: SIGKILL a node of the replicated profile (stack-replicated.sh).
cmd_kill() { die "kill is for the nodes of the replicated profile: STACK_REPLICATED=1 $0 kill kafka-N"; }

# cmd_env: the secure profile's client settings (stack-secure.sh).
cmd_env() { die "env describes the secure profile: STACK_SECURE=1 $0 env"; }

cmd_down() {
  local i
  select_services ALL_SERVICES "$@"
  lock
  # Reverse start order.
  for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do
    "down_${SELECTED[i]}"
  done
}

cmd_status() {
  local all_up=0
  if compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && pg_running && pg_ready; then
    say postgres "$HOST:$PG_PORT" "up (pid $(pg_pid))  $(pg_status_note)"
  else
    say postgres "$HOST:$PG_PORT" down
    all_up=1
  fi
  if command -v redis-cli >/dev/null && redis_running && redis_ready; then
    say redis "$HOST:$REDIS_PORT" "up (pid $(redis_pid))"
  else
    say redis "$HOST:$REDIS_PORT" down
    all_up=1
  fi
  if kafka_running && port_open "$KAFKA_PORT"; then
    if kafka_accepted; then
      say kafka "$HOST:$KAFKA_PORT" "up (pid $(kafka_pid))"
    else
      say kafka "$HOST:$KAFKA_PORT" "starting (pid $(kafka_pid))"
      all_up=1
    fi
  else
    say kafka "$HOST:$KAFKA_PORT" down
    all_up=1
  fi
  # Optional: its state does not change the exit status.
  if [[ -n "$SECURE" ]]; then
    : # the secure profile has no Prometheus
  elif prom_running && prom_ready; then
    say prometheus "$HOST:$PROMETHEUS_PORT" "up (pid $(prom_pid))  http://$HOST:$PROMETHEUS_PORT"
  else
    say prometheus "$HOST:$PROMETHEUS_PORT" "down (optional: stack.sh up prometheus)"
  fi
  return "$all_up"
}

usage() {
  sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

main() {
  (($# > 0)) || usage
  local cmd="$1"
  shift
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) (($# == 0)) || usage; cmd_status ;;
    env) (($# == 0)) || usage; cmd_env ;;
    kill) cmd_kill "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

# The secure profile replaces the functions that differ (configuration, roles, readiness).
if [[ -n "$SECURE" ]]; then
  # shellcheck source=secure/stack-secure.sh
  source "$ROOT/scripts/secure/stack-secure.sh"
fi
# The replicated profile runs Kafka as a cluster of nodes (stack-replicated.sh).
if [[ -n "$REPLICATED" ]]; then
  # shellcheck source=replicated/stack-replicated.sh
  source "$ROOT/scripts/replicated/stack-replicated.sh"
fi

main "$@"
