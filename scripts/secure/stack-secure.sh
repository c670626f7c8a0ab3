# shellcheck shell=bash
# The secure profile of scripts/stack.sh (STACK_SECURE=1; docs/security.md). stack.sh sources
# this file after defining its own functions: the functions here replace those whose
# behaviour differs (configuration files, roles, readiness checks, the broker's setup), and
# everything else (installing, starting, stopping by PID file, locking) is shared. Ports and
# the folder ($STACK_DIR = .local/secure) are chosen in stack.sh before any path is derived.
#
# What it adds on `up`: a local CA and server certificate (scripts/secure/certs.sh), one
# random password per principal in $STACK_DIR/secrets (mode 600, never on a command line
# except the broker's one-time storage format), and then per service:
#   PostgreSQL  TLS only (hostnossl rejected), scram-sha-256, the owner and the least-privilege
#               roles with LOGIN and passwords; the write functions' grants come from the
#               schema migrations (internal/inventorydb, 0004).
#   Redis       TLS only (no plain port), the default user off, three ACL users.
#   Kafka       SASL_SSL (SCRAM-SHA-512) for clients, TLS with client certificates for the
#               controller, the standard authorizer; the admin creates the topics and ACLs
#               with the distribution's kafka-topics and kafka-acls tools.

SECURE_SRC="$ROOT/scripts/secure"
TLS_DIR="$STACK_DIR/tls"
CA_FILE="$TLS_DIR/ca.crt"
SECRETS_DIR="$STACK_DIR/secrets"
KAFKA_ADMIN_PROPS="$SECRETS_DIR/kafka-admin.properties"

# The principals. Their rights are listed in docs/security.md; renaming one means changing
# the grants (migration 0004), the ACLs below and that page.
PG_WRITER=stock_writer         # EXECUTE on the write functions
PG_CDC=stock_cdc               # the producer: REPLICATION, SELECT on the published table
PG_RESNAPSHOT=stock_resnapshot # may call stock_request_resnapshot; granted to stock_cdc here
KAFKA_ADMIN=stock-admin        # super user: creates topics and ACLs
KAFKA_BROKER=kafka-broker      # super user: the broker's own inter-broker requests
KAFKA_PRODUCER=stock-producer
KAFKA_PROJECTOR=stock-projector
REDIS_ADMIN=stock-admin        # the stack's own checks and shutdown
REDIS_PROJECTOR=stock-projector
REDIS_API=stock-api

# What the ACLs name: the programs' defaults (schemas.TopicLevels and friends,
# cdc.DefaultCheckpointTopic, the projector's group and dead-letter suffix, the producer's
# transactional id "stock-producer-<slot>", stockstore.DefaultPrefix).
TOPIC_LEVELS=stock.levels.v1
TOPIC_CHANGES=stock.changes.v1
TOPIC_ALERTS=stock.alerts.v1
TOPIC_CHECKPOINTS=stock.producer.checkpoints
TOPIC_DLQ=stock.levels.v1.dlq
PROJECTOR_GROUP=stock-projector
PRODUCER_TXN_PREFIX=stock-producer-

ALL_SERVICES=(postgres redis kafka) # no Prometheus in this profile
KAFKA_MTLS_PORT="${SECURE_KAFKA_MTLS_PORT:-19094}" # clients with a certificate instead of SCRAM
# Light: this broker runs beside the plaintext one on two cores and serves tests only.
KAFKA_HEAP_OPTS="${SECURE_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_PROBE_PROPS="$KAFKA_ADMIN_PROPS"

# --- secrets ------------------------------------------------------------------------------

# ensure_secret NAME: a random password in secrets/NAME.password, made once. Hex, so it
# needs no quoting in URLs, JAAS lines and configuration files.
ensure_secret() {
  local f="$SECRETS_DIR/$1.password"
  [[ -s "$f" ]] || (umask 077 && openssl rand -hex 24 >"$f")
}

# secret NAME: the password in secrets/NAME.password.
secret() { tr -d '\n' <"$SECRETS_DIR/$1.password"; }

