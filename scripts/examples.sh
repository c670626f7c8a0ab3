#!/usr/bin/env bash
# The consumers in docs/examples, ready to run: a virtualenv for the Python
# one (its requirements.txt, pinned) in .local/examples-venv, and the Java
# one's dependencies (its pom.xml: Maven Central) resolved, their classpath
# written to .local/examples-java.classpath (the test runs the single source
# file with `java -cp`). make test calls it; internal/e2e/examples_test.go
# runs the consumers against the pipeline.
#
#   scripts/examples.sh      install what is missing (quiet when all is there)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.local/examples-venv"
REQ="$ROOT/docs/examples/python/requirements.txt"
STAMP="$VENV/.installed-$(sha256sum "$REQ" | cut -c1-16)"
LOG="$ROOT/.local/examples-pip.log"

die() { echo "examples: $*" >&2; exit 1; }

if [[ ! -f "$STAMP" ]]; then
  command -v python3 >/dev/null || die "python3 not found"
  mkdir -p "$ROOT/.local"
  echo "examples: installing $(tr '\n' ' ' <"$REQ")into $VENV (log: $LOG)"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >"$LOG" 2>&1; then
    # Debian's python3 needs its venv module from a package.
    [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null || die "python3 -m venv failed (install python3-venv)"
    env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
      --no-install-recommends python3-venv >>"$LOG" 2>&1 || die "apt-get install python3-venv failed (log: $LOG)"
    python3 -m venv "$VENV" >>"$LOG" 2>&1 || die "python3 -m venv failed (log: $LOG)"
  fi
  "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQ" >>"$LOG" 2>&1 ||
    { tail -n 20 "$LOG" >&2; die "pip install failed"; }
  touch "$STAMP"
fi

POM="$ROOT/docs/examples/java/pom.xml"
CP="$ROOT/.local/examples-java.classpath"
if [[ ! -f "$CP" || "$POM" -nt "$CP" ]]; then
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  echo "examples: resolving the Java consumer's dependencies (log: $ROOT/.local/examples-mvn.log)"
  mvn -q -B -f "$POM" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath \
    -Dmdep.outputFile="$CP.tmp" >"$ROOT/.local/examples-mvn.log" 2>&1 ||
    { tail -n 20 "$ROOT/.local/examples-mvn.log" >&2; die "mvn could not resolve docs/examples/java/pom.xml"; }
  mv "$CP.tmp" "$CP"
fi
