#!/usr/bin/env bash
# Validates docs/asyncapi.yaml with the AsyncAPI parser and its Avro schema
# parser (pinned, installed with npm into .local/asyncapi on first use).
#
#   scripts/asyncapi.sh [document]     default: docs/asyncapi.yaml
set -euo pipefail
cd "$(dirname "$0")/.."

PARSER_VERSION=3.6.6      # @asyncapi/parser
AVRO_PARSER_VERSION=3.1.0 # @asyncapi/avro-schema-parser (needs parser >= 3.6.4)
DIR=.local/asyncapi
STAMP="$DIR/.installed-$PARSER_VERSION-$AVRO_PARSER_VERSION"

if [[ ! -f "$STAMP" ]]; then
  command -v npm >/dev/null || { echo "asyncapi: npm is needed (apt-get install npm)" >&2; exit 1; }
  echo "asyncapi: installing @asyncapi/parser $PARSER_VERSION and @asyncapi/avro-schema-parser $AVRO_PARSER_VERSION into $DIR"
  rm -rf "$DIR" && mkdir -p "$DIR"
  (cd "$DIR" && npm install --no-audit --no-fund --silent \
    "@asyncapi/parser@$PARSER_VERSION" "@asyncapi/avro-schema-parser@$AVRO_PARSER_VERSION") \
    >"$DIR.npm.log" 2>&1 || { echo "asyncapi: npm install failed (log: $DIR.npm.log)" >&2; exit 1; }
  touch "$STAMP"
fi
NODE_PATH="$DIR/node_modules" node scripts/asyncapi/validate.cjs "${1:-docs/asyncapi.yaml}"