prepare_up() {
  command -v openssl >/dev/null || apt_install openssl
  mkdir -p "$SECRETS_DIR"
  chmod 700 "$SECRETS_DIR"
  # The producer's role logs in to PostgreSQL with a client certificate as well as its
  # password; the writer's certificate is there for the test that it opens no other role.
  # The projector's certificate is its principal on the broker's MTLS listener.
  bash "$SECURE_SRC/certs.sh" "$TLS_DIR" "$PG_CDC" "$PG_WRITER" "$KAFKA_PROJECTOR"
  local n
  for n in "pg-stock" "pg-$PG_WRITER" "pg-$PG_CDC" \
    "kafka-$KAFKA_ADMIN" "kafka-$KAFKA_BROKER" "kafka-$KAFKA_PRODUCER" "kafka-$KAFKA_PROJECTOR" \
    "redis-$REDIS_ADMIN" "redis-$REDIS_PROJECTOR" "redis-$REDIS_API"; do
    ensure_secret "$n"
  done
  # The admin's client configuration, for the readiness probe and the Kafka tools
  # (--command-config), and for an operator's own kafka-*.sh runs.
  (
    umask 077
    cat >"$KAFKA_ADMIN_PROPS" <<EOF
# Written by scripts/stack.sh (STACK_SECURE=1) on every up: the Kafka admin's client settings.
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_ADMIN" password="$(secret "kafka-$KAFKA_ADMIN")";
ssl.truststore.type=PEM
ssl.truststore.location=$CA_FILE
EOF
  )
  # SCRAM credentials are written into the metadata log when the storage is formatted
  # (the broker then knows its users before its first start; the admin could add more
  # with kafka-configs --alter --add-config 'SCRAM-SHA-512=[...]').
  KAFKA_FORMAT_ARGS=()
  for n in "$KAFKA_ADMIN" "$KAFKA_BROKER" "$KAFKA_PRODUCER" "$KAFKA_PROJECTOR"; do
    KAFKA_FORMAT_ARGS+=(--add-scram "SCRAM-SHA-512=[name=$n,password=$(secret "kafka-$n")]")
  done
}

# --- PostgreSQL -----------------------------------------------------------------------------

# pg_config_hook: after stack.sh wrote stack.conf and its pg_hba.conf: TLS on, and a
# pg_hba.conf that admits TCP clients over TLS with SCRAM only. The cluster's owner reads
# its own copy of the key (PostgreSQL refuses a key others can read).
pg_config_hook() {
  as_pg sh -c 'umask 077 && cat >"$1"' _ "$PG_DATA/server.key" <"$TLS_DIR/server.key"
  as_pg sh -c 'cat >"$1"' _ "$PG_DATA/server.crt" <"$TLS_DIR/server.crt"
  as_pg sh -c 'cat >"$1"' _ "$PG_DATA/ca.crt" <"$CA_FILE"
  as_pg tee -a "$PG_DATA/stack.conf" >/dev/null <<'EOF'
# The secure profile: TLS for every TCP client, passwords as SCRAM verifiers.
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
# The CA client certificates must come from (the CDC role's line in pg_hba.conf).
ssl_ca_file = 'ca.crt'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
EOF
  # No physical replication line: the producer's logical replication connections match
  # their database's line, and nothing here needs a physical one.
  as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/stack.sh (STACK_SECURE=1) on every start; edits are lost.
# TYPE    DATABASE  USER  ADDRESS       METHOD
local     all       all                 peer
# The producer's role: its password and a client certificate of the local CA whose CN is
# the role's name (clientcert=verify-full), so a leaked password alone opens nothing.
hostssl   all       stock_cdc 127.0.0.1/32 scram-sha-256 clientcert=verify-full
hostssl   all       all   127.0.0.1/32  scram-sha-256
hostnossl all       all   127.0.0.1/32  reject
EOF
}

pg_status_note() { echo "TLS + scram-sha-256 (and a client certificate for $PG_CDC); roles stock, $PG_WRITER, $PG_CDC (passwords in $SECRETS_DIR)"; }

# pg_psql DB: run the SQL on stdin as the cluster's superuser over the local socket.
pg_psql() {
  as_pg "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -U "$PG_SUPERUSER" -d "$1" >/dev/null
}

