#!/usr/bin/env bash
# Builds webhook_emitter and installs it into the PostgreSQL whose pg_config
# is given (default: Debian's PostgreSQL 15), together with the archived
# install scripts of released versions (sql/archive/), which the upgrade
# test uses to start from an old version.
# Usage: scripts/install.sh [--release] [PG_CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
if [ "${1:-}" = "--release" ]; then
    profile=(--release)
    shift
fi
PG_CONFIG=${1:-/usr/lib/postgresql/15/bin/pg_config}
major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
# A new file, not the old one rewritten in place: a running cluster has the
# old library mapped, and overwriting its pages crashes its processes.
rm -f "$("$PG_CONFIG" --pkglibdir)/webhook_emitter.so"
cargo pgrx install "${profile[@]}" --pg-config "$PG_CONFIG" \
    --no-default-features --features "pg$major" >/dev/null
install -m 0644 sql/archive/webhook_emitter--*.sql "$("$PG_CONFIG" --sharedir)/extension/"
