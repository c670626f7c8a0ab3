#!/usr/bin/env bash
# Local Confluent-compatible Schema Registry without Docker: Apicurio Registry, built from
# its jars on Maven Central by scripts/registry/pom.xml, bound to 127.0.0.1, with its data,
# log and PID file under one git-ignored folder.
#
#   scripts/registry.sh up      build when missing or changed, start, wait until ready
#   scripts/registry.sh down    stop cleanly, by PID file
#   scripts/registry.sh status  one line; exit 1 when down
#
# Environment:
#   STACK_DIR      folder shared with scripts/stack.sh (default: <repo>/.local)
#   REGISTRY_PORT  HTTP port (default 8081)
#
# The Confluent REST API is served at http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
# (the URL to give clients, e.g. the producer's --schema-registry-url).
#
# Layout of $STACK_DIR/registry:
#   build/                  the Quarkus application (runner jar and lib/), rebuilt when
#                           scripts/registry/ changes
#   data/registry.mv.db     schemas and settings (H2 file): kept across restarts, so schema
#                           ids in Kafka records keep resolving
#   logs/{registry.log,mvn.log}
#   registry.pid, ready     PID of the JVM; PID the readiness check accepted
#
# Needs Java 17 and Maven (installed with apt-get when missing, as scripts/stack.sh does).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.local}"
[[ "$STACK_DIR" = /* ]] || STACK_DIR="$PWD/$STACK_DIR"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
HOST=127.0.0.1

START_TIMEOUT=90 # seconds until the API must answer
# Heap: the registry holds a few dozen schemas here. 256 MB leaves room for H2's page
# cache; the process settles near 200 MB resident.
HEAP=256m

SRC="$ROOT/scripts/registry"
DIR="$STACK_DIR/registry"
BUILD="$DIR/build"
DATA="$DIR/data"
LOGS="$DIR/logs"
PIDFILE="$DIR/registry.pid"
READY="$DIR/ready"
RUNNER="$BUILD/registry-local-0-runner.jar" # name given by the POM's artifactId and version
API="http://$HOST:$REGISTRY_PORT/apis/ccompat/v7"

say() { printf '%-9s %-16s %s\n' registry "$HOST:$REGISTRY_PORT" "$1"; }
die() { echo "registry: $*" >&2; exit 1; }

die_with_log() {
  echo "registry: $1" >&2
  if [[ -f "$2" ]]; then
    echo "--- last lines of $2 ---" >&2
    tail -n 40 "$2" >&2
    echo "---" >&2
  fi
  exit 1
}

read_pid() { if [[ -f "$1" ]]; then head -n 1 "$1" | tr -dc '0-9'; fi; }
# alive PID: PID runs and is our JVM (guards against a stale PID file whose number now
# belongs to an unrelated process).
alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && grep -qaF -- "$RUNNER" "/proc/$1/cmdline" 2>/dev/null; }
pid() { read_pid "$PIDFILE"; }
running() { alive "$(pid)"; }
accepted() { [[ -n "$(pid)" && "$(read_pid "$READY")" == "$(pid)" ]]; }
port_open() { timeout 2 bash -c ": </dev/tcp/$HOST/$1" 2>/dev/null; }
# answers: the Confluent API lists subjects (the storage is initialised by then).
answers() { curl -fsS -m 2 -o /dev/null "$API/subjects" 2>/dev/null; }

wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

ensure_tools() {
  local pkgs=()
  command -v java >/dev/null || pkgs+=(default-jdk-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  command -v curl >/dev/null || pkgs+=(curl)
  ((${#pkgs[@]})) || return 0
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
  if [[ $EUID -ne 0 ]]; then
    { command -v sudo >/dev/null && sudo -n true 2>/dev/null; } ||
      die "missing packages: ${pkgs[*]}; install them (apt-get install ${pkgs[*]}) or run as root"
    apt=(sudo -n "${apt[@]}")
  fi
  echo "registry: installing ${pkgs[*]} (log: $LOGS/apt.log)"
  { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${pkgs[@]}"; } >"$LOGS/apt.log" 2>&1 9>&- ||
    die_with_log "apt-get install ${pkgs[*]} failed" "$LOGS/apt.log"
}

# build: the Quarkus build of Apicurio's jar, again only when scripts/registry/ changed.
build() {
  local stamp="$BUILD/.src.sha256" want
  want="$(cd "$SRC" && find . -type f -not -path './target/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
  [[ -f "$stamp" && -f "$RUNNER" && "$(cat "$stamp")" == "$want" ]] && return 0
  echo "registry: building the registry with Maven (log: $LOGS/mvn.log)"
  rm -rf "$BUILD"
  mvn -B -q -f "$SRC/pom.xml" -Dregistry.build="$BUILD" package >"$LOGS/mvn.log" 2>&1 9>&- ||
    die_with_log "building the registry failed" "$LOGS/mvn.log"
  [[ -f "$RUNNER" ]] || die "the build did not produce $RUNNER"
  echo "$want" >"$stamp"
}

cmd_up() {
  local start=$SECONDS p
  mkdir -p "$DIR" "$DATA" "$LOGS"
  if running; then
    if answers; then
      pid >"$READY"
      say "already running (pid $(pid))"
      return
    fi
    accepted && die "registry is running (pid $(pid)) but not answering at $API; run 'down' first if REGISTRY_PORT changed"
  else
    rm -f "$PIDFILE" "$READY"
    ensure_tools
    build
    port_open "$REGISTRY_PORT" && die "port $REGISTRY_PORT is taken by another process; stop it or set REGISTRY_PORT"
    # setsid: a session of its own, so a Ctrl-C in the terminal that ran `up` does not
    # reach it. The shell writes its own PID before exec'ing java. The prod profile keeps
    # Quarkus's dev services and live reload off.
    # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
    REGISTRY_DATASOURCE_URL="jdbc:h2:file:$DATA/registry" \
      setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
      java -Xms64m -Xmx"$HEAP" -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dquarkus.http.host="$HOST" -Dquarkus.http.port="$REGISTRY_PORT" \
      -Dquarkus.profile=prod -Dquarkus.log.console.color=false \
      -jar "$RUNNER" </dev/null >"$LOGS/registry.log" 2>&1 9>&- &
    for ((p = 0; p < 50; p++)); do
      [[ -n "$(pid)" ]] && break
      sleep 0.1
    done
  fi
  until answers; do
    running || die_with_log "registry exited during startup" "$LOGS/registry.log"
    ((SECONDS - start < START_TIMEOUT)) || die_with_log "registry did not answer at $API within ${START_TIMEOUT}s" "$LOGS/registry.log"
    sleep 0.25
  done
  pid >"$READY"
  say "started ($((SECONDS - start))s to ready)  $API"
}

cmd_down() {
  local p
  p="$(pid)"
  if ! running; then
    rm -f "$PIDFILE" "$READY"
    say "not running"
    return
  fi
  kill -TERM "$p"
  if ! wait_gone "$p" 30; then
    echo "registry: pid $p ignored SIGTERM for 30s; sending SIGKILL" >&2
    kill -KILL "$p" 2>/dev/null || true
    wait_gone "$p" 10 || die "registry (pid $p) did not exit"
  fi
  rm -f "$PIDFILE" "$READY"
  say stopped
}

cmd_status() {
  if running && answers; then
    say "up (pid $(pid))  $API"
  elif running; then
    say "starting (pid $(pid))"
    return 1
  else
    say down
    return 1
  fi
}

# lock: one up/down at a time, on file descriptor 9, which the JVM must not inherit
# (9>&- above): an inherited copy would hold the lock for the registry's whole life.
lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock -w 300 9 || die "another registry.sh up/down holds $DIR/.lock"
}

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

(($# == 1)) || usage
case "$1" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  *) usage ;;
esac