# pg_ensure_app_role: the owner and the least-privilege roles, with LOGIN and the
# passwords from secrets/ (the migration creates roles NOLOGIN at most, and cannot give
# REPLICATION), the database, and what only a superuser may do: keep the WAL message
# function from PUBLIC. The SQL goes through stdin, so no password is on a command line.
pg_ensure_app_role() {
  pg_psql postgres <<EOF
SET client_min_messages = warning;
DO \$\$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['$PG_APP_USER', '$PG_WRITER', '$PG_CDC', '$PG_RESNAPSHOT'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I', r);
    END IF;
  END LOOP;
END
\$\$;
-- The schema's owner: unlike the plaintext profile's, no REPLICATION and no CREATEDB.
ALTER ROLE $PG_APP_USER LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '$(secret pg-stock)';
ALTER ROLE $PG_WRITER LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '$(secret "pg-$PG_WRITER")';
ALTER ROLE $PG_CDC LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE REPLICATION PASSWORD '$(secret "pg-$PG_CDC")';
ALTER ROLE $PG_RESNAPSHOT NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
-- The producer's role asks for resnapshots (producer resnapshot connects with its URL).
GRANT $PG_RESNAPSHOT TO $PG_CDC;
SELECT 'CREATE DATABASE $PG_APP_DB OWNER $PG_APP_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_APP_DB')
\gexec
REVOKE ALL ON DATABASE $PG_APP_DB FROM PUBLIC;
GRANT CONNECT ON DATABASE $PG_APP_DB TO $PG_WRITER, $PG_CDC;
EOF
  # pg_logical_emit_message is EXECUTE for PUBLIC by default: anyone who may connect could
  # write a resnapshot request (or any other message) into the WAL the producer reads.
  # Only the owner (stock_request_resnapshot runs as it) and the producer's role (its
  # heartbeat, and `producer resnapshot`) keep it. In template1 too, so that a database
  # created later starts that way. The grants of migration 0004 are applied again (as
  # the owner) in case the roles came after the schema.
  local db
  for db in "$PG_APP_DB" template1; do
    pg_psql "$db" <<EOF
SET client_min_messages = warning;
DO \$\$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE proname = 'pg_logical_emit_message' LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO $PG_APP_USER, $PG_CDC', f);
  END LOOP;
END
\$\$;
SELECT 'SELECT public.stock_grant_roles()'
WHERE to_regprocedure('public.stock_grant_roles()') IS NOT NULL
\gexec
EOF
  done
}

# --- Redis ----------------------------------------------------------------------------------

# redis_cli ARGS...: redis-cli over TLS as the admin user; the password goes through the
# environment (REDISCLI_AUTH), not the command line.
redis_cli() {
  REDISCLI_AUTH="$(secret "redis-$REDIS_ADMIN")" redis-cli --tls --cacert "$CA_FILE" \
    -h "$HOST" -p "$REDIS_PORT" --user "$REDIS_ADMIN" "$@"
}

# sha256 of a password, the form redis.conf may hold instead of the password.
redis_hash() { printf '%s' "$(secret "redis-$1")" | sha256sum | cut -d' ' -f1; }

# redis_rules USER: the ACL rules of USER in scripts/secure/redis-acl.rules, the selector in
# parentheses quoted as redis.conf wants it.
redis_rules() {
  local rules
  rules="$(sed -n "s/^$1: //p" "$SECURE_SRC/redis-acl.rules")"
  [[ -n "$rules" ]] || die "no ACL rules for $1 in $SECURE_SRC/redis-acl.rules"
  printf '%s' "$rules" | sed 's/(\([^)]*\))/"(\1)"/g'
}

redis_write_config() {
  (
    umask 077
    cat >"$REDIS_DIR/redis.conf" <<EOF
# Written by scripts/stack.sh (STACK_SECURE=1) on every start; edits are lost.
bind $HOST
port 0
tls-port $REDIS_PORT
tls-cert-file $TLS_DIR/server.crt
tls-key-file $TLS_DIR/server.key
tls-ca-cert-file $TLS_DIR/ca.crt
# Clients prove who they are with an ACL user's password, not a certificate.
tls-auth-clients no
tls-protocols "TLSv1.2 TLSv1.3"
protected-mode yes
daemonize yes
supervised no
dir "$REDIS_DIR"
pidfile "$REDIS_PIDFILE"
logfile "$REDIS_DIR/redis.log"
save ""
appendonly no
# Users: nobody without a password; passwords as sha256 (#...), never in clear here.
user default off resetkeys resetchannels -@all
user $REDIS_ADMIN on #$(redis_hash "$REDIS_ADMIN") ~* &* +@all
user $REDIS_PROJECTOR on #$(redis_hash "$REDIS_PROJECTOR") $(redis_rules "$REDIS_PROJECTOR")
user $REDIS_API on #$(redis_hash "$REDIS_API") $(redis_rules "$REDIS_API")
EOF
  )
}

