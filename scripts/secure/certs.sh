#!/usr/bin/env bash
# Certificates of the secure local stack, made with openssl: a local CA and one server
# certificate for PostgreSQL, Redis and Kafka on this machine.
#
#   scripts/secure/certs.sh DIR [CLIENT ...]
#
# writes, when missing or expiring within 30 days (a new CA re-issues the server
# certificate):
#   DIR/ca.crt      the CA clients trust (ssl.truststore / sslrootcert / --cacert)
#   DIR/ca.key      its key; it signs nothing else
#   DIR/server.crt  CN=stock-server, SAN DNS:localhost and IP:127.0.0.1, for TLS servers and
#                   as the Kafka broker's client certificate towards its controller listener
#   DIR/server.key  its key (PKCS#8, unencrypted, mode 600)
#   DIR/server.pem  key then certificate, the PEM keystore Kafka reads
#   DIR/client-NAME.crt, DIR/client-NAME.key   a client certificate with CN=NAME for each
#                   NAME given after DIR (PostgreSQL maps the CN to the role it logs in as)
#
# EC P-256 keys: every client here (Go, Java, librdkafka, libpq, hiredis) speaks it, and
# keys and handshakes are cheap on a two-core machine. Run by `STACK_SECURE=1
# scripts/stack.sh up`; services started before a renewal keep the old certificate until
# they restart.
set -euo pipefail

DIR="${1:?usage: certs.sh DIR [CLIENT ...]}"
shift
mkdir -p "$DIR"
cd "$DIR"

CA_DAYS=3650
SERVER_DAYS=825       # the longest validity clients commonly accept
RENEW_SECONDS=2592000 # renew what expires within 30 days

# valid CERT: exists and does not expire within RENEW_SECONDS.
valid() { [[ -s "$1" ]] && openssl x509 -in "$1" -noout -checkend "$RENEW_SECONDS" >/dev/null 2>&1; }

# serial: a random positive 128-bit serial number, as CAs must issue them.
serial() { echo "0x7$(openssl rand -hex 15)"; }

umask 077
if ! valid ca.crt || [[ ! -s ca.key ]]; then
  openssl req -x509 -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout ca.key -out ca.crt -days "$CA_DAYS" -set_serial "$(serial)" \
    -subj "/O=stock local stack/CN=stock local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
  rm -f server.crt # issued by the old CA
  echo "certs: made a local CA in $DIR"
fi

if ! valid server.crt || [[ ! -s server.key ]] ||
  ! openssl verify -CAfile ca.crt server.crt >/dev/null 2>&1; then
  openssl req -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout server.key -out server.csr -subj "/O=stock local stack/CN=stock-server" 2>/dev/null
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial "$(serial)" \
    -days "$SERVER_DAYS" -out server.crt -extfile <(
      cat <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
    ) 2>/dev/null
  rm -f server.csr
  cat server.key server.crt >server.pem
  echo "certs: issued the server certificate (localhost, 127.0.0.1) in $DIR"
fi
# A client certificate per name, unless a valid one of the current CA is there.
for name in "$@"; do
  crt="client-$name.crt" key="client-$name.key"
  if valid "$crt" && [[ -s "$key" ]] && openssl verify -CAfile ca.crt "$crt" >/dev/null 2>&1; then
    continue
  fi
  openssl req -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$key" -out "client-$name.csr" -subj "/O=stock local stack/CN=$name" 2>/dev/null
  openssl x509 -req -in "client-$name.csr" -CA ca.crt -CAkey ca.key -set_serial "$(serial)" \
    -days "$SERVER_DAYS" -out "$crt" -extfile <(
      cat <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
    ) 2>/dev/null
  rm -f "client-$name.csr"
  chmod 644 "$crt"
  chmod 600 "$key"
  echo "certs: issued the client certificate CN=$name in $DIR"
done

# The certificates are public; keys stay 600.
chmod 644 ca.crt server.crt
chmod 600 ca.key server.key server.pem