# --- Kafka ----------------------------------------------------------------------------------

kafka_write_config() {
  local tmpl
  tmpl="$(<"$SECURE_SRC/kafka-server.properties.tmpl")"
  tmpl="${tmpl//@KAFKA_PORT@/"$KAFKA_PORT"}"
  tmpl="${tmpl//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}"
  tmpl="${tmpl//@KAFKA_MTLS_PORT@/"$KAFKA_MTLS_PORT"}"
  tmpl="${tmpl//@KAFKA_DATA_DIR@/"$KAFKA_DATA"}"
  tmpl="${tmpl//@TLS_DIR@/"$TLS_DIR"}"
  tmpl="${tmpl//@BROKER_PASSWORD@/"$(secret "kafka-$KAFKA_BROKER")"}"
  (umask 077 && printf '%s\n' "$tmpl" >"$KAFKA_DIR/server.properties")
  chmod 600 "$KAFKA_DIR/server.properties"
}

# kafka_tool CLASS ARGS...: one of the distribution's command line tools (what
# kafka-topics.sh and kafka-acls.sh run) as the admin, with a small heap.
kafka_tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$KAFKA_LIBS/*" \
    -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" -Dkafka.logs.dir="$KAFKA_LOGS" \
    -Dkafka.log.name=tools "$1" --bootstrap-server "$HOST:$KAFKA_PORT" \
    --command-config "$KAFKA_ADMIN_PROPS" "${@:2}" >>"$KAFKA_LOGS/setup.out" 2>&1 ||
    die_with_log "kafka setup failed: ${*:2}" "$KAFKA_LOGS/setup.out"
}

# kafka_topic NAME PARTITIONS CONFIG...: create the topic unless it exists, as the
# producer would (producer/sink.Specs with the producer's defaults), so that no program
# needs CREATE: the producer validates what it finds, the projector finds its
# dead-letter topic.
kafka_topic() {
  local name=$1 partitions=$2 c args=()
  shift 2
  for c in "$@"; do args+=(--config "$c"); done
  kafka_tool org.apache.kafka.tools.TopicCommand --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor 1 "${args[@]}"
}

# kafka_acl ARGS...: add ALLOW ACLs (adding one that exists changes nothing).
kafka_acl() { kafka_tool org.apache.kafka.tools.AclCommand --add "$@"; }

# kafka_setup: the topics and ACLs, once per formatted storage and version of this list
# (a stamp beside the data holds the cluster id and a hash of these functions): each tool
# run is a JVM start, too slow for every `up`.
kafka_setup() {
  local stamp="$KAFKA_DIR/setup.stamp" want
  want="$(grep -m1 '^cluster.id=' "$KAFKA_DATA/meta.properties" 2>/dev/null) $(declare -f kafka_setup_run | sha256sum | cut -c1-16)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say kafka-acl "$HOST:$KAFKA_PORT" "topics and ACLs in place"
    return
  fi
  : >"$KAFKA_LOGS/setup.out"
  kafka_setup_run
  echo "$want" >"$stamp"
  say kafka-acl "$HOST:$KAFKA_PORT" "topics and ACLs created ($((SECONDS - KAFKA_SETUP_START))s)"
}

KAFKA_SETUP_START=$SECONDS
kafka_setup_run() {
  KAFKA_SETUP_START=$SECONDS
  local week=604800000 isr=min.insync.replicas=1
  kafka_topic "$TOPIC_LEVELS" 6 cleanup.policy=compact "$isr" delete.retention.ms=86400000 \
    segment.ms=3600000 segment.bytes=67108864
  kafka_topic "$TOPIC_CHANGES" 6 cleanup.policy=delete "$isr" retention.ms=$week
  kafka_topic "$TOPIC_ALERTS" 6 cleanup.policy=delete "$isr" retention.ms=$week
  kafka_topic "$TOPIC_CHECKPOINTS" 1 cleanup.policy=compact "$isr"
  kafka_topic "$TOPIC_DLQ" 6

  # The producer: writes its topics in transactions, reads back the levels and its
  # checkpoints on restart, checks the topics' layout and configs. A transactional
  # producer needs its transactional id, not IdempotentWrite on the cluster.
  kafka_acl --allow-principal "User:$KAFKA_PRODUCER" --operation Read --operation Write \
    --operation Describe --operation DescribeConfigs --topic "$TOPIC_LEVELS" --topic "$TOPIC_CHECKPOINTS"
  kafka_acl --allow-principal "User:$KAFKA_PRODUCER" --operation Write --operation Describe \
    --operation DescribeConfigs --topic "$TOPIC_CHANGES" --topic "$TOPIC_ALERTS"
  kafka_acl --allow-principal "User:$KAFKA_PRODUCER" --operation Write --operation Describe \
    --transactional-id "$PRODUCER_TXN_PREFIX" --resource-pattern-type prefixed
  # The projector: consumes the levels in its group; writes, lists and re-drives dead
  # letters (its idempotent dead-letter writes are allowed by that topic's Write).
  kafka_acl --allow-principal "User:$KAFKA_PROJECTOR" --operation Read --operation Describe \
    --topic "$TOPIC_LEVELS" --group "$PROJECTOR_GROUP"
  kafka_acl --allow-principal "User:$KAFKA_PROJECTOR" --operation Read --operation Write \
    --operation Describe --topic "$TOPIC_DLQ"
}

up_prometheus() { die "the secure profile has no Prometheus; run it with the plaintext profile"; }

# --- env ------------------------------------------------------------------------------------

# cmd_env: the variables the tests find this profile through (scripts/test.sh evals
# them): addresses, the CA, files holding each principal's password, and the broker's
# jars (the tests run the distribution's own command line tools as a client).
cmd_env() {
  local v
  for v in \
    "STOCK_SECURE_CA_FILE=$CA_FILE" \
    "STOCK_SECURE_PG_ADDR=$HOST:$PG_PORT" \
    "STOCK_SECURE_PG_OWNER_PASSWORD_FILE=$SECRETS_DIR/pg-stock.password" \
    "STOCK_SECURE_PG_WRITER_PASSWORD_FILE=$SECRETS_DIR/pg-$PG_WRITER.password" \
    "STOCK_SECURE_PG_CDC_PASSWORD_FILE=$SECRETS_DIR/pg-$PG_CDC.password" \
    "STOCK_SECURE_PG_CDC_CERT_FILE=$TLS_DIR/client-$PG_CDC.crt" \
    "STOCK_SECURE_PG_CDC_KEY_FILE=$TLS_DIR/client-$PG_CDC.key" \
    "STOCK_SECURE_KAFKA_BROKERS=$HOST:$KAFKA_PORT" \
    "STOCK_SECURE_KAFKA_MTLS_BROKERS=$HOST:$KAFKA_MTLS_PORT" \
    "STOCK_SECURE_KAFKA_PROJECTOR_CERT_FILE=$TLS_DIR/client-$KAFKA_PROJECTOR.crt" \
    "STOCK_SECURE_KAFKA_PROJECTOR_KEY_FILE=$TLS_DIR/client-$KAFKA_PROJECTOR.key" \
    "STOCK_SECURE_KAFKA_LIBS=$KAFKA_LIBS" \
    "STOCK_SECURE_KAFKA_PRODUCER_PASSWORD_FILE=$SECRETS_DIR/kafka-$KAFKA_PRODUCER.password" \
    "STOCK_SECURE_KAFKA_PROJECTOR_PASSWORD_FILE=$SECRETS_DIR/kafka-$KAFKA_PROJECTOR.password" \
    "STOCK_SECURE_REDIS_ADDR=$HOST:$REDIS_PORT" \
    "STOCK_SECURE_REDIS_PROJECTOR_PASSWORD_FILE=$SECRETS_DIR/redis-$REDIS_PROJECTOR.password" \
    "STOCK_SECURE_REDIS_API_PASSWORD_FILE=$SECRETS_DIR/redis-$REDIS_API.password"; do
    printf 'export %s=%q\n' "${v%%=*}" "${v#*=}"
  done
}
